# Presigned URLs signed in C agree with AWS's own signer: botocore's
# S3SigV4QueryAuth re-signs each request at the same instant
# (test/tools/s3_botocore_check.py) and must produce the same X-Amz-Signature,
# for keys with spaces, non-ASCII and reserved characters, extra parameters
# (response-content-disposition, multipart), both URL styles and a few regions.
# With benefits.s3_url_style = 'auto' the style chosen for each endpoint and
# bucket is checked against the one AWS's endpoint rules choose (botocore's
# EndpointProvider), and those URLs are re-signed too.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use BenefitsNode;

my $root = $ENV{BENEFITS_ROOT} or die "BENEFITS_ROOT is not set";
my $node = BenefitsNode::new_node('s3sig');
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION benefits');

my $cases = $node->safe_psql('postgres', q{
CREATE TEMP TABLE cases (n serial, endpoint text, region text, bucket text, path_style boolean,
                         method text, key text, expires int, signed_at timestamptz, params jsonb);
INSERT INTO cases (endpoint, region, bucket, path_style, method, key, expires, signed_at, params) VALUES
  ('', 'us-east-1', 'examplebucket', false, 'GET', 'test.txt', 86400, '2013-05-24 00:00:00+00', '{}'),
  ('', 'eu-central-1', 'my-bucket', false, 'GET', 'releases/my file v1.0 (final).zip', 3600, '2024-02-29 23:59:59+00', '{}'),
  ('http://127.0.0.1:4568', 'us-east-1', 'downloads', true, 'GET', 'Résumé – 日本語 ファイル.pdf', 900, '2025-06-01 12:00:00+00',
   jsonb_build_object('response-content-disposition', benefits.s3_content_disposition('Résumé – 日本語 ファイル.pdf'),
                      'response-content-type', 'application/pdf')),
  ('https://minio.example.net:9443/storage/', 'us-west-2', 'files', true, 'PUT', 'org/ID/a+b=c&d;e,f:g@h$i!j''k*l', 600, '2025-06-01 12:00:00+00', '{}'),
  ('', 'us-east-1', 'examplebucket', false, 'POST', 'big/ünïcødé.bin', 600, '2025-06-01 12:00:00+00', '{"uploads": ""}'),
  ('', 'ap-southeast-2', 'examplebucket', false, 'PUT', 'big/ünïcødé.bin', 600, '2025-06-01 12:00:00+00',
   '{"partNumber": "17", "uploadId": "VXBsb2FkIElE/+=~x"}'),
  ('', 'us-east-1', 'examplebucket', false, 'GET', 'report "quoted" \ back.txt', 604800, '2025-06-01 12:00:00+00',
   jsonb_build_object('response-content-disposition', benefits.s3_content_disposition('report "quoted" \ back.txt', 'inline')));

CREATE FUNCTION pg_temp.signed(c cases) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('benefits.s3_endpoint', c.endpoint, true),
            set_config('benefits.s3_region', c.region, true),
            set_config('benefits.s3_bucket', c.bucket, true),
            set_config('benefits.s3_url_style', CASE WHEN c.path_style THEN 'path' ELSE 'virtual' END, true),
            set_config('benefits.s3_access_key_id', 'AKIAIOSFODNN7EXAMPLE', true),
            set_config('benefits.s3_secret_access_key', 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', true);
    RETURN jsonb_build_object('endpoint', c.endpoint, 'region', c.region, 'bucket', c.bucket,
                              'path_style', c.path_style,
                              'access_key_id', 'AKIAIOSFODNN7EXAMPLE',
                              'secret_access_key', 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
                              'method', c.method, 'key', c.key, 'expires', c.expires, 'params', c.params,
                              'url', benefits.presign_s3_url(c.method, c.key, make_interval(secs => c.expires),
                                                             c.signed_at, c.params));
END
$$;
SELECT pg_temp.signed(c) FROM cases c ORDER BY n;
});
my @lines = split /\n/, $cases;
is(scalar @lines, 7, 'seven cases signed');
like($lines[0], qr/X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"/,
	"AWS's published example");

my ($out, $err) = ('', '');
my $ok = IPC::Run::run([ 'python3', "$root/test/tools/s3_botocore_check.py" ],
	'<', \"$cases\n", '>', \$out, '2>', \$err);
diag($err) if $err ne '';
ok($ok, 'botocore check exited 0');
for my $line (split /\n/, $out)
{
	if ($line =~ /^(not )?ok \d+ - (.*)$/)
	{
		ok(!defined $1, $2);
	}
	elsif ($line =~ /^#/)
	{
		diag($line);
	}
}
like($out, qr/^1\.\.7$/m, 'botocore checked every case');

# auto: path style for IP-address endpoints and names that cannot be host
# labels, virtual-hosted style otherwise.  "path_style" is what the test
# expects; the checker also asks AWS's endpoint rules ("ruleset").
my $auto = $node->safe_psql('postgres', q{
CREATE TEMP TABLE auto_cases (n serial, endpoint text, region text, bucket text, path_style boolean);
INSERT INTO auto_cases (endpoint, region, bucket, path_style) VALUES
  ('http://127.0.0.1:4568', 'us-east-1', 'downloads', true),
  ('http://[::1]:9000', 'us-east-1', 'downloads', true),
  ('https://10.1.2.3/storage', 'eu-west-1', 'files', true),
  ('https://storage.example.com', 'eu-west-1', 'downloads', false),
  ('https://storage.example.com', 'eu-west-1', 'My_Downloads', true),
  ('https://storage.example.com', 'eu-west-1', 'my.downloads', true),
  ('https://minio.example.net:9443/storage/', 'us-west-2', 'files', false),
  ('', 'eu-central-1', 'my-bucket', false),
  ('', 'eu-central-1', 'my.bucket', true),
  ('', 'eu-central-1', 'ab', true);
CREATE FUNCTION pg_temp.signed(c auto_cases) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('benefits.s3_endpoint', c.endpoint, true),
            set_config('benefits.s3_region', c.region, true),
            set_config('benefits.s3_bucket', c.bucket, true),
            set_config('benefits.s3_access_key_id', 'AKIAIOSFODNN7EXAMPLE', true),
            set_config('benefits.s3_secret_access_key', 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', true);
    RETURN jsonb_build_object('endpoint', c.endpoint, 'region', c.region, 'bucket', c.bucket,
                              'path_style', c.path_style, 'ruleset', true,
                              'access_key_id', 'AKIAIOSFODNN7EXAMPLE',
                              'secret_access_key', 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
                              'method', 'GET', 'key', 'dir/file 1.zip', 'expires', 600, 'params', '{}'::jsonb,
                              'url', benefits.presign_s3_url('GET', 'dir/file 1.zip', '600 seconds',
                                                             '2025-06-01 12:00:00+00'));
END
$$;
SELECT current_setting('benefits.s3_url_style');
SELECT pg_temp.signed(c) FROM auto_cases c ORDER BY n;
});
my ($default_style, @auto_lines) = split /\n/, $auto;
is($default_style, 'auto', 'benefits.s3_url_style defaults to auto');
is(scalar @auto_lines, 10, 'ten auto cases signed');
($out, $err) = ('', '');
$ok = IPC::Run::run([ 'python3', "$root/test/tools/s3_botocore_check.py" ],
	'<', \(join("\n", @auto_lines) . "\n"), '>', \$out, '2>', \$err);
diag($err) if $err ne '';
ok($ok, 'botocore check of the auto cases exited 0');
for my $line (split /\n/, $out)
{
	if ($line =~ /^(not )?ok \d+ - (.*)$/)
	{
		ok(!defined $1, "auto: $2");
	}
	elsif ($line =~ /^#/)
	{
		diag($line);
	}
}
like($out, qr/^1\.\.10$/m, 'botocore checked every auto case');

$node->stop;
done_testing();
