# Several delivery workers per database: benefits.workers_per_database is
# changed at run time (1 -> 3 -> 1) while jobs are queued and in flight.  The
# worker processes follow the setting (the launcher starts the new shares;
# the shares beyond the setting finish what they have in flight and exit),
# every job is sent exactly once (one request per job, one attempt each), and
# the jobs of one chain arrive in order: webhooks of one grant, and GitHub
# jobs of one collaborator spread over several grants (so over shares).
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use BenefitsNode;
use MockProviders;

my $mock = MockProviders->new('shares');
my $url = $mock->url;
my $node = BenefitsNode::new_node('shares', conf => qq{
benefits.github_api_url = '$url'
benefits.http_timeout = '10s'
benefits.workers_per_database = 1
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION benefits');
# every answer takes a while, so jobs are in flight when the setting changes
$mock->control(delay_ms => 15);

sub sql { return $node->safe_psql('postgres', $_[0]); }
sub workers
{
	return sql("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'benefits worker' AND datname = 'postgres'");
}
sub set_workers
{
	sql("ALTER SYSTEM SET benefits.workers_per_database = $_[0]");
	sql('SELECT pg_reload_conf()');
}

my $org = sql("INSERT INTO benefits.organizations (name) VALUES ('o') RETURNING id");
my $ep = sql("SELECT id FROM benefits.create_webhook_endpoint('$org', '$url/hook', ARRAY['benefit_grant.updated'])");

# Batch $tag: 24 grants with 4 webhooks each (chain by grant), and 6 GitHub
# collaborators with 4 jobs each, every job of another grant (chain by
# collaborator across grants and shares); permissions name the job's place.
sub queue
{
	my ($tag) = @_;
	sql(qq{
INSERT INTO benefits.outbox (organization_id, kind, grant_id, endpoint_id, event_type, message_id, action, payload)
SELECT '$org', 'webhook', g.grant_id, '$ep', 'benefit_grant.updated', 'msg_${tag}_' || g.n || '_' || s, 'deliver',
       jsonb_build_object('chain', '$tag' || g.n, 'seq', s)
  FROM (SELECT n, gen_random_uuid() AS grant_id FROM generate_series(1, 24) n) g,
       generate_series(1, 4) s
 ORDER BY g.n, s});
	sql(qq{
INSERT INTO benefits.outbox (organization_id, kind, grant_id, action, payload)
SELECT '$org', 'github', gen_random_uuid(), 'add_collaborator',
       jsonb_build_object('owner', 'acme', 'repo', 'r', 'username', 'u$tag' || u,
                          'permission', (ARRAY['pull', 'triage', 'push', 'maintain'])[s])
  FROM generate_series(1, 6) u, generate_series(1, 4) s
 ORDER BY u, s});
}
my $idle = "SELECT count(*) FROM benefits.outbox WHERE state IN ('pending', 'running')";

is(MockProviders::wait_for($node, 'postgres', "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'benefits worker' AND datname = 'postgres'", '1'),
	'1', 'one worker with benefits.workers_per_database = 1');
queue('a');
usleep(200_000);
set_workers(3);
is(MockProviders::wait_for($node, 'postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'benefits worker' AND datname = 'postgres'", '3'),
	'3', 'after a reload with 3, three workers serve the database');
# slower answers now, so every share is seen busy at once
$mock->control(delay_ms => 100);
queue('b');
queue('c');
is(MockProviders::wait_for($node, 'postgres', q{
SELECT count(*) FROM pg_stat_activity
 WHERE backend_type = 'benefits worker' AND datname = 'postgres' AND query LIKE '% requests in flight'}, '3', 20),
	'3', 'the three workers have requests in flight at the same time (each serves its share)');
set_workers(1);
is(MockProviders::wait_for($node, 'postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'benefits worker' AND datname = 'postgres'", '1'),
	'1', 'after a reload with 1, the extra workers exit');
$mock->control(delay_ms => 15);
queue('d');
is(MockProviders::wait_for($node, 'postgres', $idle, '0'), '0', 'every job is finished');

is(sql("SELECT count(*) FROM benefits.outbox WHERE state <> 'done'"), '0', 'every job is done (none dead)');
is(sql("SELECT count(*) FROM benefits.outbox WHERE attempts <> 1"), '0', 'every job was claimed once');
my @requests = $mock->requests;
my %sent;
$sent{ $_->{headers}{'webhook-id'} }++ for grep { $_->{method} eq 'POST' } @requests;
is(scalar(keys %sent), 4 * 96, 'every webhook reached the receiver');
is(scalar(grep { $_ != 1 } values %sent), 0, 'no webhook was sent twice');
is(scalar(grep { $_->{method} eq 'PUT' } @requests), 4 * 24, 'one PUT per GitHub job');

# order within each chain, in the receiver's order of arrival
my (%last_seq, $webhooks_out_of_order);
for my $r (grep { $_->{method} eq 'POST' } @requests)
{
	my ($chain, $seq) = $r->{headers}{'webhook-id'} =~ /^msg_(\w+?_\d+)_(\d+)$/ or next;
	$webhooks_out_of_order++ if ($last_seq{$chain} // 0) != $seq - 1;
	$last_seq{$chain} = $seq;
}
is($webhooks_out_of_order // 0, 0, "each grant's webhooks arrived in order");
my %rank = (pull => 1, triage => 2, push => 3, maintain => 4);
my (%last_rank, $puts_out_of_order);
for my $r (grep { $_->{method} eq 'PUT' } @requests)
{
	my ($user) = $r->{path} =~ m{/collaborators/([^/?]+)};
	my $rank = $rank{ decode_json_permission($r->{body}) };
	$puts_out_of_order++ if ($last_rank{$user} // 0) != $rank - 1;
	$last_rank{$user} = $rank;
}
is($puts_out_of_order // 0, 0, "each collaborator's jobs arrived in order, across grants");

sub decode_json_permission
{
	my ($body) = @_;
	return $body =~ /"permission"\s*:\s*"(\w+)"/ ? $1 : '';
}

my $log = slurp_file($node->logfile);
like($log, qr/benefits: worker 2 started for database "postgres"/, 'the launcher started share 2');
like($log, qr/benefits: worker 2 for database "postgres" stops: benefits.workers_per_database is 1/,
	'share 2 stopped on its own after the reload');
unlike($log, qr/worker for database "postgres" stopped; restarting/, 'no worker was restarted');

$node->stop;
done_testing();
