# Files through a real S3-compatible server: s3rver (npm, test/mock) behind a
# gateway that verifies SigV4 presigned signatures with botocore
# (test/mock/s3_sigv4_gateway.py; s3rver itself checks expiry but not V4
# signatures).  Upload through a presigned PUT with curl, download through a
# presigned GET and compare SHA-256; a multipart upload; expired and tampered
# URLs are refused.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Digest::SHA qw(sha256_hex);
use BenefitsNode;
use S3Mock;

my $s3 = S3Mock::start(bucket => 'downloads');
my ($s3_port, $gw_port) = ($s3->{s3_port}, $s3->{port});
my $tmp = PostgreSQL::Test::Utils::tempdir;

# curl: returns (HTTP status, headers, body file)
my $n = 0;
sub curl
{
	my (@args) = @_;
	$n++;
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'curl', '-sS', '--max-time', '30', '-D', "$tmp/h$n", '-o', "$tmp/b$n",
			'-w', '%{http_code}', @args ], '>', \$out, '2>', \$err);
	my $headers = -f "$tmp/h$n" ? slurp_file("$tmp/h$n") : '';
	return ($out, $headers, "$tmp/b$n");
}

my $node = BenefitsNode::new_node('s3rt', conf => $s3->{conf});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION benefits;
INSERT INTO benefits.organizations (id, name) VALUES ('00000000-0000-0000-0000-0000000000a1', 'Org');
INSERT INTO benefits.customers (id, organization_id, external_id) VALUES
    ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000a1', 'buyer');
});

# A file with a name that needs encoding everywhere.
my $content = join('', map { chr(($_ * 7919 + 13) % 256) } 1 .. 300_000);
open(my $fh, '>:raw', "$tmp/upload.bin") or die;
print $fh $content;
close $fh;
my $sha = sha256_hex($content);
my $name = "Über Handbuch (v2) – 日本.bin";

my ($file_id, $put_url) = split /\|/, $node->safe_psql('postgres', qq{
SELECT id, upload_url FROM benefits.create_file('00000000-0000-0000-0000-0000000000a1', '$name', ${\ length($content)},
                                                 'application/x-test', '$sha')});
