# Validations served by a hot standby are counted on the primary: the
# standby's validation forwarder sends its counts to the primary over
# primary_conninfo, so license_keys.validations is the total of both.  The
# standby is restarted cleanly once (its last counts are sent as it stops)
# and the primary once (the standby keeps its batch and sends it again);
# the primary's counters then equal exactly the validations made.  Last, a
# failover with a batch unacknowledged.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BenefitsNode;
use MockProviders;

my $primary = BenefitsNode::new_node('primary', init => { allows_streaming => 1 });
$primary->start;
$primary->safe_psql('postgres', 'CREATE EXTENSION benefits');
my $org = $primary->safe_psql('postgres', "INSERT INTO benefits.organizations (name) VALUES ('o') RETURNING id");
my $key = $primary->safe_psql('postgres', qq{
INSERT INTO benefits.customers (organization_id) VALUES ('$org') RETURNING id \\gset
SELECT id AS ben FROM benefits.create_benefit('license_keys', '$org', 'k', '{}') \\gset
SELECT benefits.grant_benefit(:'id', :'ben') \\g /dev/null
SELECT key FROM benefits.license_keys});
$primary->backup('b1');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'b1', has_streaming => 1);
$standby->start;
$primary->wait_for_catchup($standby);

sub validate
{
	my ($node, $n) = @_;
	$node->safe_psql('postgres', qq{
DO \$\$ BEGIN FOR i IN 1 .. $n LOOP PERFORM benefits.validate_license('$key', '$org'); END LOOP; END \$\$});
}
sub counted
{
	return $primary->safe_psql('postgres', 'SELECT validations FROM benefits.license_keys');
}
sub wait_counted
{
	my ($want) = @_;
	return MockProviders::wait_for($primary, 'postgres', 'SELECT validations FROM benefits.license_keys', $want, 60);
}

is($standby->safe_psql('postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'benefits validation forwarder'"),
	'1', 'the standby runs a validation forwarder');
is($primary->safe_psql('postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'benefits validation forwarder'"),
	'0', 'the primary does not');

validate($primary, 30);
validate($standby, 20);
is(wait_counted(50), '50', 'validations on the primary (30) and the standby (20) are all counted on the primary');
isnt($primary->safe_psql('postgres', 'SELECT last_validated_at FROM benefits.license_keys'), '',
	'with a last validation time');

# A clean restart of the standby: what it counted just before stopping is sent as it stops.
$standby->safe_psql('postgres', 'ALTER SYSTEM SET benefits.validation_flush_interval = 0');
$standby->reload;
sleep 1;
validate($standby, 7);
sleep 2;
is(counted(), '50', 'with the forwarder\'s rounds off, the 7 wait on the standby');
$standby->restart;
is(counted(), '57', 'the standby sent its 7 pending counts as it stopped');
$standby->safe_psql('postgres', 'ALTER SYSTEM RESET benefits.validation_flush_interval');
$standby->reload;

# The primary down: the standby keeps its counts and sends them when it is back.
$primary->stop;
validate($standby, 11);
sleep 3;
$primary->start;
is(wait_counted(68), '68', 'the 11 counted while the primary was down arrive once it is back');
like(slurp_file($standby->logfile), qr/could not send validation counts of database "postgres" to the primary/,
	'the standby logged that the primary could not be reached');

# A batch sent twice counts once: the primary ignores a sender's batch number it has applied.
my ($sender, $batch) = split /\|/, $primary->safe_psql('postgres',
	'SELECT sender, last_batch FROM benefits.validation_count_senders ORDER BY received_at DESC LIMIT 1');
is($primary->safe_psql('postgres', qq{
SELECT benefits.receive_validation_counts('$sender', $batch, ARRAY[id], '{5}', ARRAY[now()]) FROM benefits.license_keys}),
	'0', 'the last batch sent again is ignored');

validate($standby, 4);
validate($primary, 6);
is(wait_counted(78), '78', 'the total is every validation made, on either server');
sleep 3;
is(counted(), '78', 'and stays so: nothing was counted twice');
is($standby->safe_psql('postgres', 'SELECT pending_validations FROM benefits.validation_stats()'), '0',
	'nothing waits on the standby');
unlike(slurp_file($primary->logfile), qr/ERROR:/,
	'the primary logged no error');

# A failover while a batch is unacknowledged: the promoted standby drops it
# (the old primary may have applied it) rather than risk counting it twice.
$primary->wait_for_catchup($standby);
$primary->stop;
validate($standby, 3);
sleep 3;
$standby->promote;
$standby->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()');
ok($standby->wait_for_log(
	qr/3 validations of database "postgres" not acknowledged by the old primary are not counted/),
	'after promotion the forwarder drops the batch the old primary never acknowledged, and says so');
sleep 2;
is($standby->safe_psql('postgres', 'SELECT validations FROM benefits.license_keys'), '78',
	'the new primary keeps the replicated total');
is($standby->safe_psql('postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'benefits validation forwarder'"),
	'0', 'and its forwarder has stopped');

$standby->stop;
done_testing();
