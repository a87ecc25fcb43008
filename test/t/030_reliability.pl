# Delivery guarantees under failure, each shown with final counts:
#   - two databases served by one cluster;
#   - 1,000 jobs while the mocks fail a third of the requests (500, 429 with
#     Retry-After, connection reset, hang past the timeout): every job done
#     exactly once in effect, in per-grant order, webhook-id stable;
#   - the worker killed with SIGKILL mid-batch, and the server stopped in
#     immediate mode, each with 1,000 jobs in flight: nothing lost, nothing
#     from a rolled-back transaction sent, webhook-ids unchanged.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use BenefitsNode;
use MockProviders;

my $mock = MockProviders->new('reliability');
my $url = $mock->url;
my $node = BenefitsNode::new_node('reliability', databases => 'postgres,shop2', conf => qq{
benefits.github_api_url = '$url'
benefits.http_timeout = '3s'
restart_after_crash = on
benefits.retry_initial_delay = '50ms'
benefits.retry_max_delay = '1s'
benefits.max_attempts = 100
});
$node->start;
for my $db ('postgres', 'shop2')
{
	$node->safe_psql('postgres', 'CREATE DATABASE shop2') if $db eq 'shop2';
	$node->safe_psql($db, 'CREATE EXTENSION benefits');
}

sub setup_org
{
	my ($db, $path) = @_;
	my $org = $node->safe_psql($db, "INSERT INTO benefits.organizations (name) VALUES ('$db') RETURNING id");
	my ($ep, $secret) = split /\|/, $node->safe_psql($db, qq{
SELECT id, secret FROM benefits.create_webhook_endpoint('$org', '$url$path', ARRAY['benefit_grant.updated'])});
	return ($org, $ep, $secret);
}

# Queue n webhooks with message ids PREFIX_1..n in one transaction.
sub queue_webhooks
{
	my ($db, $org, $ep, $prefix, $n, $end) = @_;
	$node->safe_psql($db, qq{
BEGIN;
INSERT INTO benefits.outbox (organization_id, kind, endpoint_id, event_type, message_id, action, payload)
SELECT '$org', 'webhook', '$ep', 'benefit_grant.updated', '${prefix}_' || g, 'deliver',
       jsonb_build_object('type', 'benefit_grant.updated', 'data', jsonb_build_object('n', g))
  FROM generate_series(1, $n) g;
$end;});
}

sub pending
{
	my ($db) = @_;
	return $node->safe_psql($db, "SELECT count(*) FROM benefits.outbox WHERE state <> 'done'");
}

# Webhook requests by webhook-id prefix: (all attempts, 2xx answers, distinct ids).
sub webhook_stats
{
	my ($prefix) = @_;
	my (%attempts, %ok);
	for my $r ($mock->requests)
	{
		next unless $r->{method} eq 'POST';
		my $id = $r->{headers}{'webhook-id'} // '';
		next unless $id =~ /^\Q$prefix\E_/;
		$attempts{$id}++;
		$ok{$id}++ if $r->{answer} =~ /^2\d\d$/;
	}
	return (\%attempts, \%ok);
}

# --- Two databases served by one cluster.
is(MockProviders::wait_for($node, 'postgres',
	"SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_stat_activity WHERE backend_type = 'benefits worker'",
	'postgres,shop2', 30),
	'postgres,shop2', 'one worker per database in benefits.database_names (shop2\'s starts once it exists)');
my ($org1, $ep1, $secret1) = setup_org('postgres', '/hooks/one');
my ($org2, $ep2, $secret2) = setup_org('shop2', '/hooks/two');
$mock->control(secrets => { '/hooks/one' => $secret1, '/hooks/two' => $secret2 });
queue_webhooks('postgres', $org1, $ep1, 'db1', 100, 'COMMIT');
queue_webhooks('shop2', $org2, $ep2, 'db2', 100, 'COMMIT');
is(MockProviders::wait_for($node, 'postgres', "SELECT count(*) FROM benefits.outbox WHERE state <> 'done'", '0'), '0',
	'database postgres: all delivered');
is(MockProviders::wait_for($node, 'shop2', "SELECT count(*) FROM benefits.outbox WHERE state <> 'done'", '0'), '0',
	'database shop2: all delivered');
