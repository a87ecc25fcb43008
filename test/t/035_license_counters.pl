# License validation off the primary's write path: validate_license works on
# a hot standby (counting in the standby's memory; with its forwarder's rounds
# off they wait there, and are flushed after promotion); on the primary the background worker flushes the counters into
# license_keys within benefits.validation_flush_interval; a full counter table
# drops counts visibly; and without shared_preload_libraries validation works
# and says once that it does not count.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use BenefitsNode;

my $org = '00000000-0000-0000-0000-00000000a030';
my $setup = qq{
CREATE EXTENSION benefits;
INSERT INTO benefits.organizations (id, name) VALUES ('$org', 'Counters Org');
INSERT INTO benefits.customers (id, organization_id) VALUES ('00000000-0000-0000-0000-00000000c030', '$org');
INSERT INTO benefits.benefits (id, organization_id, type, description, properties)
VALUES ('00000000-0000-0000-0000-00000000b030', '$org', 'license_keys', 'Counted',
        '{"prefix": null, "expires": null, "activations": {"limit": 1, "enable_customer_admin": false}, "limit_usage": null}');
SELECT benefits.import_license_key('00000000-0000-0000-0000-00000000c030', '00000000-0000-0000-0000-00000000b030', 'COUNT-ME');
};

my $primary = BenefitsNode::new_node('primary', init => { allows_streaming => 1 },
	conf => "benefits.validation_flush_interval = '200ms'\nbenefits.validation_stats_max = 128\n");
$primary->start;
$primary->safe_psql('postgres', $setup);

# --- The worker flushes the primary's counts.
$primary->safe_psql('postgres', "SELECT benefits.validate_license('count-me', '$org') FROM generate_series(1, 5)");
ok($primary->poll_query_until('postgres',
	"SELECT validations = 5 AND last_validated_at IS NOT NULL FROM benefits.license_keys WHERE key = 'COUNT-ME'"),
	'the worker flushed 5 validations into license_keys');
is($primary->safe_psql('postgres', 'SELECT pending_validations FROM benefits.validation_stats()'),
	'0', 'nothing pending after the flush');
is($primary->safe_psql('postgres', "SELECT day = (now() AT TIME ZONE 'UTC')::date, validations FROM benefits.license_validations_daily WHERE organization_id = '$org'"),
	't|5', "and into the organization's validations of the day");

# --- A hot standby validates and counts in its own memory.
$primary->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->start;
$primary->wait_for_catchup($standby);
# Its forwarder's rounds off, so that its counts wait in its memory
# (041_standby_counts shows them sent to the primary).
$standby->safe_psql('postgres', 'ALTER SYSTEM SET benefits.validation_flush_interval = 0');
$standby->reload;

is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'standby in recovery');
is($standby->safe_psql('postgres',
	"SELECT string_agg(v.code, ',') FROM generate_series(1, 3) n, benefits.validate_license(' count-me' || repeat(' ', n), '$org') v"),
	'valid,valid,valid', 'validate_license answers on the standby');
is($standby->safe_psql('postgres', "SELECT validations FROM benefits.validate_license('COUNT-ME', '$org')"),
	'9', 'the standby reports stored plus pending validations');
is($standby->safe_psql('postgres', "SELECT code FROM benefits.validate_license('COUNT-ME-NOT', '$org')"),
	'not_found', 'unknown key on the standby');
my ($ret, $out, $err) = $standby->psql('postgres',
	"SELECT code FROM benefits.validate_license('COUNT-ME', '$org', increment_usage => 1)");
like($err, qr/read-only transaction/, 'increment_usage is refused on the standby');
($ret, $out, $err) = $standby->psql('postgres',
	"SELECT code FROM benefits.activate_license('COUNT-ME', '$org', 'standby')");
like($err, qr/read-only transaction/, 'activation is refused on the standby');
is($standby->safe_psql('postgres', 'SELECT benefits.flush_validation_stats()'), '0',
	'flush does nothing on the standby');
is($standby->safe_psql('postgres', 'SELECT pending_keys, pending_validations FROM benefits.validation_stats()'),
	'1|4', 'the standby keeps its 4 counts pending');
is($primary->safe_psql('postgres', "SELECT validations FROM benefits.license_keys WHERE key = 'COUNT-ME'"),
	'5', 'the primary does not see the standby\'s counts');

# --- After promotion the standby's counts are flushed (by its worker or here).
$standby->promote;
$standby->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()');
$standby->safe_psql('postgres', 'SELECT benefits.flush_validation_stats()');
is($standby->safe_psql('postgres', "SELECT validations FROM benefits.license_keys WHERE key = 'COUNT-ME'"),
	'9', 'promoted standby flushed its counts');
$standby->stop;

# --- A full counter table (128 keys here) drops counts and says how many.
$primary->safe_psql('postgres', qq{
INSERT INTO benefits.customers (organization_id, external_id) SELECT '$org', n::text FROM generate_series(1, 300) n;
SELECT count(benefits.import_license_key(c.id, '00000000-0000-0000-0000-00000000b030', 'MANY-' || c.external_id))
  FROM benefits.customers c WHERE c.external_id IS NOT NULL;
ALTER SYSTEM SET benefits.validation_flush_interval = 0;
SELECT pg_reload_conf();
});
sleep 1;    # let the worker take the new interval
$primary->safe_psql('postgres', 'SELECT benefits.flush_validation_stats()');
my $counted = $primary->safe_psql('postgres', qq{
SELECT count(*) FILTER (WHERE v.valid) FROM benefits.customers c,
       benefits.validate_license('MANY-' || c.external_id, '$org') v WHERE c.external_id IS NOT NULL;
});
is($counted, '300', 'every validation answers while the table is full');
my ($pending, $dropped, $used) = split /\|/, $primary->safe_psql('postgres',
	'SELECT pending_validations, dropped, used FROM benefits.validation_stats()');
cmp_ok($used, '<=', 128, 'the counter table holds at most benefits.validation_stats_max keys');
is($pending + $dropped, 300, 'each validation is either pending or counted as dropped');
cmp_ok($dropped, '>', 0, 'some were dropped');
$primary->stop;

# --- Without shared_preload_libraries: validation works, and says once that it does not count.
my $plain = BenefitsNode::new_node('nopreload', conf => "shared_preload_libraries = ''\n");
$plain->start;
$plain->safe_psql('postgres', $setup);
($ret, $out, $err) = $plain->psql('postgres', qq{
SELECT code FROM benefits.validate_license('COUNT-ME', '$org');
SELECT code FROM benefits.validate_license('COUNT-ME', '$org');
SELECT benefits.flush_validation_stats();
SELECT code FROM benefits.validate_license('COUNT-ME', '$org', increment_usage => 1);
SELECT validations, usage FROM benefits.license_keys WHERE key = 'COUNT-ME';
});
is($ret, 0, 'no error without preloading');
is($out, "valid\nvalid\n0\nvalid\n1|1", 'validation works; only increment_usage counts');
my @warnings = ($err =~ /WARNING:  benefits: license validations are not being counted/g);
is(scalar(@warnings), 1, 'one warning per session');
like($err, qr/HINT:  Add benefits to shared_preload_libraries/, 'the warning says what to do');
$plain->stop;

done_testing();
