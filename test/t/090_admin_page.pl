# The merchant's dashboard in a real browser.  A small application
# (test/admin_app.py) serves admin_page_html and handles its posts by calling
# the SQL functions; headless Chromium, driven over the DevTools protocol
# (test/mock/cdp_browser.mjs), clicks through it as a merchant would:
#   - moves a benefit up, and the customer portal shows the new order;
#   - edits a benefit's description and note, and the portal shows them;
#   - uploads a file through the upload form straight to the local S3 server
#     (its POST policy checked by test/mock/s3_sigv4_gateway.py), storage sends
#     the browser back to the application, which completes the upload, and the
#     portal offers the file with a working download link;
#   - a larger file than registered is refused by storage (the policy's size);
#   - retries a dead webhook delivery, which the worker then delivers;
#   - completes a manual fulfillment, when that part of the extension exists.
# botocore's generate_presigned_post builds the same upload forms for the same
# inputs and time.  Screenshots of every section at desktop and phone widths
# are kept with the test logs (and in $BENEFITS_SCREENSHOT_DIR when set).
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use File::Copy;
use JSON::PP;
use Time::HiRes qw(usleep);
use BenefitsNode;
use CdpBrowser;
use MockProviders;
use S3Mock;

my $root = $ENV{BENEFITS_ROOT};
my $json = JSON::PP->new->canonical->utf8;
my $s3 = S3Mock::start(bucket => 'downloads');
my $mock = MockProviders->new('admin');
my $hooks = $mock->url . '/hooks/shop';
my $tmp = PostgreSQL::Test::Utils::tempdir;
my $node = BenefitsNode::new_node('admin', conf => $s3->{conf});
$node->start;

my $org = '00000000-0000-0000-0000-0000000009a1';
$node->safe_psql('postgres', qq{
CREATE EXTENSION benefits;
INSERT INTO benefits.organizations (id, name) VALUES ('$org', 'Acme <Tools> & Co');
INSERT INTO benefits.customers (id, organization_id, external_id, email, name) VALUES
    ('00000000-0000-0000-0000-0000000009c1', '$org', 'ada', 'ada\@example.com', 'Ada "<b>" Lovelace');
INSERT INTO benefits.products (id, organization_id, name) VALUES
    ('00000000-0000-0000-0000-0000000009d1', '$org', 'Pro <plan>');
});

# The endpoint answers 400 for now: its first delivery dies.
$mock->control(status => { '/hooks/shop' => 400 });
my $file_content = join('', map { chr(($_ * 37 + 11) % 256) } 1 .. 30_000);
open(my $fh, '>:raw', "$tmp/manual.pdf") or die;
print $fh $file_content;
close $fh;
open($fh, '>:raw', "$tmp/bigger.pdf") or die;
print $fh $file_content . 'x';
close $fh;
my $file_id = $node->safe_psql('postgres', qq{
SELECT id FROM benefits.create_file('$org', 'Manual <v2> "final".pdf', ${\ length($file_content)}, 'application/pdf')});
my $manual = q{, "fulfillment": "manual"};
$node->safe_psql('postgres', qq{
SELECT benefits.create_webhook_endpoint('$org', '$hooks', ARRAY['benefit_grant.created']);
INSERT INTO benefits.benefits (id, organization_id, type, description, properties) VALUES
    ('00000000-0000-0000-0000-0000000009b1', '$org', 'custom', 'Welcome note', '{"note": "Hello!"}'),
    ('00000000-0000-0000-0000-0000000009b2', '$org', 'license_keys', 'Pro license',
     '{"prefix": "ACME", "expires": null, "activations": {"limit": 3, "enable_customer_admin": true}, "limit_usage": null}'),
    ('00000000-0000-0000-0000-0000000009b3', '$org', 'downloadable', 'Downloads',
     jsonb_build_object('files', jsonb_build_array('$file_id'), 'archived', '{}'::jsonb)),
    ('00000000-0000-0000-0000-0000000009b4', '$org', 'custom', 'Setup call', '{"note": "We will call you."$manual}');
SELECT benefits.update_product_benefits('00000000-0000-0000-0000-0000000009d1',
    ARRAY['00000000-0000-0000-0000-0000000009b1', '00000000-0000-0000-0000-0000000009b2',
          '00000000-0000-0000-0000-0000000009b3', '00000000-0000-0000-0000-0000000009b4']::uuid[]);
INSERT INTO benefits.subscriptions (customer_id, product_id, status)
VALUES ('00000000-0000-0000-0000-0000000009c1', '00000000-0000-0000-0000-0000000009d1', 'active');
});
is(MockProviders::wait_for($node, 'postgres',
		q{SELECT count(*) FILTER (WHERE state = 'dead') > 0 AND count(*) FILTER (WHERE state <> 'dead') = 0 FROM benefits.outbox WHERE kind = 'webhook'},
		't'), 't', 'the deliveries to the endpoint answering 400 are dead');
