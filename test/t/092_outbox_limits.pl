# The outbox at its edges (README, "Limits"), with time driven through the
# outbox's own columns instead of waited for:
#   - a receiver down for days: the retry schedule the worker computes with the
#     default settings, attempt by attempt (each retry made due at once), until
#     the delivery is dead;
#   - a backlog of half a million pending deliveries and as many done: the
#     worker's own claim statement (read from pg_stat_statements) against it,
#     timed and compared with the same claim against a small backlog in the
#     same run, and the delivery of 2,000 fresh jobs beside it;
#   - the endpoint of that backlog failing: disabled after
#     benefits.webhook_disable_after consecutive failures, its pending
#     deliveries dead at once, no new events queued for it until enabled;
#   - retention deleting the done jobs past benefits.outbox_retention.
# Every figure is printed (note) and the checks are on same-run ratios.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use BenefitsNode;
use MockProviders;

# rows of each kind: half a million pending and half a million done
my $backlog = $ENV{BENEFITS_BACKLOG_ROWS} // 500_000;
my $mock = MockProviders->new('outbox_limits');
my $url = $mock->url;
my $node = BenefitsNode::new_node('outbox_limits', conf => qq{
shared_preload_libraries = '\$libdir/benefits, pg_stat_statements, auto_explain'
auto_explain.log_min_duration = -1
auto_explain.log_nested_statements = on
pg_stat_statements.track = all
max_wal_size = '4GB'
checkpoint_timeout = '30min'
synchronous_commit = off
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION benefits; CREATE EXTENSION pg_stat_statements');
my $org = $node->safe_psql('postgres', "INSERT INTO benefits.organizations (name) VALUES ('limits') RETURNING id");
# A receiver that answers, and one that is down (nothing listens on port 1).
my ($live, $live_secret) = split /\|/, $node->safe_psql('postgres', qq{
SELECT id, secret FROM benefits.create_webhook_endpoint('$org', '$url/hooks/live', ARRAY['benefit_grant.created'])});
my $down = $node->safe_psql('postgres', qq{
SELECT id FROM benefits.create_webhook_endpoint('$org', 'http://127.0.0.1:1/hooks/down', ARRAY['benefit_grant.created'])});
$mock->control(secrets => { '/hooks/live' => $live_secret });

sub sql { return $node->safe_psql('postgres', $_[0]); }

# Queue n webhook deliveries to an endpoint: state, run_after, finished_at as given.
sub queue
{
	my ($endpoint, $prefix, $n, %o) = @_;
	my $state = $o{state} // 'pending';
	my $run_after = $o{run_after} // 'now()';
	my $finished = $o{finished_at} // 'NULL';
	my $attempts = $o{attempts} // 0;
	sql(qq{
INSERT INTO benefits.outbox (organization_id, kind, endpoint_id, event_type, message_id, action, payload,
                             state, attempts, run_after, finished_at)
SELECT '$org', 'webhook', '$endpoint', 'benefit_grant.created', '${prefix}_' || g, 'deliver',
       jsonb_build_object('type', 'benefit_grant.created', 'data', jsonb_build_object('n', g)),
       '$state', $attempts, $run_after, $finished
  FROM generate_series(1, $n) g});
}

sub wait_for
{
	my ($query, $expected, $timeout) = @_;
	return MockProviders::wait_for($node, 'postgres', $query, $expected, $timeout // 120);
}

# ---------------------------------------------------------------------------
# A receiver down for days: the default schedule (benefits.retry_initial_delay
# 10s, retry_max_delay 1h, max_attempts 12).  After each failed attempt the
# delay the worker chose is read from run_after, then the retry is made due.
queue($down, 'down', 1);
my $job = sql("SELECT max(id) FROM benefits.outbox");
my (@delays, $state);
for my $attempt (1 .. 12)
{
	$state = wait_for(qq{SELECT CASE WHEN state = 'dead' THEN 'dead' WHEN state = 'pending' AND attempts = $attempt
	                                 THEN 'waiting' END FROM benefits.outbox WHERE id = $job},
		$attempt == 12 ? 'dead' : 'waiting', 60);
	last if $state ne 'waiting';
	push @delays, sql("SELECT round(extract(epoch FROM run_after - now()))::int FROM benefits.outbox WHERE id = $job");
	sql("UPDATE benefits.outbox SET run_after = now() WHERE id = $job; SELECT benefits.wake_worker()");
}
is($state, 'dead', 'a delivery to a receiver that is down is dead after benefits.max_attempts (12) attempts');
is(scalar(@delays), 11, '11 retries between the 12 attempts');
my $in_range = 1;
for my $i (0 .. $#delays)
{
	my $step = 10 * 2**$i;
	$step = 3600 if $step > 3600;
	# half the step fixed, half random (src/retry.c); a second of rounding
	$in_range = 0 unless $delays[$i] >= $step / 2 - 1 && $delays[$i] <= $step;
}
my $total = 0;
$total += $_ for @delays;
ok($in_range, 'each retry waited between half and all of min(10 s * 2^(attempt-1), 1 h)');
note(sprintf('retry delays (s): %s; dead %.1f h after the first attempt (bounds with these settings: %.1f to %.1f h)',
	join(' ', @delays), $total / 3600, 12310 / 2 / 3600, 12310 / 3600));
like(sql("SELECT last_error FROM benefits.dead_jobs WHERE id = $job"), qr/Couldn't connect|connect/i,
	'the dead job keeps the last error');
is(sql("SELECT consecutive_failures || ' ' || enabled FROM benefits.webhook_endpoints WHERE id = '$down'"),
	'12 true', 'twelve failures do not disable the endpoint (benefits.webhook_disable_after is 100)');

# ---------------------------------------------------------------------------
# 2,000 fresh deliveries to the live receiver and the worker's own claim
# statement while it takes them (its figures from pg_stat_statements), first
# beside no backlog.
sub claim_stats
{
	my ($calls, $rows, $ms, $blocks) = split /\|/, sql(q{
SELECT sum(calls), sum(rows), sum(total_exec_time), sum(shared_blks_hit + shared_blks_read)
  FROM pg_stat_statements WHERE query LIKE 'WITH c AS%' AND query LIKE '%FOR UPDATE OF o SKIP LOCKED%'});
	return { calls => $calls, rows => $rows, ms_per_row => $ms / $rows, blocks_per_row => $blocks / $rows };
}
sub deliver_fresh
{
	my ($prefix) = @_;
	sql("SELECT pg_stat_statements_reset()");
	my $t0 = time();
	queue($live, $prefix, 2000);
	wait_for("SELECT count(*) FROM benefits.outbox WHERE message_id LIKE '${prefix}_%' AND state <> 'done'", '0', 300);
	my $elapsed = time() - $t0;
	return ($elapsed, claim_stats());
}
my ($small_delivery, $small) = deliver_fresh('small');

# ---------------------------------------------------------------------------
# The backlog of a receiver down for days: half a million pending deliveries to
# it, retrying in two days, and as many done deliveries past retention (8
# days old; retention is held off until its own part below).
sql("ALTER SYSTEM SET benefits.outbox_retention = -1; SELECT pg_reload_conf()");
my $t0 = time();
queue($live, 'old', $backlog, state => 'done', finished_at => "now() - interval '8 days'");
queue($down, 'later', $backlog, attempts => 6, run_after => "now() + interval '2 days'");
my $queued_s = time() - $t0;
sql('VACUUM ANALYZE benefits.outbox');
note(sprintf('queued %d outbox rows with INSERT ... SELECT in %.1f s', 2 * $backlog, $queued_s));
is(sql("SELECT count(*) FROM benefits.outbox"), 2 * $backlog + 2000 + 1, 'the backlog is in place');

# the same beside it, with auto_explain logging the claim's plans
my $log_offset = -s $node->logfile;
sql("ALTER SYSTEM SET auto_explain.log_min_duration = 0; SELECT pg_reload_conf()");
my ($large_delivery, $large) = deliver_fresh('large');
sql("ALTER SYSTEM SET auto_explain.log_min_duration = -1; SELECT pg_reload_conf()");
note(sprintf('2,000 fresh deliveries: %.2f s beside the backlog, %.2f s beside none: ratio %.2f',
	$large_delivery, $small_delivery, $large_delivery / $small_delivery));
note(sprintf('their claims: %d calls, %d rows, %.3f ms and %.2f buffers per claimed row beside the backlog; '
	  . '%d calls, %d rows, %.3f ms and %.2f buffers per row beside none: ratio %.2f by time, %.2f by buffers',
	@$large{qw(calls rows ms_per_row blocks_per_row)}, @$small{qw(calls rows ms_per_row blocks_per_row)},
	$large->{ms_per_row} / $small->{ms_per_row}, $large->{blocks_per_row} / $small->{blocks_per_row}));
cmp_ok($large->{blocks_per_row} / $small->{blocks_per_row}, '<', 3,
	'the backlog costs the claim less than 3 times the buffers per claimed job');
cmp_ok($large_delivery / $small_delivery, '<', 3, 'fresh deliveries are not held back by the backlog');
my $log = substr(slurp_file($node->logfile), $log_offset);
my @plans = grep { /Query Text: WITH c AS .*FOR UPDATE OF o SKIP LOCKED/ } split /\n(?=\S.*LOG:)/, $log;
ok(@plans > 0, 'auto_explain logged the claim');
is(scalar(grep { /Seq Scan/ } @plans), 0, 'no claim plan reads a table sequentially');
is(scalar(grep { !/outbox_due/ } @plans), 0, 'every claim plan walks the due index');

# ---------------------------------------------------------------------------
# Two days pass (the retries are made due): the due ones fail, the endpoint
# is disabled at the 100th consecutive failure, and every pending delivery
# of it is dead in that same transaction.
$t0 = time();
sql("UPDATE benefits.outbox SET run_after = now() WHERE endpoint_id = '$down' AND state = 'pending'");
my $forward_s = time() - $t0;
sql("SELECT pg_stat_statements_reset()");
$t0 = time();
sql("SELECT benefits.wake_worker()");
is(wait_for("SELECT enabled FROM benefits.webhook_endpoints WHERE id = '$down'", 'f', 600), 'f',
	'the down endpoint is disabled');
# the deliveries in flight when it was disabled are recorded as failures
# after it: they are retried later and die at their next claim
is(wait_for("SELECT count(*) FROM benefits.outbox WHERE endpoint_id = '$down' AND state = 'running'", '0', 600), '0',
	'nothing in flight to it any more');
my $disable_s = time() - $t0;
my $inflight = sql("SELECT count(*) FROM benefits.outbox WHERE endpoint_id = '$down' AND state = 'pending'");
# (claimed: in flight, at most benefits.worker_max_inflight 256, or finished
# and waiting to be recorded, at most a record batch of 128)
cmp_ok($inflight, '<=', 256 + 128, 'every pending delivery is dead but the ones the worker had claimed');
sql("UPDATE benefits.outbox SET run_after = now() WHERE endpoint_id = '$down' AND state = 'pending';"
	. " SELECT benefits.wake_worker()");
is(wait_for("SELECT count(*) FROM benefits.outbox WHERE endpoint_id = '$down' AND state <> 'dead'", '0', 60), '0',
	'those are dead at their next claim');
is(sql("SELECT count(*) FROM benefits.outbox WHERE endpoint_id = '$down' AND state = 'dead'"
	  . " AND last_error NOT LIKE 'webhook endpoint disabled: %' AND last_error <> 'webhook: the endpoint is disabled'"
	  . " AND message_id <> 'down_1'"), '0', 'each names the disabled endpoint as its reason');
my $draining = claim_stats();
my $disable_ms = sql(q{SELECT round(max(max_exec_time)) FROM pg_stat_statements
                        WHERE query LIKE 'SELECT benefits.webhook_endpoint_failed%'});
note(sprintf('%d retries made due in %.1f s; from then to all dead %.1f s, the longest webhook_endpoint_failed '
	  . 'call (the one that disabled the endpoint) %s ms; claims meanwhile: %d calls, %d rows, %.3f ms and '
	  . '%.2f buffers per claimed row; %d had been claimed', $backlog, $forward_s, $disable_s, $disable_ms,
	@$draining{qw(calls rows ms_per_row blocks_per_row)}, $inflight));
like(sql("SELECT disabled_reason FROM benefits.webhook_endpoints WHERE id = '$down'"),
	qr/^100 consecutive failed deliveries/, 'the reason names the 100 consecutive failures');
is(sql("SELECT count(*) FROM benefits.webhook_endpoint_events WHERE endpoint_id = '$down'"), '1',
	'one webhook_endpoint.disabled event');
cmp_ok(sql("SELECT count(*) FROM benefits.outbox WHERE endpoint_id = '$down' AND attempts = 6"), '>=',
	$backlog - 1000, 'nearly all were dead-lettered without another attempt');

# A new event while it is disabled is not queued for it; enabling it queues
# the next ones, and the dead ones wait for retry_job.
my $customer = sql("INSERT INTO benefits.customers (organization_id, external_id) VALUES ('$org', 'c1') RETURNING id");
my $first = sql("SELECT id FROM benefits.create_benefit('custom', '$org', 'note', '{}')");
sql("SELECT benefits.grant_benefit('$customer', '$first')");
is(sql("SELECT string_agg(CASE endpoint_id WHEN '$live' THEN 'live' ELSE 'down' END, ',') FROM benefits.outbox"
	  . " WHERE grant_id IS NOT NULL"), 'live', 'an event while the endpoint is disabled is queued for the other only');
sql("SELECT benefits.enable_webhook_endpoint('$down')");
my $second = sql("SELECT id FROM benefits.create_benefit('custom', '$org', 'another', '{}')");
sql("SELECT benefits.grant_benefit('$customer', '$second')");
is(sql("SELECT count(*) FROM benefits.outbox WHERE endpoint_id = '$down' AND grant_id IS NOT NULL"), '1',
	'once enabled, the next event is queued for it');
is(sql("SELECT count(*) FROM benefits.dead_jobs WHERE endpoint_id = '$down'"), $backlog + 1,
	'the dead deliveries stay dead (benefits.retry_job queues one again)');

# ---------------------------------------------------------------------------
# Retention back on: the done jobs older than benefits.outbox_retention
# (7 days) are deleted by the worker, batch after batch while it is behind,
# without waiting for benefits.maintenance_interval (1 minute); dead jobs stay.
sql("SELECT pg_stat_statements_reset()");
$t0 = time();
sql("ALTER SYSTEM RESET benefits.outbox_retention; SELECT pg_reload_conf()");
is(wait_for("SELECT count(*) FROM benefits.outbox WHERE state = 'done' AND finished_at < now() - interval '7 days'",
	'0', 600), '0', 'retention deleted every done job past benefits.outbox_retention');
my $prune_s = time() - $t0;
my ($prune_calls, $prune_mean) = split /\|/, sql(q{SELECT sum(calls), round(sum(total_exec_time) / sum(calls))
                                                    FROM pg_stat_statements WHERE query LIKE 'DELETE FROM benefits.outbox%'});
note(sprintf('retention: %d done rows deleted in %.1f s (%.0f rows/s), %s batches of mean %s ms',
	$backlog, $prune_s, $backlog / $prune_s, $prune_calls, $prune_mean));
cmp_ok($prune_s, '<', 300, 'they are deleted in minutes, not one batch of 10,000 per maintenance interval (1 minute)');
is(sql("SELECT count(*) FROM benefits.outbox WHERE state = 'dead'"), $backlog + 1, 'dead jobs are kept');

$node->stop;
done_testing();