my (undef, $ok1) = webhook_stats('db1');
my (undef, $ok2) = webhook_stats('db2');
is(scalar(keys %$ok1) . '/' . scalar(keys %$ok2), '100/100', 'each database\'s 100 webhooks reached the receiver');
is(scalar(grep { $_->{method} eq 'POST' && $_->{path} eq '/hooks/two' && $_->{signature_valid} } $mock->requests), 100,
	'signed with their own database\'s endpoint secret');

# --- 1,000 jobs with a third of the requests failing.
# 160 grants, each with a chain of GitHub calls whose final effect depends on
# their order (invite pull, change to push, revoke, invite admin) and a chain
# of 2 webhooks: 160 * (4 + 2) = 960 jobs, plus 40 webhooks of no grant.
$mock->control(fail_every => 3,
	fail_modes => [ '500', '429', 'reset', '500', 'reset', '429', '500', '429', 'reset', 'hang' ],
	retry_after => 1, hang_seconds => 4);
my $before = $node->safe_psql('postgres', 'SELECT max(id) FROM benefits.outbox');
$node->safe_psql('postgres', qq{
BEGIN;
CREATE TEMP TABLE g AS SELECT n, gen_random_uuid() AS id FROM generate_series(1, 160) n;
INSERT INTO benefits.outbox (organization_id, kind, grant_id, action, payload)
SELECT '$org1', 'github', g.id, s.action,
       jsonb_build_object('owner', 'acme', 'repo', 'r' || (g.n % 7), 'username', 'user' || g.n)
       || CASE WHEN s.perm IS NULL THEN '{}' ELSE jsonb_build_object('permission', s.perm) END
  FROM g CROSS JOIN (VALUES (1, 'add_collaborator', 'pull'), (2, 'add_collaborator', 'push'),
                            (3, 'remove_collaborator', NULL), (4, 'add_collaborator', 'admin')) s(k, action, perm)
 ORDER BY s.k, g.n;
INSERT INTO benefits.outbox (organization_id, kind, grant_id, endpoint_id, event_type, message_id, action, payload)
SELECT '$org1', 'webhook', g.id, '$ep1', 'benefit_grant.updated', 'chain_' || g.n || '_' || s.k, 'deliver',
       jsonb_build_object('type', 'benefit_grant.updated', 'n', g.n, 'k', s.k)
  FROM g CROSS JOIN generate_series(1, 2) s(k)
 ORDER BY s.k, g.n;
INSERT INTO benefits.outbox (organization_id, kind, endpoint_id, event_type, message_id, action, payload)
SELECT '$org1', 'webhook', '$ep1', 'benefit_grant.updated', 'loose_' || n, 'deliver', jsonb_build_object('n', n)
  FROM generate_series(1, 40) n;
COMMIT;});
is($node->safe_psql('postgres', "SELECT count(*) FROM benefits.outbox WHERE id > $before"), '1000', '1,000 jobs queued');
is(MockProviders::wait_for($node, 'postgres', "SELECT count(*) FROM benefits.outbox WHERE state <> 'done'", '0', 240),
	'0', 'all 1,000 jobs done despite the failures');
my $state = $mock->state;
cmp_ok($state->{failures}, '>=', 300, "the mocks failed $state->{failures} of $state->{requests} requests");
is($node->safe_psql('postgres', 'SELECT count(*) FROM benefits.dead_jobs'), '0', 'no job died');
cmp_ok($node->safe_psql('postgres', 'SELECT count(*) FROM benefits.outbox WHERE attempts > 1'), '>', 100,
	'many jobs needed retries');

