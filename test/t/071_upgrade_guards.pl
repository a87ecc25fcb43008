# What an upgrade must refuse, and what the 0.2.0 library must withstand in
# a database still at 0.1.0 (the library is shared by every database of the
# cluster; each database moves to 0.2.0 only with its own ALTER EXTENSION):
#  - linked accounts 0.2.0 no longer accepts stop the upgrade, named;
#  - so does a row past one of 0.2.0's limits (a customer name of 2,049
#    characters), naming the constraint;
#  - an extension installed by 0.1.0 into a schema a non-superuser owns is
#    refused an upgrade (that owner could swap the schema's objects);
#  - 0.1.0's SQL declares some functions without a pinned search_path and
#    has no CHECK that properties are objects: the library itself pins the
#    path when it runs as the owner, and reads properties safely.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use BenefitsNode;

my $node = BenefitsNode::new_node('upgrade_guards', databases => 'postgres');
$node->start;
my ($ret, $out, $err);

# ---- accounts 0.2.0 refuses stop the upgrade
$node->safe_psql('postgres', 'CREATE DATABASE bad');
$node->safe_psql('bad', "CREATE EXTENSION benefits VERSION '0.1.0'");
$node->safe_psql('bad', q{
INSERT INTO benefits.organizations (id, name) VALUES ('00000000-0000-4000-8000-000000000001', 'o');
INSERT INTO benefits.customers (id, organization_id) VALUES ('00000000-0000-4000-8000-000000000002', '00000000-0000-4000-8000-000000000001');
INSERT INTO benefits.customer_accounts (customer_id, platform, account_id, username)
VALUES ('00000000-0000-4000-8000-000000000002', 'github', '1', '..');
});
($ret, $out, $err) = $node->psql('bad', 'ALTER EXTENSION benefits UPDATE');
isnt($ret, 0, 'an account named ".." stops the upgrade');
like($err, qr/refuses linked accounts that could steer provider requests: 00000000-0000-4000-8000-000000000002 \(github\)/,
	'naming the account');
like($err, qr/HINT:  Link these accounts again/, 'and saying what to do');
is($node->safe_psql('bad', "SELECT extversion FROM pg_extension WHERE extname = 'benefits'"), '0.1.0',
	'the database stays at 0.1.0, untouched');
$node->safe_psql('bad', "DELETE FROM benefits.customer_accounts; ALTER EXTENSION benefits UPDATE");
is($node->safe_psql('bad', "SELECT extversion FROM pg_extension WHERE extname = 'benefits'"), '0.2.0',
	'once fixed, it upgrades');

# ---- a row past one of 0.2.0's limits (README, "Limits") stops the upgrade
$node->safe_psql('postgres', 'CREATE DATABASE long');
$node->safe_psql('long', "CREATE EXTENSION benefits VERSION '0.1.0'");
$node->safe_psql('long', q{
INSERT INTO benefits.organizations (id, name) VALUES ('00000000-0000-4000-8000-000000000001', 'o');
INSERT INTO benefits.customers (organization_id, name) VALUES ('00000000-0000-4000-8000-000000000001', repeat('n', 2049));
});
($ret, $out, $err) = $node->psql('long', 'ALTER EXTENSION benefits UPDATE');
like($err, qr/check constraint "customers_name_length" .* is violated by some row/,
	'a customer name of 2,049 characters stops the upgrade, naming the constraint');
is($node->safe_psql('long', "SELECT extversion FROM pg_extension WHERE extname = 'benefits'"), '0.1.0',
	'the database stays at 0.1.0');
$node->safe_psql('long', "UPDATE benefits.customers SET name = left(name, 2048); ALTER EXTENSION benefits UPDATE");
is($node->safe_psql('long', "SELECT extversion FROM pg_extension WHERE extname = 'benefits'"), '0.2.0',
	'once shortened, it upgrades');

# ---- the 0.2.0 library is safe with 0.1.0's SQL, before any update
$node->safe_psql('postgres', q{
CREATE DATABASE old;
CREATE ROLE old_admin LOGIN IN ROLE benefits_admin;
GRANT CREATE ON DATABASE old TO old_admin;
});
$node->safe_psql('old', "CREATE EXTENSION benefits VERSION '0.1.0'");
$node->safe_psql('old', q{
INSERT INTO benefits.organizations (id, name) VALUES ('00000000-0000-4000-8000-000000000001', 'o');
INSERT INTO benefits.customers (id, organization_id) VALUES ('00000000-0000-4000-8000-000000000002', '00000000-0000-4000-8000-000000000001');
INSERT INTO benefits.benefits (id, organization_id, type, description, properties)
VALUES ('00000000-0000-4000-8000-000000000003', '00000000-0000-4000-8000-000000000001', 'license_keys', 'k', '["prefix", "prefix"]');
}, extra_params => [ '-U', 'old_admin' ]);
my ($ret2, $out2, $err2) = $node->psql('old',
	"SELECT state FROM benefits.grant_benefit('00000000-0000-4000-8000-000000000002', '00000000-0000-4000-8000-000000000003')",
	extra_params => [ '-U', 'old_admin' ]);
