# The delivery worker starts with the server, shows itself in
# pg_stat_activity, calls the periodic functions, is woken at commit to
# deliver a signed webhook, sends nothing from a rolled-back transaction,
# refuses private addresses unless allowed, and follows SIGHUP changes of
# benefits.database_names.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use BenefitsNode;
use MockProviders;

my $mock = MockProviders->new('worker');
my $url = $mock->url;
my $node = BenefitsNode::new_node('worker', conf => qq{
benefits.github_api_url = '$url'
benefits.discord_api_url = '$url'
benefits.http_timeout = '2s'
benefits.retry_initial_delay = '100ms'
benefits.retry_max_delay = '1s'
benefits.maintenance_interval = '1s'
track_functions = 'all'
});
$node->start;

is(MockProviders::wait_for($node, 'postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'benefits worker' AND datname = 'postgres'", '1'),
	'1', 'one worker serves database postgres');

# Before the extension exists the worker idles; afterwards it serves.
$node->safe_psql('postgres', 'CREATE EXTENSION benefits');

# Periodic calls: placeholders unless the real functions are installed.
for my $f ('flush_validation_stats', 'run_maintenance')
{
	$node->safe_psql('postgres', qq{
DO \$\$ BEGIN
  IF to_regprocedure('benefits.$f()') IS NULL THEN
    CREATE FUNCTION benefits.$f() RETURNS void LANGUAGE plpgsql AS 'BEGIN END';
  END IF;
END \$\$});
}
is(MockProviders::wait_for($node, 'postgres', q{
SELECT count(*) FROM pg_stat_user_functions
 WHERE schemaname = 'benefits' AND funcname IN ('flush_validation_stats', 'run_maintenance') AND calls >= 2}, '2', 30),
	'2', 'the worker calls flush_validation_stats() and run_maintenance() on schedule');

# A webhook delivery, woken at commit.
my $org = $node->safe_psql('postgres', "INSERT INTO benefits.organizations (name) VALUES ('o') RETURNING id");
my ($ep, $secret) = split /\|/, $node->safe_psql('postgres', qq{
SELECT id, secret FROM benefits.create_webhook_endpoint('$org', '$url/hook/a', ARRAY['benefit_grant.created'])});
$mock->control(secrets => { '/hook/a' => $secret });
my $body = '{"data": {"id": "x"}, "type": "benefit_grant.created"}';
$node->safe_psql('postgres', qq{
BEGIN;
INSERT INTO benefits.outbox (organization_id, kind, endpoint_id, event_type, message_id, action, payload)
VALUES ('$org', 'webhook', '$ep', 'benefit_grant.created', 'msg_rolled_back', 'deliver', '$body');
ROLLBACK;
});
my $t0 = time();
$node->safe_psql('postgres', qq{
INSERT INTO benefits.outbox (organization_id, kind, endpoint_id, event_type, message_id, action, payload)
VALUES ('$org', 'webhook', '$ep', 'benefit_grant.created', 'msg_first', 'deliver', '$body')});
is(MockProviders::wait_for($node, 'postgres', "SELECT state FROM benefits.outbox WHERE message_id = 'msg_first'", 'done'),
	'done', 'the delivery is done');
my $elapsed = time() - $t0;
cmp_ok($elapsed, '<', 5, "delivered ${elapsed}s after commit (woken by the commit, not the 10 s timer)");
my @posts = grep { $_->{method} eq 'POST' } $mock->requests;
is(scalar(@posts), 1, 'exactly one request reached the receiver');
is($posts[0]{headers}{'webhook-id'}, 'msg_first', 'webhook-id is the message id');
is($posts[0]{body}, $node->safe_psql('postgres', "SELECT payload::text FROM benefits.outbox WHERE message_id = 'msg_first'"),
	'the body is the payload');
ok($posts[0]{signature_valid}, "the signature verifies with the receiver's copy of the secret");
is($posts[0]{headers}{'content-type'}, 'application/json', 'content type');
ok(!grep({ ($_->{headers}{'webhook-id'} // '') eq 'msg_rolled_back' } $mock->requests),
	'nothing from the rolled-back transaction was sent');

# Rate limits: the next attempt waits as long as the server says, whichever
# way it says it (retry_initial_delay is 100 ms here).
my $n = 0;
for my $mode ('429', '429body', '403reset')
{
	$n++;
	$mock->control(fail_every => 1, fail_modes => [$mode], retry_after => 2);
	$node->safe_psql('postgres', qq{
INSERT INTO benefits.outbox (organization_id, kind, endpoint_id, event_type, message_id, action, payload)
VALUES ('$org', 'webhook', '$ep', 'benefit_grant.created', 'msg_limit_$n', 'deliver', '$body')});
	my @tries;
	for (1 .. 100)
	{
		@tries = grep { ($_->{headers}{'webhook-id'} // '') eq "msg_limit_$n" } $mock->requests;
		last if @tries;
		usleep(50_000);
	}
	$mock->control(fail_every => 0);
	MockProviders::wait_for($node, 'postgres', "SELECT state FROM benefits.outbox WHERE message_id = 'msg_limit_$n'", 'done');
	@tries = grep { ($_->{headers}{'webhook-id'} // '') eq "msg_limit_$n" } $mock->requests;
	my $gap = @tries == 2 ? $tries[1]{t} - $tries[0]{t} : -1;
	# not before the server's time; the upper bound only rules out ignoring it
	# for the exponential backoff's much later attempts (and allows a busy machine)
	ok($gap >= 1.9 && $gap < 8, sprintf("%s: retried after %.2f s, as the server asked (2 s)", $mode, $gap));
}

# 410 Gone disables the endpoint at once; repeated failures disable it after
# benefits.webhook_disable_after attempts.  Either way a
# webhook_endpoint.disabled event is recorded and later deliveries are dead.
$node->safe_psql('postgres', "ALTER SYSTEM SET benefits.webhook_disable_after = 3");
$node->reload;
$mock->control(status => { '/hook/gone' => 410, '/hook/broken' => 500 });
for my $case ('gone', 'broken')
{
	my $e = $node->safe_psql('postgres', qq{
SELECT id FROM benefits.create_webhook_endpoint('$org', '$url/hook/$case', ARRAY['benefit_grant.created'])});
	$node->safe_psql('postgres', qq{
INSERT INTO benefits.outbox (organization_id, kind, endpoint_id, event_type, message_id, action, payload)
SELECT '$org', 'webhook', '$e', 'benefit_grant.created', 'msg_${case}_' || g, 'deliver', '$body'
  FROM generate_series(1, 2) g});
	is(MockProviders::wait_for($node, 'postgres', "SELECT enabled FROM benefits.webhook_endpoints WHERE id = '$e'", 'f'),
		'f', "$case: the endpoint is disabled");
	is(MockProviders::wait_for($node, 'postgres',
		"SELECT count(*) FROM benefits.dead_jobs WHERE endpoint_id = '$e'", '2'), '2', "$case: both deliveries are dead");
	is($node->safe_psql('postgres', "SELECT type FROM benefits.webhook_endpoint_events WHERE endpoint_id = '$e'"),
		'webhook_endpoint.disabled', "$case: a webhook_endpoint.disabled event is recorded");
	# both deliveries may be in flight together: at most one more request
	# than the threshold (1 for 410, 3 failures otherwise)
	my $attempts = grep { $_->{path} eq "/hook/$case" } $mock->requests;
	my $threshold = $case eq 'gone' ? 1 : 3;
	ok($attempts >= $threshold && $attempts <= $threshold + 1,
		"$case: disabled after $attempts failed request(s) (threshold $threshold)");
}

# Private addresses are refused when benefits.allow_private_network is off.
$node->safe_psql('postgres', 'ALTER SYSTEM SET benefits.allow_private_network = off');
$node->reload;
usleep(300_000);
$node->safe_psql('postgres', qq{
INSERT INTO benefits.outbox (organization_id, kind, endpoint_id, event_type, message_id, action, payload)
VALUES ('$org', 'webhook', '$ep', 'benefit_grant.created', 'msg_private', 'deliver', '$body')});
is(MockProviders::wait_for($node, 'postgres', "SELECT state FROM benefits.outbox WHERE message_id = 'msg_private'", 'dead'),
	'dead', 'a delivery to 127.0.0.1 is refused');
like($node->safe_psql('postgres', "SELECT last_error FROM benefits.dead_jobs WHERE message_id = 'msg_private'"),
	qr/refused to connect to 127\.0\.0\.1.*allow_private_network is off/, 'the refusal is the last error');
ok(!grep({ ($_->{headers}{'webhook-id'} // '') eq 'msg_private' } $mock->requests), 'no request was made');
$node->safe_psql('postgres', 'ALTER SYSTEM RESET benefits.allow_private_network');
$node->reload;
usleep(300_000);
my $dead_id = $node->safe_psql('postgres', "SELECT id FROM benefits.dead_jobs WHERE message_id = 'msg_private'");
$node->safe_psql('postgres', "SELECT benefits.retry_job($dead_id)");
is(MockProviders::wait_for($node, 'postgres', "SELECT state FROM benefits.outbox WHERE id = $dead_id", 'done'),
	'done', 'retry_job re-queues the dead job and it is delivered');

# SIGHUP: a database added to benefits.database_names gets a worker.
$node->safe_psql('postgres', 'CREATE DATABASE second');
$node->safe_psql('postgres', "ALTER SYSTEM SET benefits.database_names = 'postgres, second'");
$node->reload;
is(MockProviders::wait_for($node, 'postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'benefits worker' AND datname = 'second'", '1'),
	'1', 'reload starts a worker for the added database');
# removed again: its worker stops, and the database can be dropped
$node->safe_psql('postgres', "ALTER SYSTEM SET benefits.database_names = 'postgres'");
$node->reload;
is(MockProviders::wait_for($node, 'postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'benefits worker' AND datname = 'second'", '0'),
	'0', 'reload stops the worker of a removed database');
$node->safe_psql('postgres', 'DROP DATABASE second');

# DROP DATABASE ... WITH (FORCE) of a served database: the launcher restarts
# its worker with growing delays (no crash loop), the server stays up, and
# the worker of the other database is untouched.
$node->safe_psql('postgres', 'CREATE DATABASE third');
$node->safe_psql('postgres', "ALTER SYSTEM SET benefits.database_names = 'postgres, third'");
$node->reload;
MockProviders::wait_for($node, 'postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'benefits worker' AND datname = 'third'", '1');
my $pg_pid = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'benefits worker' AND datname = 'postgres'");
$node->safe_psql('postgres', 'DROP DATABASE third WITH (FORCE)');
sleep(4);
my $log = slurp_file($node->logfile);
my $restarts = () = $log =~ /worker for database "third" stopped; restarting/g;
cmp_ok($restarts, '<=', 3, "a dropped database costs a few restart attempts with backoff ($restarts in 4 s)");
is($node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'benefits worker' AND datname = 'postgres'"),
	$pg_pid, 'the other database\'s worker kept running');
unlike($log, qr/terminating any other active server processes/, 'no server crash');
$node->safe_psql('postgres', "ALTER SYSTEM SET benefits.database_names = 'postgres'");
$node->reload;

# DROP EXTENSION under a running worker: no crash, the worker idles, and
# serves again after CREATE EXTENSION.
my $pid = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'benefits worker' AND datname = 'postgres'");
$node->safe_psql('postgres', 'DROP EXTENSION benefits');
$node->safe_psql('postgres', 'CREATE EXTENSION benefits');
$org = $node->safe_psql('postgres', "INSERT INTO benefits.organizations (name) VALUES ('o2') RETURNING id");
$ep = $node->safe_psql('postgres', qq{
SELECT id FROM benefits.create_webhook_endpoint('$org', '$url/hook/b', ARRAY['benefit_grant.created'])});
$node->safe_psql('postgres', qq{
INSERT INTO benefits.outbox (organization_id, kind, endpoint_id, event_type, message_id, action, payload)
VALUES ('$org', 'webhook', '$ep', 'benefit_grant.created', 'msg_after_recreate', 'deliver', '$body')});
is(MockProviders::wait_for($node, 'postgres', "SELECT state FROM benefits.outbox WHERE message_id = 'msg_after_recreate'", 'done'),
	'done', 'after DROP/CREATE EXTENSION the worker delivers again');
is($node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'benefits worker' AND datname = 'postgres'"),
	$pid, 'the same worker process (no crash)');

# Done jobs are pruned after benefits.outbox_retention; dead ones are kept.
$node->safe_psql('postgres', qq{
INSERT INTO benefits.outbox (organization_id, kind, action, payload, state, last_error)
VALUES ('$org', 'github', 'add_collaborator', '{}', 'dead', 'kept')});
$node->safe_psql('postgres', "ALTER SYSTEM SET benefits.outbox_retention = '1s'");
$node->reload;
is(MockProviders::wait_for($node, 'postgres', "SELECT count(*) FROM benefits.outbox WHERE state = 'done'", '0', 30),
	'0', 'done jobs older than benefits.outbox_retention are deleted');
is($node->safe_psql('postgres', "SELECT count(*) FROM benefits.dead_jobs"), '1', 'dead jobs are kept');

$node->stop;
$mock->stop;
done_testing();