# Effects at the provider, per user, in the order they happened.  A request
# the mock answered after the worker had timed out is sent again: the same
# idempotent effect repeated back to back, which changes nothing.
my (%effects, $repeats);
for my $r ($mock->requests)
{
	next unless $r->{effect};
	my (undef, $user, $perm) = split /:/, $r->{effect};
	my $e = $r->{effect} =~ /^invite/ ? "invite:$perm" : ($r->{effect} =~ /^(\w+)/)[0];
	my $list = $effects{$user} //= [];
	if (@$list && $list->[-1] eq $e) { $repeats++; next; }
	push @$list, $e;
}
my $in_order = grep { join(',', @{ $effects{"user$_"} // [] }) eq 'invite:pull,invite:push,uninvite,invite:admin' } 1 .. 160;
is($in_order, 160, 'every grant\'s GitHub calls took effect once each, in order (invite pull, push, uninvite, invite admin)');
note('idempotent repeats of an effect after a timeout: ' . ($repeats // 0));
my $final = grep {
	my $n = $_;
	($state->{invitations}{ 'acme/r' . ($n % 7) }{"user$n"}{permission} // '') eq 'admin'
} 1 .. 160;
is($final, 160, 'final provider state: every user invited with admin (the last job of the chain)');

my ($attempts, $ok) = webhook_stats('chain');
my ($lattempts, $lok) = webhook_stats('loose');
is(scalar(keys %$ok) + scalar(keys %$lok), 360, 'all 360 webhooks delivered');
my $twice = grep { $_ != 1 } values %$ok, values %$lok;
note("$twice of 360 webhooks were answered 2xx twice (the receiver was slower than the timeout); "
	. 'receivers deduplicate by webhook-id');
is(scalar(keys %$attempts) + scalar(keys %$lattempts), 360,
	'retries reused the webhook-id: no other id was ever sent');
my %first_ok;
my $i = 0;
for my $r ($mock->requests)
{
	$i++;
	my $id = $r->{headers}{'webhook-id'} // '';
	$first_ok{$id} //= $i if $id =~ /^chain_/ && $r->{answer} =~ /^2/;
}
is(scalar(grep { $first_ok{"chain_${_}_1"} < $first_ok{"chain_${_}_2"} } 1 .. 160), 160,
	'per-grant webhook order: event 1 reached the receiver before event 2 for all 160 grants');

# --- Crashes with 1,000 jobs in flight.
$mock->control(fail_every => 0, delay_ms => 30);
sub crash_test
{
	my ($name, $crash) = @_;
	queue_webhooks('postgres', $org1, $ep1, "${name}_rb", 100, 'ROLLBACK');
	queue_webhooks('postgres', $org1, $ep1, $name, 1000, 'COMMIT');
	# wait until deliveries are under way, then crash
	for (1 .. 1000)
	{
		last if $node->safe_psql('postgres',
			"SELECT count(*) >= 50 FROM benefits.outbox WHERE message_id LIKE '${name}_%' AND state = 'done'") eq 't';
		usleep(10_000);
	}
	my $done_before = $node->safe_psql('postgres',
		"SELECT count(*) FROM benefits.outbox WHERE message_id LIKE '${name}_%' AND state = 'done'");
	$crash->();
	ok($done_before < 1000, "$name: crashed with " . (1000 - $done_before) . ' of 1,000 jobs not yet done');
	is(MockProviders::wait_for($node, 'postgres',
		"SELECT count(*) FROM benefits.outbox WHERE message_id LIKE '${name}_%' AND state = 'done'", '1000', 120),
		'1000', "$name: all 1,000 jobs done after the restart");
	my ($att, $okc) = webhook_stats($name);
	is(scalar(keys %$okc), 1000, "$name: all 1,000 webhook-ids reached the receiver (nothing lost)");
	my $dups = grep { $_ > 1 } values %$okc;
	ok($dups <= 1000, "$name: $dups delivered twice (at-least-once: the receiver dedupes by webhook-id)");
	is(scalar(keys %$att), 1000, "$name: no webhook-id other than the 1,000 committed ones was sent");
	my ($rb) = webhook_stats("${name}_rb");
	is(scalar(keys %$rb), 0, "$name: nothing from the rolled-back transaction was sent");
}

crash_test('sigkill', sub {
	my $pid = $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'benefits worker' AND datname = 'postgres'");
	kill 'KILL', $pid;
	# The postmaster resets every backend after a crashed child, but a
	# connection can still succeed before it has noticed: wait until a worker
	# with another pid runs, which is only after the reset and recovery.
	for (1 .. 300)
	{
		last if (eval {
			$node->safe_psql('postgres',
				"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'benefits worker' "
				  . "AND datname = 'postgres' AND pid <> $pid");
		} // '') eq '1';
		usleep(100_000);
	}
});
like(slurp_file($node->logfile), qr/released \d+ jobs leased by a previous worker/,
	'the new worker released the killed worker\'s leases at once');

crash_test('immediate', sub {
	$node->stop('immediate');
	$node->start;
});

$node->stop;
$mock->stop;
done_testing();