my $token = $node->safe_psql('postgres', qq{SELECT benefits.create_customer_session('$org', 'ada')});

# Usage: the key is validated seven times and uses all three activations.
my $key = $node->safe_psql('postgres',
	q{SELECT key FROM benefits.license_keys WHERE customer_id = '00000000-0000-0000-0000-0000000009c1'});
$node->safe_psql('postgres', qq{
SELECT benefits.validate_license('$key', '$org') FROM generate_series(1, 7);
SELECT benefits.activate_license('$key', '$org', 'device ' || i) FROM generate_series(1, 3) i;
});
is(MockProviders::wait_for($node, 'postgres',
		q{SELECT validations FROM benefits.license_keys WHERE customer_id = '00000000-0000-0000-0000-0000000009c1'}, '7'),
	'7', 'the validation counters were flushed');

# The application, connected as the node's superuser, acting as benefits_admin.
my $csrf = 'csrf-' . join('', map { sprintf '%02x', int(rand(256)) } 1 .. 16);
my $portfile = "$tmp/app.port";
local $ENV{PGHOST} = $node->host;
local $ENV{PGPORT} = $node->port;
local $ENV{PGDATABASE} = 'postgres';
my $app = IPC::Run::start([ '/usr/bin/python3', "$root/test/admin_app.py", $portfile, $org, $csrf ],
	'>', "$tmp/app.log", '2>&1', IPC::Run::timeout(900));
for (1 .. 300)
{
	last if -s $portfile;
	usleep(50_000);
}
my $base = 'http://127.0.0.1:' . slurp_file($portfile);

# One browser for the whole session (test/mock/cdp_browser.mjs): real mouse
# clicks on buttons named by their aria-label, the page's own form posts.
$ENV{HOME} = $tmp;    # Chromium's own files, writable by the test's user
my $browser = CdpBrowser::start(profile => "$tmp/profile", log => "$tmp/browser.log");

