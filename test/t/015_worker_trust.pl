# The worker runs as a superuser, so it acts only on the objects of an
# installed `benefits` extension whose schema a superuser owns.  A database
# owner who is not a superuser plants a schema named `benefits` with
# functions that would make them a superuser and outbox rows that would be
# sent with the organization's GitHub token: where the extension was never
# installed, where it was dropped, and where the extension lives in a schema
# the attacker owns (0.1.0 installed into it; 0.2.0 refuses to).  Nothing
# planted runs and nothing planted is sent; the real extension next door
# keeps working.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use BenefitsNode;
use MockProviders;

my $mock = MockProviders->new('trust');
my $url = $mock->url;
my @victims = qw(victim_absent victim_dropped victim_renamed);
my $node = BenefitsNode::new_node('trust',
	databases => join(',', 'postgres', @victims),
	conf => qq{
benefits.github_api_url = '$url'
benefits.github_token = 'secret-github-token'
benefits.maintenance_interval = '100ms'
benefits.validation_flush_interval = '100ms'
});
$node->start;
$node->safe_psql('postgres', q{
CREATE ROLE mallory LOGIN;
CREATE DATABASE victim_absent OWNER mallory;
CREATE DATABASE victim_dropped OWNER mallory;
CREATE DATABASE victim_renamed OWNER mallory;
CREATE EXTENSION benefits;
});
# The owner of victim_dropped also tries to make the worker act as mallory
# there, and to make its statements fail: database settings apply to the
# worker's connection, so it overrides these.  (This test's own sessions
# override them from the client side.)
$ENV{PGOPTIONS} = '-c role=none -c statement_timeout=0 -c default_transaction_read_only=off';
$node->safe_psql('victim_dropped', q{
ALTER DATABASE victim_dropped SET role = 'mallory';
ALTER DATABASE victim_dropped SET statement_timeout = '1ms';
ALTER DATABASE victim_dropped SET default_transaction_read_only = on;
}, extra_params => [ '-U', 'mallory' ]);

