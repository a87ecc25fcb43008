# The customer portal page in a real browser: headless Chromium renders the
# page customer_portal_html returns, the rendered DOM shows the license key and
# a download link, the link works against the local S3 server (and the bytes
# are the ones uploaded), and a screenshot is taken (kept with the test logs,
# or copied to $BENEFITS_SCREENSHOT when set).
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use File::Copy;
use Digest::SHA qw(sha256_hex);
use BenefitsNode;
use Chromium;
use S3Mock;

my $s3 = S3Mock::start(bucket => 'downloads');
my $tmp = PostgreSQL::Test::Utils::tempdir;
my $node = BenefitsNode::new_node('browser', conf => $s3->{conf});
$node->start;

# A shop: Pro has a note, a license key the customer may manage, and a download.
$node->safe_psql('postgres', q{
CREATE EXTENSION benefits;
INSERT INTO benefits.organizations (id, name) VALUES ('00000000-0000-0000-0000-0000000000a1', 'Acme <Tools> & Co');
INSERT INTO benefits.customers (id, organization_id, external_id, email, name) VALUES
    ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000a1', 'ada', 'ada@example.com', 'Ada Lovelace');
INSERT INTO benefits.products (id, organization_id, name) VALUES
    ('00000000-0000-0000-0000-0000000000d1', '00000000-0000-0000-0000-0000000000a1', 'Pro');
});
my $content = join('', map { chr(($_ * 131 + 17) % 256) } 1 .. 50_000);
open(my $fh, '>:raw', "$tmp/guide.pdf") or die;
print $fh $content;
close $fh;
my $sha = sha256_hex($content);
my ($file_id, $put_url) = split /\|/, $node->safe_psql('postgres', qq{
SELECT id, upload_url FROM benefits.create_file('00000000-0000-0000-0000-0000000000a1', 'User guide (EN).pdf',
                                                 ${\ length($content)}, 'application/pdf', '$sha')});
my ($out, $err) = ('', '');
IPC::Run::run([ 'curl', '-sS', '-o', '/dev/null', '-w', '%{http_code}', '-T', "$tmp/guide.pdf", $put_url ],
	'>', \$out, '2>', \$err);
is($out, '200', 'file uploaded through its presigned PUT');
$node->safe_psql('postgres', qq{
SELECT benefits.complete_file_upload('$file_id');
INSERT INTO benefits.benefits (id, organization_id, type, description, properties) VALUES
    ('00000000-0000-0000-0000-0000000000b1', '00000000-0000-0000-0000-0000000000a1', 'custom', 'Welcome aboard',
     '{"note": "Thanks for supporting us!\\nReply to this email for help."}'),
    ('00000000-0000-0000-0000-0000000000b2', '00000000-0000-0000-0000-0000000000a1', 'license_keys', 'Pro license',
     '{"prefix": "ACME", "expires": null, "activations": {"limit": 3, "enable_customer_admin": true}, "limit_usage": null}'),
    ('00000000-0000-0000-0000-0000000000b3', '00000000-0000-0000-0000-0000000000a1', 'downloadable', 'Downloads',
     jsonb_build_object('files', jsonb_build_array('$file_id'), 'archived', '{}'::jsonb));
INSERT INTO benefits.product_benefits (product_id, benefit_id, position) VALUES
    ('00000000-0000-0000-0000-0000000000d1', '00000000-0000-0000-0000-0000000000b1', 1),
    ('00000000-0000-0000-0000-0000000000d1', '00000000-0000-0000-0000-0000000000b2', 2),
    ('00000000-0000-0000-0000-0000000000d1', '00000000-0000-0000-0000-0000000000b3', 3);
INSERT INTO benefits.subscriptions (customer_id, product_id, status, current_period_end)
VALUES ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000d1', 'active', '2031-03-01 00:00:00+00');
});
my $key = $node->safe_psql('postgres',
	q{SELECT key FROM benefits.license_keys WHERE customer_id = '00000000-0000-0000-0000-0000000000c1'});
like($key, qr/^ACME(-[0-9A-Z]{4}){7}$/, 'the subscription granted a key');
is($node->safe_psql('postgres', qq{
SELECT ok FROM benefits.activate_license('$key', '00000000-0000-0000-0000-0000000000a1', 'Ada''s MacBook')}),
	't', 'key activated on a device');

# Ada's portal page, and headless Chromium on it (test/t/Chromium.pm).
my $chromium = Chromium::portal($node, $tmp, '00000000-0000-0000-0000-0000000000a1', 'ada', '/portal/deactivate');

my ($ok, $dom) = $chromium->('--dump-dom');
ok($ok, 'Chromium rendered the page');
like($dom, qr{<h1>Your purchases</h1>}, 'the page has its heading');
like($dom, qr{<code class="key"[^>]*>\Q$key\E</code>}, 'the rendered page shows the license key');
like($dom, qr{Acme &lt;Tools&gt; &amp; Co}, 'the organization name is text, not markup');
like($dom, qr{Ada's MacBook}, 'the activation is listed');
like($dom, qr{<button type="submit">Deactivate}, 'with a deactivate button');
my ($href) = $dom =~ m{<a href="([^"]+)"[^>]*>User guide \(EN\)\.pdf</a>};
ok(defined $href, 'the rendered page has the download link');
$href =~ s/&amp;/&/g;
like($href, qr{^\Q$s3->{endpoint}\E/downloads/}, 'the link points at the storage');

# The link works: the storage (signature checked) serves the uploaded bytes.
IPC::Run::run([ 'curl', '-sS', '-D', "$tmp/headers", '-o', "$tmp/downloaded", '-w', '%{http_code}', $href ],
	'>', \($out = ''), '2>', \($err = ''));
is($out, '200', 'the download link works');
is(sha256_hex(slurp_file("$tmp/downloaded")), $sha, 'it serves the uploaded bytes');
like(slurp_file("$tmp/headers"), qr/^content-disposition: attachment; filename="User guide \(EN\)\.pdf"\r?$/mi,
	'as an attachment named after the file');

# A screenshot of the page.
my $png = "$tmp/portal.png";
($ok) = $chromium->('--hide-scrollbars', '--window-size=1000,1400', "--screenshot=$png");
ok($ok && -s $png, 'screenshot taken');
open($fh, '<:raw', $png) or die;
read($fh, my $magic, 8);
close $fh;
is($magic, "\x89PNG\r\n\x1a\n", 'the screenshot is a PNG');
cmp_ok(-s $png, '>', 20_000, 'and not blank');
my $keep = $ENV{BENEFITS_SCREENSHOT} // "$PostgreSQL::Test::Utils::log_path/portal.png";
copy($png, $keep) or diag("could not keep the screenshot: $!");
note("screenshot: $keep");

$node->stop;
$s3->stop;
done_testing();