unlike($err2, qr/server closed the connection/, '0.1.0 SQL, new library: properties that are not an object crash nothing');
# 0.1.0 declares track_subscriptions without SET search_path; the library
# pins it itself when it switches to the owner.
$node->safe_psql('old', q{
CREATE SCHEMA evil;
CREATE TABLE evil.subs (id text, customer text, product text, status text);
CREATE FUNCTION evil.uuid_eq(uuid, uuid) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF current_user <> 'old_admin' THEN EXECUTE 'ALTER ROLE old_admin SUPERUSER'; END IF;
    RETURN $1 OPERATOR(pg_catalog.=) $2;
END $$;
CREATE OPERATOR evil.= (LEFTARG = uuid, RIGHTARG = uuid, FUNCTION = evil.uuid_eq);
}, extra_params => [ '-U', 'old_admin' ]);
$node->psql('old', "SET search_path = evil, pg_catalog; SELECT benefits.track_subscriptions('evil.subs', '00000000-0000-4000-8000-000000000001'); SELECT benefits.untrack('evil.subs')",
	extra_params => [ '-U', 'old_admin' ]);
is($node->safe_psql('postgres', "SELECT rolsuper FROM pg_roles WHERE rolname = 'old_admin'"), 'f',
	'0.1.0 SQL, new library: a hostile search_path captures nothing the owner runs');
is($node->safe_psql('old', "SELECT count(*) FROM benefits.tracked_tables"), '0', 'and tracking worked (tracked, then untracked)');

# ---- an extension in a schema its owner does not control
$node->safe_psql('postgres', q{
CREATE ROLE dbo LOGIN;
CREATE DATABASE owned OWNER dbo;
});
$node->safe_psql('owned', 'CREATE SCHEMA benefits', extra_params => [ '-U', 'dbo' ]);
$node->safe_psql('owned', "CREATE EXTENSION benefits VERSION '0.1.0'");
($ret, $out, $err) = $node->psql('owned', 'ALTER EXTENSION benefits UPDATE');
isnt($ret, 0, 'an extension whose schema a non-superuser owns is not upgraded');
like($err, qr/the schema of extension benefits is owned by dbo, who is not a superuser/, 'saying who owns it');
is($node->safe_psql('owned', "SELECT extversion FROM pg_extension WHERE extname = 'benefits'"), '0.1.0',
	'it stays at 0.1.0');
$node->safe_psql('owned', 'ALTER SCHEMA benefits OWNER TO postgres; ALTER EXTENSION benefits UPDATE');
is($node->safe_psql('owned', "SELECT extversion FROM pg_extension WHERE extname = 'benefits'"), '0.2.0',
	'once a superuser owns the schema, it upgrades');

# ---- 0.1.0's license calls under the 0.2.0 library (no fingerprint, no
# deactivated_at in that schema: activations are counted and deleted as 0.1.0 did)
$node->safe_psql('postgres', 'CREATE DATABASE old_license');
$node->safe_psql('old_license', "CREATE EXTENSION benefits VERSION '0.1.0'");
my $old_key = $node->safe_psql('old_license', q{
INSERT INTO benefits.organizations (id, name) VALUES ('00000000-0000-4000-8000-000000000001', 'o');
INSERT INTO benefits.customers (id, organization_id) VALUES ('00000000-0000-4000-8000-000000000002', '00000000-0000-4000-8000-000000000001');
SELECT id AS ben FROM benefits.create_benefit('license_keys', '00000000-0000-4000-8000-000000000001', 'k', '{"activations": 1}') \gset
SELECT benefits.grant_benefit('00000000-0000-4000-8000-000000000002', :'ben') \g /dev/null
SELECT key FROM benefits.license_keys;
});
my $old_act = $node->safe_psql('old_license',
	"SELECT activation_id FROM benefits.activate_license('$old_key', '00000000-0000-4000-8000-000000000001', 'pc')");
like($old_act, qr/^[0-9a-f-]{36}$/, '0.1.0 SQL, new library: activate_license activates');
is($node->safe_psql('old_license',
	"SELECT code FROM benefits.activate_license('$old_key', '00000000-0000-4000-8000-000000000001', 'pc2')"),
	'activation_limit_reached', '0.1.0 SQL, new library: the limit counts the activation');
is($node->safe_psql('old_license',
	"SELECT code FROM benefits.validate_license('$old_key', '00000000-0000-4000-8000-000000000001', '$old_act')"),
	'valid', '0.1.0 SQL, new library: validate_license with the activation');
is($node->safe_psql('old_license',
	"SELECT benefits.deactivate_license('$old_key', '00000000-0000-4000-8000-000000000001', '$old_act')"),
	't', '0.1.0 SQL, new library: deactivate_license');
is($node->safe_psql('old_license', 'SELECT count(*) FROM benefits.license_key_activations'), '0',
	'0.1.0 SQL, new library: the activation is deleted, as 0.1.0 did');
is($node->safe_psql('old_license', 'SELECT benefits.run_maintenance()'), '0',
	'0.1.0 SQL, new library: run_maintenance runs (no heartbeats to release)');

$node->stop;
done_testing();