# What mallory plants: every function the worker calls by name, and the
# tables its claim reads, with a due GitHub job and a due webhook.
my $plant = qq{
CREATE TABLE mallory_log (what text);
CREATE FUNCTION benefits.escalate(what text) RETURNS void LANGUAGE plpgsql AS \$\$
BEGIN
    INSERT INTO public.mallory_log VALUES (what);
    ALTER ROLE mallory SUPERUSER;
END \$\$;
CREATE FUNCTION benefits.run_maintenance() RETURNS integer LANGUAGE plpgsql AS
    \$\$ BEGIN PERFORM benefits.escalate('run_maintenance'); RETURN 0; END \$\$;
CREATE FUNCTION benefits.flush_validation_stats() RETURNS bigint LANGUAGE plpgsql AS
    \$\$ BEGIN PERFORM benefits.escalate('flush_validation_stats'); RETURN 0; END \$\$;
CREATE FUNCTION benefits.webhook_endpoint_failed(uuid, boolean, text, integer) RETURNS boolean LANGUAGE plpgsql AS
    \$\$ BEGIN PERFORM benefits.escalate('webhook_endpoint_failed'); RETURN false; END \$\$;
CREATE FUNCTION benefits.github_invitation_step(text, text, boolean, integer) RETURNS jsonb LANGUAGE plpgsql AS
    \$\$ BEGIN PERFORM benefits.escalate('github_invitation_step'); RETURN NULL; END \$\$;
CREATE FUNCTION benefits.enqueue_grant_event(uuid, text) RETURNS integer LANGUAGE plpgsql AS
    \$\$ BEGIN PERFORM benefits.escalate('enqueue_grant_event'); RETURN 0; END \$\$;
CREATE TABLE benefits.webhook_endpoints (id uuid PRIMARY KEY, url text, secret text, enabled boolean,
    consecutive_failures integer DEFAULT 0);
CREATE TABLE benefits.customer_accounts (customer_id uuid, platform text, access_token text);
CREATE TABLE benefits.grants (id uuid, state text, error jsonb, granted_at timestamptz, modified_at timestamptz);
CREATE TABLE benefits.outbox (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, organization_id uuid,
    kind text, grant_id uuid, endpoint_id uuid, event_type text, message_id text, action text, payload jsonb,
    state text DEFAULT 'pending', attempts integer DEFAULT 0, run_after timestamptz DEFAULT now(),
    leased_until timestamptz, last_status integer, last_error text, created_at timestamptz DEFAULT now(),
    finished_at timestamptz, chain_key text);
INSERT INTO benefits.webhook_endpoints VALUES
    ('00000000-0000-4000-8000-000000000001', '$url/hook/planted', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', true);
INSERT INTO benefits.outbox (kind, action, payload)
    VALUES ('github', 'add_collaborator', '{"owner": "acme", "repo": "planted", "username": "mallory"}');
INSERT INTO benefits.outbox (kind, endpoint_id, message_id, action, payload)
    VALUES ('webhook', '00000000-0000-4000-8000-000000000001', 'msg_planted', 'deliver', '{}');
};

# Never installed: mallory creates the schema.
$node->safe_psql('victim_absent', "CREATE SCHEMA benefits; $plant", extra_params => [ '-U', 'mallory' ]);

# Dropped: installed, then extension and schema dropped by the superuser;
# mallory, as the database owner, creates the schema again.
$node->safe_psql('victim_dropped', 'CREATE EXTENSION benefits; DROP EXTENSION benefits; DROP SCHEMA benefits');
$node->safe_psql('victim_dropped', "CREATE SCHEMA benefits; $plant", extra_params => [ '-U', 'mallory' ]);

# Installed into a schema mallory created beforehand: 0.2.0 refuses such a
# schema, 0.1.0 did not.  Mallory, owning the schema, renames it away and
# puts a look-alike in its place.
$node->safe_psql('victim_renamed', 'CREATE SCHEMA benefits', extra_params => [ '-U', 'mallory' ]);
my ($ret, $out, $err) = $node->psql('victim_renamed', 'CREATE EXTENSION benefits');
isnt($ret, 0, '0.2.0 refuses to install into a schema "benefits" owned by a role that is not a superuser');
like($err, qr/schema "benefits" is owned by mallory/, '... saying who owns it');
$node->safe_psql('victim_renamed', "CREATE EXTENSION benefits VERSION '0.1.0'");
$node->safe_psql('victim_renamed', "ALTER SCHEMA benefits RENAME TO benefits_real; CREATE SCHEMA benefits; $plant",
	extra_params => [ '-U', 'mallory' ]);

# The real extension in database postgres is served meanwhile: a job of its
# own reaches the mock, so the worker was running and calling out.
my $org = $node->safe_psql('postgres', "INSERT INTO benefits.organizations (name) VALUES ('real') RETURNING id");
$node->safe_psql('postgres', qq{SELECT benefits.create_webhook_endpoint('$org', '$url/hook/real', ARRAY['benefit.created'])});
$node->safe_psql('postgres', qq{SELECT benefits.create_benefit('custom', '$org', 'Real perk', '{"note": "hi"}')});
is(MockProviders::wait_for($node, 'postgres',
	"SELECT count(*) FROM benefits.outbox WHERE state = 'done' AND kind = 'webhook'", '1', 30),
	'1', 'the real extension\'s webhook is delivered');

# Every victim database has a worker, which has had many maintenance and
# flush rounds (every 100 ms) by now.
for my $db (@victims)
{
	is(MockProviders::wait_for($node, 'postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'benefits worker' AND datname = '$db'", '1', 30),
		'1', "a worker serves $db");
}
sleep 3;

is($node->safe_psql('postgres', "SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'"), 'f',
	'mallory is not a superuser');
for my $db (@victims)
{
	is($node->safe_psql($db, 'SELECT count(*) FROM public.mallory_log'), '0', "no planted function ran in $db");
	is($node->safe_psql($db, "SELECT count(*) FROM benefits.outbox WHERE state <> 'pending' OR attempts > 0"),
		'0', "no planted job in $db was claimed");
}
my @planted = grep { $_->{path} =~ m{planted|/repos/acme} } $mock->requests;
is(scalar(@planted), 0, 'the mock received no planted request');
my $log = slurp_file($node->logfile);
like($log, qr/the worker will not act in database "victim_renamed"/, 'the worker says why it ignores victim_renamed');
unlike($log, qr/will not act in database "victim_(absent|dropped)"/,
	'a database without the extension is simply idle, not warned about');

# Once a superuser installs the extension properly, the worker serves it.
$node->safe_psql('victim_dropped', 'DROP SCHEMA benefits CASCADE; CREATE EXTENSION benefits');
my $org2 = $node->safe_psql('victim_dropped', "INSERT INTO benefits.organizations (name) VALUES ('now real') RETURNING id");
$node->safe_psql('victim_dropped', qq{SELECT benefits.create_webhook_endpoint('$org2', '$url/hook/now', ARRAY['benefit.created'])});
$node->safe_psql('victim_dropped', qq{SELECT benefits.create_benefit('custom', '$org2', 'Perk', '{"note": "hi"}')});
is(MockProviders::wait_for($node, 'victim_dropped',
	"SELECT count(*) FROM benefits.outbox WHERE state = 'done'", '1', 30),
	'1', 'after a proper CREATE EXTENSION the worker delivers there, whatever the database sets');

$node->stop;
$mock->stop;
done_testing();