# Runs steps; returns each step's value (or dies on an error).  A step is
#   {goto => URL}, {click => ARIA_LABEL}: the URL the browser ended at;
#   {file => CSS, path => PATH}: give a file input its file;
#   {texts => CSS}, {attrs => CSS, name => ATTR}: of every matching element;
#   {screenshot => PNG, width, height, mobile}: its size in bytes.
sub browse
{
	my (@values);
	for my $step (@_)
	{
		my ($r, $value);
		if (exists $step->{goto})
		{
			$r = $browser->cmd(cmd => 'goto', url => $step->{goto});
			$value = $r->{url};
		}
		elsif (exists $step->{click})
		{
			$r = $browser->cmd(cmd => 'click', label => $step->{click});
			$value = $r->{url};
		}
		elsif (exists $step->{file})
		{
			$r = $browser->cmd(cmd => 'file', selector => $step->{file}, path => $step->{path});
		}
		elsif (exists $step->{texts} || exists $step->{attrs})
		{
			my $css = $json->encode($step->{texts} // $step->{attrs});
			my $of = exists $step->{texts} ? 'e.textContent.trim()' : 'e.getAttribute(' . $json->encode($step->{name}) . ')';
			$r = $browser->cmd(cmd => 'eval', expression => "[...document.querySelectorAll($css)].map((e) => $of)");
			$value = $r->{value};
		}
		else
		{
			$r = $browser->cmd(cmd => 'viewport', width => $step->{width}, height => $step->{height},
				mobile => $step->{mobile} ? JSON::PP::true : JSON::PP::false);
			$r = $browser->cmd(cmd => 'screenshot', path => $step->{screenshot}) if $r->{ok};
			$value = $r->{bytes};
		}
		die "browser step " . $json->encode($step) . ": $r->{error}\n" unless $r->{ok};
		push @values, $value;
	}
	return @values;
}

# The portal's benefit headings, in order.
sub portal_order
{
	my ($url, $titles) = browse({ goto => "$base/portal?token=$token" }, { texts => 'article h3' });
	return join(', ', @$titles);
}

is(portal_order(), 'Welcome note, Pro license, Downloads, Setup call', 'the portal shows the attachment order');

# Products: move "Downloads" up, above "Pro license".
my (undef, $before, $landed, $after, $notice) = browse(
	{ goto => "$base/admin?section=products" },
	{ texts => 'ol.attached > li > strong' },
	{ click => 'Move up Downloads' },
	{ texts => 'ol.attached > li > strong' },
	{ texts => '.notice' });
like($landed, qr{^\Q$base\E/admin\?section=products}, 'the application sent the browser back to the products');
is($notice->[0], 'Done: update_product_benefits.', 'with what it did');
is(join(', ', @$before), 'Welcome note, Pro license, Downloads, Setup call', 'the products section lists the benefits in order');
is(join(', ', @$after), 'Welcome note, Downloads, Pro license, Setup call', 'after "Move up" the order changed');
is(portal_order(), 'Welcome note, Downloads, Pro license, Setup call', 'and the customer portal shows the new order');
is($node->safe_psql('postgres', q{
SELECT string_agg(b.description, ', ' ORDER BY pb.position) FROM benefits.product_benefits pb
  JOIN benefits.benefits b ON b.id = pb.benefit_id WHERE pb.product_id = '00000000-0000-0000-0000-0000000009d1'}),
	'Welcome note, Downloads, Pro license, Setup call', 'as stored by update_product_benefits');

# Benefits: edit the welcome note's description and note; the portal shows them.
my $edit = $browser->cmd(cmd => 'goto', url => "$base/admin?section=benefits");
$edit = $browser->cmd(cmd => 'eval', expression => q{(() => {
	const form = [...document.querySelectorAll('form')].find((f) => f.querySelector('input[name="description"]')?.value === 'Welcome note');
	form.querySelector('input[name="description"]').value = 'Welcome <aboard>';
	form.querySelector('input[name="property.note"]').value = 'Hello & <welcome>!';
	return form.querySelector('button').getAttribute('aria-label');
})()});
my ($saved_at, $saved) = browse({ click => $edit->{value} }, { texts => '.notice' });
is($saved->[0], 'Done: update_benefit.', 'the edit was posted');
my (undef, $cards) = browse({ goto => "$base/portal?token=$token" }, { texts => 'article' });
like($cards->[0], qr/^Welcome <aboard>.*Hello & <welcome>!/s, 'the portal shows the new description and note, as text');
is($node->safe_psql('postgres', q{SELECT properties->>'note' FROM benefits.benefits WHERE id = '00000000-0000-0000-0000-0000000009b1'}),
	'Hello & <welcome>!', 'update_benefit stored the note');

# A post without the CSRF token is refused by the application.
my ($status) = ('');
IPC::Run::run([ 'curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--data',
		'action=update_product_benefits&product_id=00000000-0000-0000-0000-0000000009d1', "$base/admin/actions" ],
	'>', \$status);
is($status, '403', 'a post without the CSRF token is refused');
IPC::Run::run([ 'curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '-H', 'Origin: https://evil.example', '--data',
		"action=update_product_benefits&csrf_token=$csrf&product_id=00000000-0000-0000-0000-0000000009d1", "$base/admin/actions" ],
	'>', \($status = ''));
is($status, '403', "a post from another origin is refused (the browser's own posts carry the page's origin)");

# Files: the portal offers no download before the upload.
my ($links_before) = (browse({ goto => "$base/portal?token=$token" }, { texts => 'a[href*="/downloads/"]' }))[1];
is(scalar(@$links_before), 0, 'before the upload the portal offers no download');

# A file larger than registered: storage refuses it, by the policy's size range.
my $refused = (browse(
	{ goto => "$base/admin?section=files" },
	{ file => 'input[type=file]', path => "$tmp/bigger.pdf" },
	{ click => 'Upload Manual <v2> "final".pdf' },
	{ texts => 'Code' }))[3];
# (storage answers XML; the step reads its Code element)
is(join(',', @$refused), 'EntityTooLarge', 'storage refuses a file one byte larger than registered');
is($node->safe_psql('postgres', qq{SELECT uploaded_at IS NULL FROM benefits.files WHERE id = '$file_id'}), 't',
	'and the file still waits for its upload');

# The real upload: storage redirects to the application, which completes it.
my @upload = browse(
	{ goto => "$base/admin?section=files" },
	{ attrs => 'form[enctype="multipart/form-data"]', name => 'action' },
	{ file => 'input[type=file]', path => "$tmp/manual.pdf" },
	{ click => 'Upload Manual <v2> "final".pdf' },
	{ texts => 'td' },
	{ texts => '.notice' });
is($upload[1][0], "$s3->{endpoint}/downloads", 'the upload form posts to the storage');
like($upload[3], qr{^\Q$base\E/admin\?section=files}, 'storage sent the browser back to the application');
is($upload[5][0], 'Uploaded.', 'which completed the upload');
ok((grep { $_ eq 'uploaded' } @{ $upload[4] }), 'the files section shows the file uploaded');
my ($portal_url, $links) = browse({ goto => "$base/portal?token=$token" }, { attrs => 'a[href*="/downloads/"]', name => 'href' });
is(scalar(@$links), 1, 'the portal offers the uploaded file');
my $got = '';
IPC::Run::run([ 'curl', '-sS', $links->[0] ], '>', \$got);
is($got, $file_content, 'its download link serves the bytes uploaded through the form');

# botocore builds the same upload forms (file_upload_form, and
# s3_presigned_post for keys with spaces and non-ASCII names, path and virtual
# styles), and a tampered form does not pass.
my $second = $node->safe_psql('postgres', qq{SELECT id FROM benefits.create_file('$org', 'ünï côdé "notes".txt', 77)});
my $cases = $node->safe_psql('postgres', qq{
SELECT jsonb_build_object('endpoint', current_setting('benefits.s3_endpoint'), 'region', 'us-east-1',
                          'bucket', 'downloads', 'path_style', true, 'access_key_id', 'S3RVER',
                          'secret_access_key', 'S3RVER', 'key', f.storage_key, 'size', f.size,
                          'redirect_url', 'http://127.0.0.1:1/admin/uploaded?file_id=' || f.id,
                          'expires', 3600,
                          'form', benefits.file_upload_form(f.id, 'http://127.0.0.1:1/admin/uploaded?file_id=' || f.id))
  FROM benefits.files f WHERE f.id = '$second';
SET benefits.s3_endpoint = 'https://s3.example.com/prefix';
SET benefits.s3_url_style = 'virtual';
SET benefits.s3_region = 'eu-west-3';
SELECT jsonb_build_object('endpoint', 'https://s3.example.com/prefix', 'region', 'eu-west-3',
                          'bucket', 'downloads', 'path_style', false, 'access_key_id', 'S3RVER',
                          'secret_access_key', 'S3RVER', 'key', k, 'size', 5368709120,
                          'redirect_url', 'https://shop.example/done', 'expires', 600,
                          'form', benefits.s3_presigned_post(k, 5368709120, 'https://shop.example/done', '10 minutes',
                                                             '2031-12-31 23:59:59.999+00'))
  FROM unnest(ARRAY['plain.bin', 'dir/a b+c&d=e.zip', 'emoji 😀/ü\\\\"x".bin']) k;
});
my @case_lines = split /\n/, $cases;
is(scalar(@case_lines), 4, 'four upload forms to check');
my $tampered = $json->decode($case_lines[0]);
$tampered->{size} += 1;
my ($oracle, $err) = ('', '');
my $ok = IPC::Run::run([ 'python3', "$root/test/tools/s3_post_check.py" ], '<', \"$cases\n", '>', \$oracle, '2>', \$err);
diag($err) if $err ne '';
ok($ok, 'botocore check exited 0');
is(scalar(() = $oracle =~ /^ok \d+ - botocore builds the same form/mg), 4, 'botocore builds the same four forms');
diag($oracle) unless $ok;
($oracle, $err) = ('', '');
$ok = IPC::Run::run([ 'python3', "$root/test/tools/s3_post_check.py" ], '<', \($json->encode($tampered) . "\n"),
	'>', \$oracle, '2>', \$err);
ok(!$ok && $oracle =~ /^not ok 1/m, 'a form for another size does not match botocore\'s');

# Delivery: the dead job is listed with its error; "Retry" queues it again
# and the worker delivers it once the endpoint answers.
$mock->control(status => {});
my @delivery = browse(
	{ goto => "$base/admin?section=delivery" },
	{ texts => 'td.error' },
	{ attrs => 'button[aria-label^="Retry job"]', name => 'aria-label' });
like(join(' | ', @{ $delivery[1] }), qr/400/, 'the dead job is listed with its last error');
my (undef, $retried) = browse({ click => $delivery[2][0] }, { texts => '.notice' });
is($retried->[0], 'Done: retry_job.', 'the retry was posted');
is(MockProviders::wait_for($node, 'postgres',
		q{SELECT count(*) FILTER (WHERE state = 'done') FROM benefits.outbox WHERE kind = 'webhook'}, '1'),
	'1', 'the worker delivered the retried job');
ok((grep { $_->{path} eq '/hooks/shop' && $_->{answer} =~ /^2/ } $mock->requests), 'the endpoint received it');

# Usage: the counters as a chart and a table, the key at its activation limit.
my @usage = browse({ goto => "$base/admin?section=usage" }, { texts => 'td' }, { texts => 'svg title' });
like(join(' | ', @{ $usage[1] }), qr/\S \| Ada "<b>" Lovelace \| 7 \| \d/, 'the most-validated key, its customer (as text) and its count');
like(join(' | ', @{ $usage[1] }), qr/Lovelace \| 3 \| 3/, 'the key using all its activations');
ok((grep { /: 7$/ } @{ $usage[2] }), "today's column of the chart carries the count");

# Manual fulfillment: the waiting grant is listed, marked fulfilled from the page, and active.
my @fulfill = browse(
	{ goto => "$base/admin?section=delivery" },
	{ texts => 'td' },
	{ click => 'Mark fulfilled Setup call for Ada "<b>" Lovelace' },
	{ texts => '.notice' });
ok((grep { $_ eq 'Setup call' } @{ $fulfill[1] }), 'the waiting fulfillment is listed');
is($fulfill[3][0], 'Done: complete_fulfillment.', 'the completion was posted');
is($node->safe_psql('postgres', q{
SELECT state FROM benefits.grants WHERE benefit_id = '00000000-0000-0000-0000-0000000009b4'}), 'active',
	'the grant is active');

# Screenshots of every section, desktop and phone, kept with the logs.
my $keep = $ENV{BENEFITS_SCREENSHOT_DIR} // $PostgreSQL::Test::Utils::log_path;
for my $section (qw(overview products benefits files delivery usage))
{
	for my $size ([ 'desktop', 1280, 900, 0 ], [ 'phone', 390, 844, 1 ])
	{
		my $png = "$tmp/admin-$section-$size->[0].png";
		my (undef, $bytes) = browse({ goto => "$base/admin?section=$section" },
			{ screenshot => $png, width => $size->[1], height => $size->[2], mobile => $size->[3] });
		cmp_ok($bytes, '>', 10_000, "screenshot of $section ($size->[0])");
		copy($png, "$keep/admin-$section-$size->[0].png") or diag("could not keep the screenshot: $!");
	}
}
note("screenshots: $keep");

$browser->quit;
$app->kill_kill;
$node->stop;
$mock->stop;
$s3->stop;
done_testing();
