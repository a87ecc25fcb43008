# The worker gives back what a burst of deliveries left behind: 250
# deliveries to a receiver that answers after 1 s are all in flight at once
# (each on a libcurl handle with its buffers), and at the next maintenance
# after they are done the worker frees the spare handles it no longer needs
# and the C heap's free pages, so its private memory (RssAnon) falls back
# to what it was before the burst instead of staying at the burst's height.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use BenefitsNode;
use MockProviders;

my $mock = MockProviders->new('worker_memory');
my $url = $mock->url;
my $node = BenefitsNode::new_node('worker_memory', conf => qq{
benefits.maintenance_interval = '1s'
benefits.worker_max_inflight = 256
benefits.http_timeout = '60s'
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION benefits');
sub sql { return $node->safe_psql('postgres', $_[0]); }
sub wait_q { return MockProviders::wait_for($node, 'postgres', $_[0], $_[1], $_[2]); }

my $org = sql("INSERT INTO benefits.organizations (name) VALUES ('memory') RETURNING id");
my ($ep, $secret) = split /\|/, sql(qq{
SELECT id, secret FROM benefits.create_webhook_endpoint('$org', '$url/hooks/slow', ARRAY['benefit_grant.created'])});
$mock->control(secrets => { '/hooks/slow' => $secret }, delay_paths => { '/hooks/slow' => 1000 });

# The worker's private memory, in kB.
sub worker_rss
{
	my $pid = sql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'benefits worker' AND datname = 'postgres'");
	open(my $fh, '<', "/proc/$pid/status") or die "no worker process $pid";
	while (<$fh>) { return $1 if /^RssAnon:\s+(\d+)/; }
	die "no RssAnon in /proc/$pid/status";
}

sub deliver
{
	my ($prefix, $n) = @_;
	sql(qq{
INSERT INTO benefits.outbox (organization_id, kind, endpoint_id, event_type, message_id, action, payload)
SELECT '$org', 'webhook', '$ep', 'benefit_grant.created', '${prefix}_' || g, 'deliver',
       jsonb_build_object('type', 'benefit_grant.created', 'data', jsonb_build_object('n', g))
  FROM generate_series(1, $n) g});
	sql("SELECT benefits.wake_worker()");
}

# Warm up with a few deliveries, one at a time, then let maintenance run.
for my $i (1 .. 5)
{
	deliver("warm$i", 2);
	wait_q("SELECT count(*) FROM benefits.outbox WHERE state <> 'done'", '0', 30);
}
sleep 3;
my $before = worker_rss();

deliver('burst', 250);
my $peak = 0;
for (1 .. 40)
{
	my $rss = worker_rss();
	$peak = $rss if $rss > $peak;
	last if sql("SELECT count(*) FROM benefits.outbox WHERE state = 'running'") eq '0'
	  && sql("SELECT count(*) FROM benefits.outbox WHERE state <> 'done'") eq '0';
	usleep(100_000);
}
is(wait_q("SELECT count(*) FROM benefits.outbox WHERE state <> 'done'", '0', 60), '0', 'the 250 deliveries are done');
is(scalar(grep { $_->{path} eq '/hooks/slow' } $mock->requests), 260, 'the receiver got each once');
sleep 3;    # three maintenance intervals
my $after = worker_rss();
note("worker RssAnon: before the burst $before kB, highest during it $peak kB, 3 s after it $after kB");
SKIP:
{
	# ASan's allocator keeps freed memory in quarantine and ignores malloc_trim
	skip 'the memory figures mean nothing under AddressSanitizer (SANITIZE=1)', 2 if ($ENV{SANITIZE} // '0') eq '1';
	cmp_ok($peak - $before, '>', 2000, 'the burst raised the worker\'s private memory by more than 2 MB');
	cmp_ok($after - $before, '<', ($peak - $before) / 4,
		'after it, less than a quarter of that rise is left');
}

$node->stop;
$mock->stop;
done_testing();
