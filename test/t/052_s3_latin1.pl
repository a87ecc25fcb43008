# In a LATIN1 database the storage settings are LATIN1 bytes, which a POST
# policy (JSON escaped as UTF-8) cannot carry: s3_presigned_post refuses a
# bucket, access key id or region that is not valid UTF-8, naming the
# setting, where its escaping read past the end of the bucket's text before
# (found by the libFuzzer target s3; test/fuzz/corpus/s3/latin1-bucket keeps
# the input).  Plain ASCII settings still sign there.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use BenefitsNode;

my $node = BenefitsNode::new_node('s3latin1');
$node->start;
$node->safe_psql('postgres', q{CREATE DATABASE latin1 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0});
$node->safe_psql('latin1', 'CREATE EXTENSION benefits');

my $settings = q{SET client_encoding = 'UTF8';
SET benefits.s3_endpoint = 'https://s3.example.com'; SET benefits.s3_region = 'eu-west-1';
SET benefits.s3_access_key_id = 'AKIDEXAMPLE'; SET benefits.s3_secret_access_key = 'secret';
SET benefits.s3_bucket = 'files';};

my $form = $node->safe_psql('latin1', $settings . q{
SELECT benefits.s3_presigned_post('org/a.pdf', 10, 'https://app.example.com/done') -> 'fields' ? 'policy'});
is($form, 't', 'ASCII settings sign a POST policy in a LATIN1 database');

foreach my $case (['s3_bucket', 'bucké'], ['s3_access_key_id', 'AKIDé'], ['s3_region', 'eu-wést-1'])
{
	my ($setting, $value) = @$case;
	my ($ret, $stdout, $stderr) = $node->psql('latin1', $settings . qq{SET benefits.$setting = '$value';
SELECT benefits.s3_presigned_post('org/a.pdf', 10, 'https://app.example.com/done')});
	isnt($ret, 0, "a LATIN1 $setting is refused");
	like($stderr, qr/benefits\.$setting must be valid UTF-8/, "the error names benefits.$setting");
}
$node->stop;
done_testing();
