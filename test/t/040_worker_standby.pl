# On a hot standby the worker does not run (the outbox is read-only there and
# the primary delivers); after promotion it starts and delivers what the old
# primary had left queued.  License validation by fingerprint and offline
# checkout work on the standby; a heartbeat, a write, is refused there.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BenefitsNode;
use MockProviders;

my $mock = MockProviders->new('standby');
my $url = $mock->url;
my $primary = BenefitsNode::new_node('primary', init => { allows_streaming => 1 });
$primary->start;
$primary->safe_psql('postgres', 'CREATE EXTENSION benefits');
$primary->backup('b1');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'b1', has_streaming => 1);
$standby->start;

# The primary queues jobs but (delivery off) does not send them.
$primary->safe_psql('postgres', 'ALTER SYSTEM SET benefits.worker_delivery = off');
$primary->reload;
my $org = $primary->safe_psql('postgres', "INSERT INTO benefits.organizations (name) VALUES ('o') RETURNING id");
my $ep = $primary->safe_psql('postgres', qq{
SELECT id FROM benefits.create_webhook_endpoint('$org', '$url/hook', ARRAY['benefit_grant.created'])});
$primary->safe_psql('postgres', qq{
INSERT INTO benefits.outbox (organization_id, kind, endpoint_id, event_type, message_id, action, payload)
SELECT '$org', 'webhook', '$ep', 'benefit_grant.created', 'msg_' || g, 'deliver', '{"n": 1}'
  FROM generate_series(1, 20) g});
$primary->wait_for_catchup($standby);

is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'the standby is in recovery');
sleep(1);
is($standby->safe_psql('postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE backend_type IN ('benefits worker', 'benefits launcher')"),
	'0', 'no benefits worker runs on the hot standby');
is($standby->safe_psql('postgres', "SELECT count(*) FROM benefits.outbox WHERE state = 'pending'"), '20',
	'the standby sees the 20 queued jobs');
unlike(slurp_file($standby->logfile), qr/benefits.*(ERROR|FATAL)|terminating any other/, 'and logs no worker errors');

# Machines and offline licenses on the standby: validation by fingerprint and
# checkout are read-only (once the organization has its signing key); a
# heartbeat is a write and belongs to the primary.
# (Another organization, so that no webhook is queued beside the 20 jobs.)
my $lorg = $primary->safe_psql('postgres', "INSERT INTO benefits.organizations (name) VALUES ('l') RETURNING id");
my $key = $primary->safe_psql('postgres', qq{
INSERT INTO benefits.customers (organization_id) VALUES ('$lorg') RETURNING id \\gset
SELECT id AS ben FROM benefits.create_benefit('license_keys', '$lorg', 'k', '{"activations": 2}') \\gset
SELECT benefits.grant_benefit(:'id', :'ben') \\g /dev/null
SELECT benefits.rotate_license_signing_key('$lorg') \\g /dev/null
SELECT key FROM benefits.license_keys});
my $act = $primary->safe_psql('postgres',
	"SELECT activation_id FROM benefits.activate_license('$key', '$lorg', 'pc', fingerprint => 'fp-standby')");
$primary->wait_for_catchup($standby);
is($standby->safe_psql('postgres', "SELECT code FROM benefits.validate_license('$key', '$lorg', fingerprint => 'fp-standby')"),
	'valid', 'the standby validates by fingerprint');
like($standby->safe_psql('postgres', "SELECT benefits.checkout_license('$key', '$lorg', '$act')"),
	qr/^-----BEGIN BENEFITS LICENSE-----\n/, 'the standby checks out a license file');
my ($rc, $out, $err) = $standby->psql('postgres', "SELECT benefits.heartbeat_license('$key', '$lorg', '$act')");
like($err, qr/read-only transaction/, 'a heartbeat on the standby is refused as a write');

$primary->stop;
$standby->promote;
is(MockProviders::wait_for($standby, 'postgres', "SELECT count(*) FROM benefits.outbox WHERE state = 'done'", '20', 60),
	'20', 'after promotion the worker starts and delivers the 20 jobs');
is(scalar(grep { $_->{method} eq 'POST' } $mock->requests), 20, 'the receiver got 20 requests');

$standby->stop;
$mock->stop;
done_testing();
