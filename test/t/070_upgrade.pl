# Release 0.1.0 upgrades to 0.2.0 with the 0.2.0 library.  A database
# created with 0.1.0 and its API (a subscription holding every benefit type,
# a key validated and activated, GitHub, Discord and webhook jobs delivered)
# keeps working end to end after ALTER EXTENSION ... UPDATE: the key still
# validates, a revocation still revokes, the worker still delivers, and new
# 0.2.0 features work on old data.  The upgraded schema equals a fresh 0.2.0
# install (pg_dump --binary-upgrade of both, which includes the extension's
# members, compared after removing OIDs and xids).  An upgrade refuses linked
# accounts that 0.2.0 no longer accepts, naming them.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use BenefitsNode;
use MockProviders;

my $mock = MockProviders->new('upgrade');
my $url = $mock->url;
my $node = BenefitsNode::new_node('upgrade', databases => 'postgres,fresh', conf => qq{
benefits.github_api_url = '$url'
benefits.github_token = 'ghp_test'
benefits.discord_api_url = '$url/api/v10'
benefits.discord_bot_token = 'bot_test'
benefits.retry_initial_delay = '100ms'
benefits.retry_max_delay = '1s'
benefits.maintenance_interval = '1s'
});
$node->start;
sub sql { return $node->safe_psql('postgres', $_[0]); }
sub wait_q { return MockProviders::wait_for($node, 'postgres', $_[0], $_[1], $_[2] // 30); }
sub calls { return grep { $_->{method} eq $_[0] && $_->{path} =~ $_[1] } $mock->requests; }

# ---- 0.1.0, with its data
sql('CREATE DATABASE fresh');
sql("CREATE EXTENSION benefits VERSION '0.1.0'");
is(sql("SELECT extversion FROM pg_extension WHERE extname = 'benefits'"), '0.1.0', 'installed 0.1.0');
my $org = sql("INSERT INTO benefits.organizations (name) VALUES ('Old Org') RETURNING id");
my $meter = sql("INSERT INTO benefits.meters (organization_id, name) VALUES ('$org', 'calls') RETURNING id");
my ($ep, $secret) = split /\|/, sql(qq{
SELECT id, secret FROM benefits.create_webhook_endpoint('$org', '$url/hooks/old',
    ARRAY['benefit_grant.created', 'benefit_grant.updated', 'benefit_grant.revoked'])});
$mock->control(secrets => { '/hooks/old' => $secret });
my %benefit;
for my $b (
	[ 'license_keys', 'License', '{"prefix": "OLD", "expires": false, "activations": 2, "limit_usage": false}' ],
	[ 'github_repository', 'Source', '{"repository_owner": "acme", "repository_name": "old", "permission": "pull"}' ],
	[ 'discord', 'Chat', '{"guild_id": "100000000000000111", "role_id": "100000000000000201"}' ],
	[ 'downloadable', 'Files', '{"files": [{"name": "manual.pdf", "size": 1024}]}' ],
	[ 'meter_credits', 'Credits', qq{{"meter_id": "$meter", "units": 100}} ],
	[ 'custom', 'Note', '{"note": "hello"}' ])
{
	$benefit{ $b->[0] } = sql(qq{SELECT id FROM benefits.create_benefit('$b->[0]', '$org', '$b->[1]', '$b->[2]')});
}
my $product = sql("INSERT INTO benefits.products (organization_id, name) VALUES ('$org', 'Everything') RETURNING id");
sql("SELECT benefits.update_product_benefits('$product', ARRAY['"
	  . join("', '", map { $benefit{$_} } qw(license_keys github_repository discord downloadable meter_credits custom))
	  . "']::uuid[])");
my $cust = sql("INSERT INTO benefits.customers (organization_id, external_id, email) VALUES ('$org', 'old-1', 'old\@example.com') RETURNING id");
sql("SELECT benefits.link_account('$cust', 'github', '5001', 'octo-cat')");
sql("SELECT benefits.link_account('$cust', 'discord', '80351110224678912', 'eve', 'oauth-token')");
my $sub = sql("INSERT INTO benefits.subscriptions (customer_id, product_id, status) VALUES ('$cust', '$product', 'active') RETURNING id");
is(wait_q("SELECT count(*) FILTER (WHERE state = 'active') FROM benefits.grants WHERE subscription_id = '$sub'", '6'),
	'6', '0.1.0: all six grants are active once the providers confirm');
my $key = sql("SELECT key FROM benefits.license_keys WHERE customer_id = '$cust'");
is(sql("SELECT code FROM benefits.validate_license('$key', '$org')"), 'valid', '0.1.0: the key validates');
is(sql("SELECT code FROM benefits.activate_license('$key', '$org', 'laptop')"), 'activated', '0.1.0: and activates');
is(wait_q("SELECT count(*) FROM benefits.outbox WHERE state <> 'done'", '0'), '0', '0.1.0: every job is delivered');
is(sql("SELECT count(*) FROM jsonb_array_elements(benefits.portal_document('$cust')->'benefits')"), '6',
	'0.1.0: the portal shows the six benefits');
ok(scalar(calls('PUT', qr{/repos/acme/old/collaborators/octo-cat})) >= 1, '0.1.0: GitHub was called');
ok(scalar(calls('PUT', qr{/guilds/100000000000000111/members/80351110224678912$})) >= 1, '0.1.0: Discord was called');

# ---- the upgrade
sql('ALTER EXTENSION benefits UPDATE');
is(sql("SELECT extversion FROM pg_extension WHERE extname = 'benefits'"), '0.2.0', 'upgraded to 0.2.0');

# ---- the old data keeps working
is(sql("SELECT code FROM benefits.validate_license('$key', '$org')"), 'valid', 'after: the key still validates');
is(sql("SELECT benefits.meter_balance('$cust', '$meter')"), '100', 'after: the meter balance reads');
is(sql("SELECT count(*) FROM jsonb_array_elements(benefits.portal_document('$cust')->'benefits')"), '6',
	'after: the portal shows the six benefits');
my $ff = sql(qq{SELECT id FROM benefits.create_benefit('feature_flag', '$org', 'Export', '{}', metadata => '{"feature": "export_pdf"}')});
sql("SELECT benefits.update_product_benefits('$product', ARRAY['"
	  . join("', '", map { $benefit{$_} } qw(license_keys github_repository discord downloadable meter_credits custom))
	  . "', '$ff']::uuid[])");
is(sql("SELECT benefits.has_feature('$cust', 'export_pdf')"), 't', 'after: a feature added to the old product reaches its old holder');
my $deletes_before = scalar(calls('DELETE', qr{.}));
sql("UPDATE benefits.subscriptions SET status = 'revoked' WHERE id = '$sub'");
is(sql("SELECT count(*) FROM benefits.grants WHERE subscription_id = '$sub' AND state <> 'revoked'"), '0',
	'after: a revocation still revokes every grant');
is(sql("SELECT code FROM benefits.validate_license('$key', '$org')"), 'revoked', 'after: the key is revoked with them');
is(wait_q("SELECT count(*) FROM benefits.outbox WHERE state <> 'done'", '0'), '0', 'after: the worker delivers every job');
is(sql("SELECT count(*) FROM benefits.dead_jobs"), '0', 'after: none is dead');
ok(scalar(calls('DELETE', qr{/repos/acme/old/})) >= 1, 'after: GitHub access is removed');
ok(scalar(calls('DELETE', qr{/guilds/100000000000000111/members/80351110224678912/roles/100000000000000201})) >= 1,
	'after: the Discord role is removed');
ok(scalar(calls('DELETE', qr{.})) > $deletes_before, 'after: the removals were sent after the upgrade');
is(sql("SELECT count(*) FROM benefits.outbox WHERE kind = 'webhook' AND event_type = 'benefit_grant.revoked' AND state = 'done'"),
	'7', 'after: seven benefit_grant.revoked webhooks delivered');

# ---- the upgraded schema is a fresh install's
$node->safe_psql('fresh', 'CREATE EXTENSION benefits');
sub schema
{
	my ($db) = @_;
	my ($out, $err);
	IPC::Run::run([ 'pg_dump', '--schema-only', '--binary-upgrade', '-h', $node->host, '-p', $node->port, '-d', $db ],
		'>', \$out, '2>', \$err) or die "pg_dump $db: $err";
	my @lines = grep {
		!/^\\(un)?restrict/ && !/binary_upgrade_set_next_/ && !/relfrozenxid/ && !/^WHERE oid = /
		  && !/^UPDATE pg_catalog\.pg_class$/ && !/^SELECT pg_catalog\.setval\(/ && !/^-- Dump/ && !/^-- Dumped/
	} split /\n/, $out;
	return join("\n", @lines) . "\n";
}
my $upgraded = schema('postgres');
my $fresh = schema('fresh');
ok(length($fresh) > 10000, 'the dump holds the extension\'s members');
my $same = $upgraded eq $fresh;
ok($same, 'the upgraded schema equals a fresh 0.2.0 install');
unless ($same)
{
	my $dir = PostgreSQL::Test::Utils::tempdir('schemas');
	open(my $a, '>', "$dir/fresh.sql"); print $a $fresh; close $a;
	open(my $b, '>', "$dir/upgraded.sql"); print $b $upgraded; close $b;
	my $diff;
	IPC::Run::run([ 'diff', '-u', "$dir/fresh.sql", "$dir/upgraded.sql" ], '>', \$diff);
	diag(substr($diff, 0, 6000));
}

# ---- empty databases, and accounts 0.2.0 refuses
$node->safe_psql('postgres', 'CREATE DATABASE empty; CREATE DATABASE bad');
$node->safe_psql('empty', "CREATE EXTENSION benefits VERSION '0.1.0'");
$node->safe_psql('empty', "ALTER EXTENSION benefits UPDATE TO '0.2.0'");
is($node->safe_psql('empty', "SELECT extversion FROM pg_extension WHERE extname = 'benefits'"), '0.2.0',
	'an empty 0.1.0 database upgrades');
$node->safe_psql('empty', 'DROP EXTENSION benefits');
is($node->safe_psql('empty', "SELECT count(*) FROM pg_class WHERE relnamespace = 'benefits'::regnamespace"), '0',
	'and drops cleanly');
$node->safe_psql('bad', "CREATE EXTENSION benefits VERSION '0.1.0'");
$node->safe_psql('bad', q{
INSERT INTO benefits.organizations (id, name) VALUES ('00000000-0000-4000-8000-000000000001', 'o');
INSERT INTO benefits.customers (id, organization_id) VALUES ('00000000-0000-4000-8000-000000000002', '00000000-0000-4000-8000-000000000001');
INSERT INTO benefits.customer_accounts (customer_id, platform, account_id, username)
VALUES ('00000000-0000-4000-8000-000000000002', 'github', '1', '..');
});
my ($ret, $out, $err) = $node->psql('bad', 'ALTER EXTENSION benefits UPDATE');
isnt($ret, 0, 'an account named ".." stops the upgrade');
like($err, qr/refuses linked accounts that could steer provider requests: 00000000-0000-4000-8000-000000000002 \(github\)/,
	'naming the account');
like($err, qr/HINT:  Link these accounts again/, 'and saying what to do');
is($node->safe_psql('bad', "SELECT extversion FROM pg_extension WHERE extname = 'benefits'"), '0.1.0',
	'the database stays at 0.1.0, untouched');
$node->safe_psql('bad', "DELETE FROM benefits.customer_accounts; ALTER EXTENSION benefits UPDATE");
is($node->safe_psql('bad', "SELECT extversion FROM pg_extension WHERE extname = 'benefits'"), '0.2.0',
	'once fixed, it upgrades');

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
($ret, $out, $err) = $node->psql('old',
	"SELECT state FROM benefits.grant_benefit('00000000-0000-4000-8000-000000000002', '00000000-0000-4000-8000-000000000003')",
	extra_params => [ '-U', 'old_admin' ]);
unlike($err, qr/server closed the connection/, '0.1.0 SQL, new library: properties that are not an object crash nothing');
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

$node->stop;
$mock->stop;
done_testing();
