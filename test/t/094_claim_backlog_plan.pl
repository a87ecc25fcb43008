# The claim stays an index lookup per candidate however large the backlog.
# The claim checks, for each candidate job, that no earlier job of its grant
# (or of its collaborator or member) is pending or running.  Planned while
# the outbox looked empty (statistics from a quiet moment, or reset by an
# immediate restart, which stops autovacuum until they build up again),
# those checks once scanned the whole due index for every candidate, and a
# soak's backlog then grew faster than the worker could claim.  Here the
# statistics say the outbox has no pending job while 20,000 wait; auto_explain
# shows the worker's claim plan: each check must use its own index.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use BenefitsNode;
use MockProviders;

my $mock = MockProviders->new('claim_plan');
my $url = $mock->url;
my $node = BenefitsNode::new_node('claim_plan', conf => qq{
shared_preload_libraries = '\$libdir/benefits,auto_explain'
autovacuum = off
benefits.worker_delivery = off
});
$node->start;
sub sql { return $node->safe_psql('postgres', $_[0]); }
sql('CREATE EXTENSION benefits');
my $org = sql("INSERT INTO benefits.organizations (name) VALUES ('plan') RETURNING id");
my $ep = sql(qq{SELECT id FROM benefits.create_webhook_endpoint('$org', '$url/hook', ARRAY['benefit_grant.created'])});

# Statistics of a quiet outbox: 5,000 jobs done, none pending.
sql(qq{
INSERT INTO benefits.outbox (organization_id, kind, grant_id, endpoint_id, event_type, message_id, action, payload, state, finished_at)
SELECT '$org', 'webhook', gen_random_uuid(), '$ep', 'benefit_grant.created', 'done_' || g, 'deliver', '{}', 'done', now()
  FROM generate_series(1, 5000) g});
sql('VACUUM ANALYZE benefits.outbox');
is(sql("SELECT reltuples FROM pg_class WHERE relname = 'outbox_due'"), '0', 'the statistics say no job is pending');

# Then a backlog: 20,000 jobs due later, each of its own grant, and 50 due now.
sql(qq{
INSERT INTO benefits.outbox (organization_id, kind, grant_id, endpoint_id, event_type, message_id, action, payload, run_after)
SELECT '$org', 'webhook', gen_random_uuid(), '$ep', 'benefit_grant.created', 'later_' || g, 'deliver', '{}',
       now() + interval '1 hour'
  FROM generate_series(1, 20000) g;
INSERT INTO benefits.outbox (organization_id, kind, grant_id, endpoint_id, event_type, message_id, action, payload)
SELECT '$org', 'webhook', gen_random_uuid(), '$ep', 'benefit_grant.created', 'now_' || g, 'deliver', '{}'
  FROM generate_series(1, 50) g});

# The worker plans its claim with auto_explain on, and sends the 50.
sql(q{ALTER SYSTEM SET auto_explain.log_min_duration = 0});
sql(q{ALTER SYSTEM SET auto_explain.log_nested_statements = on});
sql(q{ALTER SYSTEM SET benefits.worker_delivery = on});
$node->reload;
is(MockProviders::wait_for($node, 'postgres', "SELECT count(*) FROM benefits.outbox WHERE message_id LIKE 'now_%' AND state = 'done'",
	'50', 60), '50', 'the 50 due jobs are delivered');
sql(q{ALTER SYSTEM RESET auto_explain.log_min_duration});
$node->reload;

my ($plan) = slurp_file($node->logfile) =~ /(Query Text: WITH c AS \(\s*SELECT o\.id, o\.endpoint_id.*?)(?:\n\S|\z)/s;
ok(defined $plan, 'the worker\'s claim plan is in the log') or diag(slurp_file($node->logfile));
$plan //= '';
like($plan, qr/Index (Only )?Scan using outbox_grant on outbox p\b/, 'the grant check looks up its grant in outbox_grant');
like($plan, qr/Index (Only )?Scan using outbox_chain on outbox q\b/, 'the chain check looks up its chain in outbox_chain');
unlike($plan, qr/using outbox_due on outbox [pq]\b/, 'neither check scans the due index');
note($plan);

# The grant check in its old form ("pending or running") and in its new one,
# as the claim has it (a subplan per candidate), for the first 200
# candidates of this backlog, in one session of this run.
sub check_ms
{
	my ($states) = @_;
	my $json = sql(qq{
SET enable_seqscan = off;
EXPLAIN (ANALYZE, FORMAT JSON)
SELECT count(*) FROM (SELECT * FROM benefits.outbox WHERE state IN ('pending', 'running')
                       ORDER BY run_after, id LIMIT 200) o
 WHERE (o.grant_id IS NULL OR NOT EXISTS (SELECT 1 FROM benefits.outbox p
                                          WHERE p.grant_id = o.grant_id AND p.id < o.id AND $states))});
	my ($ms) = $json =~ /"Execution Time": ([0-9.]+)/;
	return $ms;
}
my $old = check_ms(q{p.state IN ('pending', 'running')});
my $new = check_ms(q{p.state <> 'done' AND p.state <> 'dead'});
note(sprintf('grant check for 200 candidates beside 20,000 pending: %.1f ms as "pending or running", '
	  . '%.1f ms as "not done and not dead" (%.0f times faster)', $old, $new, $old / $new));
cmp_ok($new, '<', $old, 'the check as written now is the faster one on this backlog');

$node->stop;
$mock->stop;
done_testing();