like($put_url, qr{^http://127\.0\.0\.1:$gw_port/downloads/.*/%C3%9Cber%20Handbuch%20%28v2%29%20%E2%80%93%20%E6%97%A5%E6%9C%AC\.bin\?},
	'upload URL encodes the name');
my ($code) = curl('-T', "$tmp/upload.bin", $put_url);
is($code, '200', 'upload through the presigned PUT');
$node->safe_psql('postgres', qq{SELECT benefits.complete_file_upload('$file_id', '$sha')});

# Grant a downloadable benefit holding it, then download.
$node->safe_psql('postgres', qq{
INSERT INTO benefits.benefits (id, organization_id, type, description, properties)
VALUES ('00000000-0000-0000-0000-0000000000b1', '00000000-0000-0000-0000-0000000000a1', 'downloadable', 'Files',
        jsonb_build_object('files', jsonb_build_array('$file_id'), 'archived', '{}'::jsonb));
SELECT benefits.grant_benefit('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000b1');
});
my $get_url = $node->safe_psql('postgres',
	qq{SELECT benefits.file_download_url('00000000-0000-0000-0000-0000000000c1', '$file_id')});
my ($get_code, $headers, $body) = curl($get_url);
is($get_code, '200', 'download through the presigned GET');
is(sha256_hex(slurp_file($body)), $sha, 'downloaded bytes have the SHA-256 of the upload');
like($headers, qr/^content-disposition: attachment; filename="_ber Handbuch \(v2\) _ __\.bin"; filename\*=UTF-8''%C3%9Cber%20Handbuch%20%28v2%29%20%E2%80%93%20%E6%97%A5%E6%9C%AC\.bin\r?$/mi,
	'served with the file name (RFC 6266/5987)');
like($headers, qr/^content-type: application\/x-test\r?$/mi, 'served with the registered content type');

# Tampering with anything signed is refused: the key, a parameter, the expiry, the signature.
(my $other_key = $get_url) =~ s/\.bin\?/.bim?/;
($code, undef, $body) = curl($other_key);
is($code, '403', 'another key with the same signature is refused');
like(slurp_file($body), qr/SignatureDoesNotMatch/, '... as SignatureDoesNotMatch');
(my $longer = $get_url) =~ s/X-Amz-Expires=3600/X-Amz-Expires=7200/;
($code) = curl($longer);
is($code, '403', 'a longer expiry is refused');
(my $renamed = $get_url) =~ s/response-content-type=application%2Fx-test/response-content-type=text%2Fhtml/;
($code) = curl($renamed);
is($code, '403', 'a changed response-content-type is refused');
(my $badsig = $get_url) =~ s/X-Amz-Signature=(.)/'X-Amz-Signature=' . ($1 eq '0' ? '1' : '0')/e;
($code) = curl($badsig);
is($code, '403', 'a changed signature is refused');

# An expired URL is refused, by the gateway and by s3rver itself.
my $expired = $node->safe_psql('postgres', qq{
SELECT benefits.presign_s3_url('GET', storage_key, '1 hour', now() - interval '2 hours')
  FROM benefits.files WHERE id = '$file_id'});
($code, undef, $body) = curl($expired);
is($code, '403', 'an expired URL is refused');
like(slurp_file($body), qr/expired/, '... as expired');
(my $direct = $expired) =~ s/:$gw_port/:$s3_port/;
($code, undef, $body) = curl($direct);
is($code, '403', 's3rver itself refuses the expired URL');
like(slurp_file($body), qr/Request has expired/, '... saying so');
my $short = $node->safe_psql('postgres', qq{
SELECT benefits.presign_s3_url('GET', storage_key, '1 second') FROM benefits.files WHERE id = '$file_id'});
sleep 2;
($code) = curl($short);
is($code, '403', 'a URL refused once its lifetime has passed');

# Multipart: start, upload two parts, complete, download.
my $big = join('', map { chr(($_ * 31 + 7) % 251) } 1 .. (5 * 1024 * 1024 + 12345));
my $big_sha = sha256_hex($big);
open($fh, '>:raw', "$tmp/part1") or die;
print $fh substr($big, 0, 5 * 1024 * 1024);
close $fh;
open($fh, '>:raw', "$tmp/part2") or die;
print $fh substr($big, 5 * 1024 * 1024);
close $fh;
my ($big_id, $create_url, $parts) = split /\|/, $node->safe_psql('postgres', qq{
SELECT id, upload_url, part_count FROM benefits.create_file('00000000-0000-0000-0000-0000000000a1', 'big file.bin',
    ${\ length($big)}, multipart => true, part_size => 5242880)});
is($parts, '2', 'two parts');
($code, undef, $body) = curl('-X', 'POST', $create_url);
is($code, '200', 'multipart upload started through the presigned POST');
my ($upload_id) = slurp_file($body) =~ m{<UploadId>([^<]+)</UploadId>};
ok(defined $upload_id, 'storage answered an UploadId');
my @part_urls = split /\n/, $node->safe_psql('postgres',
	qq{SELECT url FROM benefits.file_upload_parts('$big_id', '$upload_id', 5242880) ORDER BY part_number});
is(scalar @part_urls, 2, 'a URL per part');
my @etags;
for my $i (0, 1)
{
	my ($c, $h) = curl('-T', "$tmp/part" . ($i + 1), $part_urls[$i]);
	is($c, '200', "part " . ($i + 1) . " uploaded");
	my ($etag) = $h =~ /^etag:\s*(\S+)\r?$/mi;
	push @etags, $etag;
}
my $complete_url = $node->safe_psql('postgres', qq{SELECT benefits.file_complete_multipart_url('$big_id')});
my $xml = '<CompleteMultipartUpload>'
  . join('', map { "<Part><PartNumber>" . ($_ + 1) . "</PartNumber><ETag>$etags[$_]</ETag></Part>" } 0, 1)
  . '</CompleteMultipartUpload>';
($code, undef, $body) = curl('-X', 'POST', '-H', 'Content-Type: application/xml', '--data-binary', $xml, $complete_url);
is($code, '200', 'multipart upload completed') or diag(slurp_file($body));
$node->safe_psql('postgres', qq{
SELECT benefits.complete_file_upload('$big_id', '$big_sha');
UPDATE benefits.benefits SET properties = jsonb_set(properties, '{files}', properties->'files' || to_jsonb('$big_id'::text))
 WHERE id = '00000000-0000-0000-0000-0000000000b1';
});
$get_url = $node->safe_psql('postgres',
	qq{SELECT benefits.file_download_url('00000000-0000-0000-0000-0000000000c1', '$big_id')});
($code, undef, $body) = curl($get_url);
is($code, '200', 'multipart file downloaded');
is(sha256_hex(slurp_file($body)), $big_sha, 'multipart file has the SHA-256 of its parts');

# The default style, auto (S3Mock's configuration sets path), addresses the
# bucket in the path on this IP-address endpoint: the URL it signs reaches the
# storage.
my $auto_url = $node->safe_psql('postgres', qq{
SET benefits.s3_url_style = 'auto';
SELECT boot_val || ' ' ||
       benefits.file_download_url('00000000-0000-0000-0000-0000000000c1', '$file_id')
  FROM pg_settings WHERE name = 'benefits.s3_url_style'});
like($auto_url, qr{^auto http://127\.0\.0\.1:$gw_port/downloads/}, 'auto signs a path-style URL for the IP endpoint');
$auto_url =~ s/^auto //;
($code, undef, $body) = curl($auto_url);
is($code, '200', 'the auto-style URL downloads');
is(sha256_hex(slurp_file($body)), $sha, '... the uploaded bytes');

$node->stop;
$s3->stop;
done_testing();
