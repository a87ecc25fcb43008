# Customer email against a real SMTP server (aiosmtpd, test/mock/smtp_server.py),
# every message parsed with Python's email package: one "benefits granted"
# message per activation listing every benefit in attachment order with its
# type's instructions (the full license key, GitHub's "connect your account",
# credits and balance, the note), correct headers (Date, From, To, RFC 2047
# Subject, Message-ID fixed at write time, List-Unsubscribe to the portal),
# multipart/alternative with both parts and every hostile value escaped in
# the HTML; nothing for a rolled-back transaction; removals and manual
# fulfillment; SMTP 421/451 retried and delivered once, 550 dead and
# recorded, the server down then up, and the worker SIGKILLed with 500
# messages queued: all delivered, a resend keeping its Message-ID.
use strict;
use warnings;
use utf8;
use PostgreSQL::Test::Utils;
use Test::More;
use JSON::PP;
use Time::HiRes qw(usleep);
use BenefitsNode;
use MockProviders;
use SmtpMock;

my $smtp = SmtpMock->new('email');
my $smtp_url = $smtp->url;
my $node = BenefitsNode::new_node('email', conf => qq{
benefits.smtp_url = '$smtp_url'
benefits.email_from = 'noreply\@example.net'
benefits.http_timeout = '5s'
benefits.http_connect_timeout = '1s'
benefits.retry_initial_delay = '100ms'
benefits.retry_max_delay = '500ms'
benefits.max_attempts = 20
restart_after_crash = on
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION benefits');
sub sql { return $node->safe_psql('postgres', $_[0]); }
sub wait_q { return MockProviders::wait_for($node, 'postgres', $_[0], $_[1], $_[2]); }
sub idle { return wait_q("SELECT count(*) FROM benefits.outbox WHERE kind = 'email' AND state IN ('pending', 'running')", '0', $_[0]); }
sub to { my ($addr) = @_; return grep { $_->{rcpt_tos}[0] eq $addr } $smtp->messages; }
sub part { my ($m, $type) = @_; my ($p) = grep { $_->{content_type} eq $type } @{ $m->{parts} }; return $p ? $p->{text} : ''; }

my $org = sql(q{INSERT INTO benefits.organizations (name, email_from, support_email, portal_url)
    VALUES ('Café Ünïcode <Shop> & "Co"', 'shop@example.com', 'help@example.com', 'https://app.example.com/portal?a=1&b=<2>')
    RETURNING id});
my $meter = sql("INSERT INTO benefits.meters (organization_id, name) VALUES ('$org', 'API calls') RETURNING id");
my %b;
$b{key} = sql(qq{SELECT id FROM benefits.create_benefit('license_keys', '$org', 'Pro license',
    '{"prefix": "PRO", "expires": false, "activations": 3, "limit_usage": 1000}')});
$b{note} = sql(qq{SELECT id FROM benefits.create_benefit('custom', '$org', 'Welcome <note>',
    '{"note": "<b>Thanks</b> & \\"welcome\\" <script>alert(1)</script>"}')});
$b{credits} = sql(qq{SELECT id FROM benefits.create_benefit('meter_credits', '$org', 'Credits',
    '{"meter_id": "$meter", "units": 500}')});
$b{gh} = sql(qq{SELECT id FROM benefits.create_benefit('github_repository', '$org', 'Source code',
    '{"repository_owner": "acme", "repository_name": "engine", "permission": "pull"}')});
$b{manual} = sql(qq{SELECT id FROM benefits.create_benefit('custom', '$org', 'Onboarding call',
    '{"note": "We will call you.", "fulfillment": "manual"}')});
my $pro = sql("INSERT INTO benefits.products (organization_id, name) VALUES ('$org', 'Pro') RETURNING id");
sql("SELECT benefits.update_product_benefits('$pro', ARRAY['$b{key}', '$b{note}', '$b{credits}', '$b{gh}']::uuid[])");
my $eve = sql(q{INSERT INTO benefits.customers (organization_id, external_id, email, name)
    VALUES ('} . $org . q{', 'eve', 'eve@example.com', 'Eve "<script>x</script>" Ōkami') RETURNING id});

# One activation: one message, every benefit in attachment order.
my $sub = sql("INSERT INTO benefits.subscriptions (customer_id, product_id, status) VALUES ('$eve', '$pro', 'active') RETURNING id");
idle();
my @eve = to('eve@example.com');
is(scalar(@eve), 1, 'one message for the activation of four benefits');
my $m = $eve[0];
my ($job) = split /\n/, sql("SELECT message_id || '|' || benefits.rfc3339(created_at) FROM benefits.outbox WHERE kind = 'email' AND action = 'benefits_granted'");
my ($message_id, $created) = split /\|/, $job;
is($m->{mail_from}, 'shop@example.com', 'envelope sender: the organization\'s email_from');
is($m->{headers}{'Message-ID'}, "<$message_id\@example.com>", 'Message-ID is the one fixed when the row was written');
is($m->{headers}{Subject}, 'Your benefits from Café Ünïcode <Shop> & "Co"', 'the Subject decodes to the organization\'s name');
like($m->{raw_headers}{Subject}, qr/^=\?UTF-8\?B\?/, 'and is RFC 2047 encoded on the wire');
unlike($m->{raw_headers}{Subject}, qr/[^\x20-\x7e\r\n\t]/, 'with only ASCII in the header');
is($m->{headers}{To}, '"Eve \\"<script>x</script>\\" Ōkami" <eve@example.com>', 'To: the customer\'s name and address');
like($m->{headers}{From}, qr/<shop\@example\.com>$/, 'From: the organization\'s sender');
is($m->{headers}{'List-Unsubscribe'}, '<https://app.example.com/portal?a=1&b=%3C2%3E>',
	'List-Unsubscribe points to the portal (angle brackets encoded, so the URL cannot close its own)');
is($m->{headers}{'Reply-To'}, 'help@example.com', 'Reply-To: the support contact');
my $date = `python3 -c "import email.utils,sys; print(int(email.utils.parsedate_to_datetime(sys.argv[1]).timestamp()))" '$m->{headers}{Date}'`;
chomp $date;
my $created_epoch = sql("SELECT extract(epoch FROM created_at)::bigint FROM benefits.outbox WHERE message_id = '$message_id'");
ok(abs($date - $created_epoch) <= 1, "Date ($m->{headers}{Date}) is when the row was written");
is($m->{content_type}, 'multipart/alternative', 'multipart/alternative');
is_deeply([ map { $_->{content_type} } @{ $m->{parts} } ], [ 'text/plain', 'text/html' ], 'plain text, then HTML');
is_deeply([ map { $_->{charset} } @{ $m->{parts} } ], [ 'utf-8', 'utf-8' ], 'both in UTF-8');
is_deeply($m->{defects}, [], 'the email package finds no defect');
my $text = part($m, 'text/plain');
my $html = part($m, 'text/html');
my $key = sql("SELECT key FROM benefits.license_keys WHERE customer_id = '$eve'");
like($text, qr/Your license key: \Q$key\E/, 'the plain part has the full license key');
like($html, qr/<code>\Q$key\E<\/code>/, 'and so has the HTML part');
like($text, qr/up to 3 devices.*1000 uses.*does not expire/s, 'with its limits');
my @order = map { index($text, "== $_ ==") } ('Pro license', 'Welcome <note>', 'Credits', 'Source code');
ok((!grep { $_ < 0 } @order) && $order[0] < $order[1] && $order[1] < $order[2] && $order[2] < $order[3],
	'the benefits are listed in attachment order');
like($text, qr/500 credits of API calls\. Your balance is now 500\./, 'credits and the balance');
like($text, qr/Connect your GitHub account to get access: https:\/\/app\.example\.com\/portal/, 'GitHub: connect your account, with the portal link');
like($text, qr/<b>Thanks<\/b> & "welcome"/, 'the note as written in the plain part');
like($html, qr/&lt;b&gt;Thanks&lt;\/b&gt; &amp; &quot;welcome&quot; &lt;script&gt;alert\(1\)&lt;\/script&gt;/, 'escaped in the HTML part');
like($html, qr/Hello Eve &quot;&lt;script&gt;x&lt;\/script&gt;&quot; Ōkami,/, 'the customer\'s name escaped too');
like($html, qr/<h2>Welcome &lt;note&gt;<\/h2>/, 'and the benefit\'s description');
unlike($html, qr/<script/i, 'no script element in the HTML part');
unlike($html, qr/<(img|link|script|iframe)\b|src=|url\(/i, 'no external asset');
like($html, qr/<a href="https:\/\/app\.example\.com\/portal\?a=1&amp;b=&lt;2&gt;">/, 'the portal link escaped in its attribute');
like($text, qr/Questions\? Write to help\@example\.com\./, 'the support contact');

# A rolled-back transaction sends nothing; a manual grant is a message of its own.
$node->safe_psql('postgres', "BEGIN; SELECT benefits.grant_benefit('$eve', '$b{manual}'); ROLLBACK;");
is(sql("SELECT count(*) FROM benefits.outbox WHERE kind = 'email'"), '1', 'a rolled-back grant wrote no email');
my $manual_grant = sql("SELECT id FROM benefits.grant_benefit('$eve', '$b{manual}')");
idle();
@eve = to('eve@example.com');
is(scalar(@eve), 2, 'the manual grant sent its own message');
like(part($eve[1], 'text/plain'), qr/== Onboarding call ==.*We will call you\..*preparing this for you/s,
	'the manual benefit: the note, and that the seller is preparing it');
sql("SELECT benefits.complete_fulfillment('$manual_grant', E'Booked: Monday 10:00.\\n<i>See you</i>')");
idle();
@eve = to('eve@example.com');
is(scalar(@eve), 3, 'completing it sent a message');
is($eve[2]{headers}{Subject}, 'Onboarding call is ready', 'whose subject names the benefit');
like(part($eve[2], 'text/plain'), qr/From the seller: Booked: Monday 10:00\.\n<i>See you<\/i>/, 'with the seller\'s note');
like(part($eve[2], 'text/html'), qr/From the seller: Booked: Monday 10:00\.<br>&lt;i&gt;See you&lt;\/i&gt;/, 'escaped in HTML');

# Revocation: one message listing what was removed.
sql("UPDATE benefits.subscriptions SET status = 'revoked' WHERE id = '$sub'");
idle();
@eve = to('eve@example.com');
is(scalar(@eve), 4, 'the revocation sent one message');
like($eve[3]{headers}{Subject}, qr/^Your benefits from Café .* have ended$/, 'benefits removed');
is_deeply([ sort(part($eve[3], 'text/plain') =~ /^== (.*) ==$/mg) ], [ 'Credits', 'Pro license', 'Source code', 'Welcome <note>' ],
	'listing the four benefits');
unlike(part($eve[3], 'text/plain'), qr/\Q$key\E/, 'without the key');

# An organization that turned a kind off gets none of it.
sql("UPDATE benefits.organizations SET email_disabled = '{benefits_granted}' WHERE id = '$org'");
sql("UPDATE benefits.subscriptions SET status = 'active' WHERE id = '$sub'");
is(sql("SELECT count(*) FROM benefits.outbox WHERE kind = 'email'"), '4', 'benefits_granted turned off: no message written');
sql("UPDATE benefits.organizations SET email_disabled = '{}' WHERE id = '$org'");

# SMTP failures.  451 at DATA twice, then accepted: delivered once.
sub customer
{
	my ($name) = @_;
	return sql("INSERT INTO benefits.customers (organization_id, external_id, email) VALUES ('$org', '$name', '$name\@example.com') RETURNING id");
}
$smtp->control(fail => { DATA => [ 451, 2 ] });
my $c451 = customer('busy');
sql("SELECT benefits.grant_benefit('$c451', '$b{note}')");
is(wait_q("SELECT state || ' ' || attempts FROM benefits.outbox o JOIN benefits.customers c ON c.id::text = o.payload->>'customer_id' WHERE c.external_id = 'busy'", 'done 3'),
	'done 3', '451 twice: retried and done on the third attempt');
is(scalar(to('busy@example.com')), 1, 'delivered once');
is($smtp->refusals, 2, 'after two refusals');

# 421 to MAIL, then accepted.
$smtp->control(fail => { MAIL => [ 421, 1 ] });
my $c421 = customer('closing');
sql("SELECT benefits.grant_benefit('$c421', '$b{note}')");
is(wait_q("SELECT state || ' ' || attempts FROM benefits.outbox o JOIN benefits.customers c ON c.id::text = o.payload->>'customer_id' WHERE c.external_id = 'closing'", 'done 2'),
	'done 2', '421: retried and done');
is(scalar(to('closing@example.com')), 1, 'delivered once');

# 550 to RCPT: dead at once, the reply recorded.
$smtp->control(fail => { RCPT => [ 550, -1 ] });
my $c550 = customer('nobody');
sql("SELECT benefits.grant_benefit('$c550', '$b{note}')");
is(wait_q("SELECT count(*) FROM benefits.dead_jobs WHERE kind = 'email'", '1'), '1', '550: the job is dead');
is(sql("SELECT attempts || ' ' || last_status || ' ' || (last_error LIKE '%SMTP 550%') FROM benefits.dead_jobs WHERE kind = 'email'"),
	'1 550 true', 'after one attempt, with the 550 recorded');
is(scalar(to('nobody@example.com')), 0, 'nothing delivered');
$smtp->control();

# The server down, then up: retried until it answers.
$smtp->stop;
my $cdown = customer('patient');
sql("SELECT benefits.grant_benefit('$cdown', '$b{note}')");
is(wait_q("SELECT attempts > 0 AND state = 'pending' FROM benefits.outbox o JOIN benefits.customers c ON c.id::text = o.payload->>'customer_id' WHERE c.external_id = 'patient'", 't'),
	't', 'server down: the message waits for a retry');
like(sql("SELECT last_error FROM benefits.outbox o JOIN benefits.customers c ON c.id::text = o.payload->>'customer_id' WHERE c.external_id = 'patient'"),
	qr/email benefits_granted: .*(connect|Connection)/i, 'the connection failure is recorded');
$smtp->start;
is(wait_q("SELECT state FROM benefits.outbox o JOIN benefits.customers c ON c.id::text = o.payload->>'customer_id' WHERE c.external_id = 'patient'", 'done'),
	'done', 'server up: delivered');
is(scalar(to('patient@example.com')), 1, 'once');

# The worker SIGKILLed with 500 messages queued: every one delivered, a
# resend keeping its Message-ID.
$smtp->control(delay_ms => 20);
sql("INSERT INTO benefits.customers (organization_id, external_id, email) SELECT '$org', 'bulk' || i, 'bulk' || i || '\@example.com' FROM generate_series(1, 500) i");
sql("INSERT INTO benefits.subscriptions (customer_id, product_id, status) SELECT id, '$pro', 'active' FROM benefits.customers WHERE external_id LIKE 'bulk%'");
is(sql("SELECT count(*) FROM benefits.outbox WHERE kind = 'email' AND payload->>'customer_id' IN (SELECT id::text FROM benefits.customers WHERE external_id LIKE 'bulk%')"),
	'500', '500 activations in one statement: 500 messages queued');
my $t0 = Time::HiRes::time();
wait_q("SELECT count(*) >= 20 FROM benefits.outbox WHERE kind = 'email' AND state = 'done' AND payload->>'customer_id' IN (SELECT id::text FROM benefits.customers WHERE external_id LIKE 'bulk%')", 't');
note(sprintf('20 of 500 sent in %.1fs', Time::HiRes::time() - $t0));
my $worker_pid = sql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'benefits worker'");
ok($worker_pid, "the worker runs (pid $worker_pid)");
kill 'KILL', $worker_pid;
# Wait for a worker with another pid: only after the postmaster's reset and recovery.
my $took_over = '';
for (1 .. 600)
{
	$took_over = eval {
		$node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'benefits worker' AND pid <> $worker_pid");
	} // '';
	last if $took_over eq '1';
	usleep(100_000);
}
is($took_over, '1', 'a new worker took over after the SIGKILL');
# (The new worker logs the leases it released just after it starts.)
$node->wait_for_log(qr/released \d+ jobs leased by a previous worker/);
like(slurp_file($node->logfile), qr/released \d+ jobs leased by a previous worker/, 'and released the killed worker\'s leases');
is(idle(180), '0', 'the queue drained');
is(sql("SELECT count(*) FROM benefits.outbox WHERE kind = 'email' AND state <> 'done' AND payload->>'customer_id' IN (SELECT id::text FROM benefits.customers WHERE external_id LIKE 'bulk%')"),
	'0', 'all 500 done');
my @bulk = grep { $_->{rcpt_tos}[0] =~ /^bulk\d+\@/ } $smtp->messages;
my %by_id;
push @{ $by_id{ $_->{headers}{'Message-ID'} } }, $_ for @bulk;
is(scalar(keys %by_id), 500, 'the server received 500 distinct messages (' . scalar(@bulk) . ' deliveries)');
my %queued = map { ("<$_\@example.com>" => 1) } split /\n/, sql("SELECT message_id FROM benefits.outbox WHERE kind = 'email' AND payload->>'customer_id' IN (SELECT id::text FROM benefits.customers WHERE external_id LIKE 'bulk%')");
is(scalar(grep { !$queued{$_} } keys %by_id), 0, 'every one is a queued message, by its Message-ID');
my @resent = grep { @{ $by_id{$_} } > 1 } keys %by_id;
ok(scalar(grep { my $l = $by_id{$_}; $l->[0]{rcpt_tos}[0] ne $l->[-1]{rcpt_tos}[0] } @resent) == 0,
	scalar(@resent) . ' resent after the kill, each to the same recipient with the same Message-ID');

$node->stop;
$smtp->stop;
done_testing();
