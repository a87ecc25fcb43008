# Account linking in a real browser (issue 12 §4): headless Chromium, driven
# over the DevTools protocol (test/mock/cdp_browser.mjs), does what the
# customer does on the portal page a small shop application serves
# (test/mock/portal_app.py): clicks "Connect GitHub", passes the mock GitHub's
# authorize page (which lets them in at once) back to the application's
# callback and lands on the portal again, which — once the worker exchanged the
# code, read the account and invited it — shows the repository access granted
# to octo-ada.  The same for Discord, where the member is added with the
# token the exchange issued.  Then "Disconnect GitHub": the page offers
# "Connect GitHub" again and the collaborator is removed.  A refusal at the
# provider, a reused callback URL, and the page's Content-Security-Policy
# (which lets the flow through, and is shown to block what it should) are
# checked on the way.  Screenshots of each step are kept in
# $BENEFITS_SCREENSHOT_DIR, or in the TAP log directory.
use strict;
use warnings;
use utf8;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use JSON::PP;
use File::Path qw(make_path);
use Time::HiRes qw(usleep);
use BenefitsNode;
use CdpBrowser;
use MockProviders;

my $root = $ENV{BENEFITS_ROOT};
my $tmp = PostgreSQL::Test::Utils::tempdir;
my $shots = $ENV{BENEFITS_SCREENSHOT_DIR} // "$PostgreSQL::Test::Utils::log_path/081_screenshots";
make_path($shots);
my $json = JSON::PP->new->canonical->utf8;

my $mock = MockProviders->new('browser_oauth');
my $url = $mock->url;
my $node = BenefitsNode::new_node('browser_oauth', conf => qq{
benefits.github_api_url = '$url'
benefits.github_oauth_url = '$url'
benefits.github_token = 'ghp_test'
benefits.github_oauth_client_id = 'gh-client'
benefits.github_oauth_client_secret = 'gh-secret'
benefits.discord_api_url = '$url/api/v10'
benefits.discord_oauth_url = '$url'
benefits.discord_bot_token = 'bot_test'
benefits.discord_oauth_client_id = 'dc-client'
benefits.discord_oauth_client_secret = 'dc-secret'
benefits.http_timeout = '5s'
benefits.retry_initial_delay = '100ms'
benefits.retry_max_delay = '1s'
});
$node->start;
$mock->control(oauth_clients => { github => [ 'gh-client', 'gh-secret' ], discord => [ 'dc-client', 'dc-secret' ] });
sub sql { return $node->safe_psql('postgres', $_[0]); }

# A shop: Pro gives push access to acme/tools and a role on a Discord server
# (kick_member: disconnecting Discord would remove the member).
sql('CREATE EXTENSION benefits');
my $org = sql("INSERT INTO benefits.organizations (name) VALUES ('Acme Tools') RETURNING id");
my $gh = sql(qq{SELECT id FROM benefits.create_benefit('github_repository', '$org', 'Source code',
    '{"repository_owner": "acme", "repository_name": "tools", "permission": "push"}')});
my $dc = sql(qq{SELECT id FROM benefits.create_benefit('discord', '$org', 'Community chat',
    '{"guild_id": "100000000000000111", "role_id": "100000000000000201", "kick_member": true}')});
my $product = sql("INSERT INTO benefits.products (organization_id, name) VALUES ('$org', 'Pro') RETURNING id");
sql("SELECT benefits.update_product_benefits('$product', ARRAY['$gh', '$dc']::uuid[])");
my $cust = sql(q{INSERT INTO benefits.customers (organization_id, external_id, email, name)
    VALUES ('} . $org . q{', 'ada', 'ada@example.com', 'Ada Lovelace') RETURNING id});
sql("INSERT INTO benefits.subscriptions (customer_id, product_id, status, current_period_end) VALUES ('$cust', '$product', 'active', '2031-03-01')");

# The application connects as a role holding only benefits_public, as a
# portal facing end users should; the session token is the application's.
sql("CREATE ROLE shop_portal LOGIN IN ROLE benefits_public");
my $token = sql("SELECT benefits.create_customer_session('$org', 'ada')");
PostgreSQL::Test::Utils::append_to_file("$tmp/token", $token);

# An interpreter with psycopg (Debian's python3-psycopg is /usr/bin/python3's;
# a python3 earlier in PATH, e.g. pyenv's, may lack it).
my ($python) = grep { system($_, '-c', 'import psycopg') == 0 } ('python3', '/usr/bin/python3');
die "no python3 with psycopg: install python3-psycopg (make deps)\n" unless $python;
my $app_dir = "$tmp/app";
make_path($app_dir);
my $app_pid = fork();
die "fork: $!" unless defined $app_pid;
if ($app_pid == 0)
{
	open(STDOUT, '>', "$app_dir/stdout");
	open(STDERR, '>', "$app_dir/stderr");
	$ENV{PGHOST} = $node->host;
	$ENV{PGPORT} = $node->port;
	$ENV{PGDATABASE} = 'postgres';
	$ENV{PGUSER} = 'shop_portal';
	exec($python, "$root/test/mock/portal_app.py", '--port-file', "$app_dir/port", '--log', "$app_dir/requests.jsonl",
		'--token-file', "$tmp/token")
	  or die "exec: $!";
}
END { kill 'TERM', $app_pid if $app_pid; }    # also when the test dies
for (1 .. 500) { last if -s "$app_dir/port"; usleep(20_000); }
die "the portal application did not start: " . slurp_file("$app_dir/stderr") unless -s "$app_dir/port";
my $app = 'http://127.0.0.1:' . slurp_file("$app_dir/port");
sub app_requests
{
	open(my $fh, '<', "$app_dir/requests.jsonl") or return ();
	my @r = map { $json->decode($_) } grep { /\n\z/ } <$fh>;
	close $fh;
	return @r;
}

# The browser: one Chromium for the whole journey (one profile, so one
# customer's browser), commands over a pipe, one JSON answer per line.
$ENV{HOME} = $tmp;    # Chromium's own files, writable by the test's user
my $browser = CdpBrowser::start(profile => "$tmp/profile", log => "$tmp/browser.log");
sub browser { return $browser->cmd(@_); }
my $step = 0;
sub screenshot
{
	my ($name) = @_;
	my $path = sprintf('%s/%02d-%s.png', $shots, ++$step, $name);
	my $r = browser(cmd => 'screenshot', path => $path);
	ok($r->{ok} && -s $path > 10_000, "screenshot $name") or diag(explain($r));
	note("screenshot: $path");
}
# What the page shows: its URL, title, text and HTML and, per benefit card
# (keyed by the card's heading), the card's text, the connect link's href and
# the disconnect form's action, both resolved as the browser resolves them.
sub page
{
	my $p = browser(cmd => 'page');
	my $cards = browser(cmd => 'eval', expression => q{
		Object.fromEntries([...document.querySelectorAll("article.card")].map((a) => [
			a.querySelector("h3").textContent.trim(),
			{ text: a.innerText, connect: a.querySelector("a.connect")?.href ?? null,
			  // (not form.action: the form's <input name="action"> shadows that property)
			  disconnect: a.querySelector("form") ? new URL(a.querySelector("form").getAttribute("action"), location.href).href
			                                      : null }]))})->{value};
	$p->{cards} = $cards // {};
	return $p;
}
# Reloads the portal until the card's text matches (the worker's delivery
# is asynchronous); the last page seen.
sub reload_until
{
	my ($card, $pattern) = @_;
	my $p;
	for (1 .. 120)
	{
		$p = page();
		last if ($p->{cards}{$card}{text} // '') =~ $pattern;
		usleep(500_000);
		browser(cmd => 'reload');
	}
	return $p;
}
# A navigation's chain of document requests as "METHOD STATUS URL" lines,
# with the two servers' origins named.
sub chain_of
{
	my ($r) = @_;
	return [ map { my $u = $_->{url}; $u =~ s/^\Q$app\E/APP/; $u =~ s/^\Q$url\E/MOCK/; "$_->{method} $_->{status} $u" }
		  @{ $r->{chain} // [] } ];
}
sub query_of
{
	my ($u) = @_;
	my ($q) = $u =~ /\?(.*)\z/ or return ();
	return map { my $v = $_; $v =~ tr/+/ /; $v =~ s/%([0-9A-Fa-f]{2})/chr(hex($1))/ge; $v } map { split /=/, $_, 2 } split /&/, $q;
}
sub mock_since
{
	my ($since, $pattern) = @_;
	return grep { $_->{t} > $since && "$_->{method} $_->{path}" =~ $pattern } $mock->requests;
}
sub last_t { return $mock->last_time; }

# The customer opens the portal: both benefits wait for an account, each with
# a link to its provider's authorize page and no form to disconnect.
my $r = browser(cmd => 'goto', url => "$app/portal");
is_deeply(chain_of($r), [ 'GET 200 APP/portal' ], 'the browser opens the portal the application serves');
my $p = page();
is($p->{title}, 'Your purchases · Acme Tools', 'the page is the portal');
like($p->{cards}{'Source code'}{text}, qr/acme\/tools\s+push/, 'the GitHub card names the repository and the permission');
(my $callback_enc = "$app/oauth/callback") =~ s/([^A-Za-z0-9_.~-])/sprintf('%%%02X', ord $1)/ge;
like($p->{cards}{'Source code'}{connect} // '',
	qr{^\Q$url\E/login/oauth/authorize\?response_type=code&client_id=gh-client&redirect_uri=\Q$callback_enc\E&state=[A-Za-z0-9_-]{43}$},
	'"Connect GitHub" links to the GitHub authorize page, returning to the application');
like($p->{cards}{'Community chat'}{connect} // '', qr{^\Q$url\E/oauth2/authorize\?response_type=code&client_id=dc-client&.*scope=identify%20guilds\.join&state=},
	'"Connect Discord" links to the Discord authorize page');
ok(!defined $p->{cards}{'Source code'}{disconnect} && !defined $p->{cards}{'Community chat'}{disconnect},
	'nothing to disconnect yet');
screenshot('unlinked');

# Clicking "Connect GitHub": the browser goes to GitHub's authorize page,
# which sends it to the application's callback with a code and the state the
# link carried; the application passes them to portal_link_callback and sends
# the browser back to the portal.
my %gh_link = query_of($p->{cards}{'Source code'}{connect});
my $t0 = last_t();
$r = browser(cmd => 'click', text => 'Connect GitHub');
ok($r->{ok}, 'the customer clicks "Connect GitHub"');
is($r->{clicked}{tag}, 'a', 'a link');
my @chain = @{ chain_of($r) };
like($chain[0] // '', qr{^GET 302 MOCK/login/oauth/authorize\?}, 'the browser goes to GitHub\'s authorize page, which redirects');
like($chain[1] // '', qr{^GET 303 APP/oauth/callback\?code=[0-9a-f]+&state=}, 'to the application\'s callback, which redirects');
is($chain[2], 'GET 200 APP/portal', 'back to the portal');
is(scalar(@chain), 3, 'and nowhere else');
my %gh_cb = query_of($r->{chain}[1]{url} // '');
is($gh_cb{state}, $gh_link{state}, 'the callback carries the state of the link the customer clicked');
my ($gh_cb_log) = grep { $_->{path} =~ m{^/oauth/callback} } app_requests();
is($gh_cb_log->{result}, 'pending', 'portal_link_callback took it: pending');
my ($gh_auth) = mock_since($t0, qr{^GET /login/oauth/authorize});
like($gh_auth->{headers}{'user-agent'} // '', qr/HeadlessChrome/, 'the authorize page was visited by the browser');
unlike(page()->{cards}{'Source code'}{text}, qr/Connect GitHub/, 'the portal no longer asks to connect GitHub');
screenshot('github-callback');

# The worker exchanges the code, reads the account and invites it; the page,
# reloaded until it shows, says the access was granted to octo-ada.
$p = reload_until('Source code', qr/Access granted to octo-ada\./);
like($p->{cards}{'Source code'}{text}, qr/Access granted to octo-ada\./, 'the page shows the access granted to octo-ada');
my ($gh_exchange) = mock_since($t0, qr{^POST /login/oauth/access_token$});
my %gh_form = query_of('?' . ($gh_exchange->{body} // ''));
is($gh_form{code}, $gh_cb{code}, 'the worker exchanged the code the browser brought back');
ok((grep { $_->{method} eq 'PUT' && $_->{answer} == 201 } mock_since($t0, qr{^PUT /repos/acme/tools/collaborators/octo-ada$})),
	'octo-ada was invited to acme/tools');
is($mock->state->{invitations}{'acme/tools'}{'octo-ada'}{permission}, 'push', 'with push permission');
like($p->{cards}{'Source code'}{disconnect} // '', qr{^\Q$app\E/portal/actions$}, 'the card now offers a form to disconnect GitHub');
like($p->{cards}{'Community chat'}{connect} // '', qr{/oauth2/authorize\?}, 'and Discord still waits to be connected');
screenshot('github-granted');

# The same for Discord, whose member is added with the access token the
# exchange issued.
my %dc_link = query_of($p->{cards}{'Community chat'}{connect});
$t0 = last_t();
$r = browser(cmd => 'click', text => 'Connect Discord');
@chain = @{ chain_of($r) };
like($chain[0] // '', qr{^GET 302 MOCK/oauth2/authorize\?response_type=code&client_id=dc-client&}, 'Connect Discord: Discord\'s authorize page redirects');
like($chain[1] // '', qr{^GET 303 APP/oauth/callback\?code=[0-9a-f]+&state=}, 'to the application\'s callback');
is(join('|', @chain[ 2 .. $#chain ]), 'GET 200 APP/portal', 'and back to the portal');
my %dc_cb = query_of($r->{chain}[1]{url} // '');
is($dc_cb{state}, $dc_link{state}, 'with the state of the Discord link');
$p = reload_until('Community chat', qr/Access granted to ada\./);
like($p->{cards}{'Community chat'}{text}, qr/Access granted to ada\./, 'the page shows the Discord access granted to ada');
my ($dc_exchange) = mock_since($t0, qr{^POST /api/v10/oauth2/token$});
my %dc_form = query_of('?' . ($dc_exchange->{body} // ''));
is($dc_form{code}, $dc_cb{code}, 'the worker exchanged the Discord code the browser brought back');
my ($me) = mock_since($t0, qr{^GET /api/v10/users/\@me$});
my ($issued) = ($me->{headers}{authorization} // '') =~ /^Bearer (mockdc_\S+)$/;
ok($issued && $me->{answer} == 200, 'the account was read with the token the exchange issued');
my ($put) = mock_since($t0, qr{^PUT /api/v10/guilds/100000000000000111/members/80351110224678912$});
is(eval { decode_json($put->{body})->{access_token} }, $issued, 'the member PUT carried that access token');
is($put->{answer}, 201, 'and Discord added the member');
is_deeply($mock->state->{members}{'100000000000000111'}{'80351110224678912'}, [ '100000000000000201' ],
	'with the benefit\'s role');
like($p->{cards}{'Source code'}{text}, qr/Access granted to octo-ada\./, 'GitHub still shows its access');
screenshot('discord-granted');

# A callback URL used again (the browser's history, a reload of the callback)
# is refused: the state is single-use.
$r = browser(cmd => 'goto', url => $r->{chain}[1]{url});
is_deeply(chain_of($r), [ 'GET 400 ' . ($chain[1] =~ s/^GET 303 //r) ], 'the callback URL opened again answers 400');
like(browser(cmd => 'page')->{text}, qr/invalid or expired account link state/, 'with the one state error');

# Disconnect GitHub: the form posts to the application's action_url, which
# calls portal_unlink_account and sends the browser back to the portal; the
# page offers "Connect GitHub" again and the worker removes the collaborator
# (octo-ada accepted the invitation meanwhile).
$mock->control(accept_invitations => JSON::PP::true);
is($mock->state->{collaborators}{'acme/tools'}{'octo-ada'}, 'push', 'octo-ada accepted the invitation: a collaborator');
browser(cmd => 'goto', url => "$app/portal");
$t0 = last_t();
$r = browser(cmd => 'click', text => 'Disconnect GitHub');
is($r->{clicked}{tag}, 'button', 'the customer clicks the "Disconnect GitHub" button');
is_deeply(chain_of($r), [ 'POST 303 APP/portal/actions', 'GET 200 APP/portal' ],
	'the form posts to the action URL, which redirects back to the portal');
my ($unlink) = grep { $_->{path} eq '/portal/actions' } app_requests();
is_deeply([ @{ $unlink->{form} // {} }{qw(action platform)}, $unlink->{result} ],
	[ 'portal_unlink_account', 'github', JSON::PP::true ], 'portal_unlink_account removed the GitHub account');
is($unlink->{content_type}, 'application/x-www-form-urlencoded', 'the browser posted an ordinary form');
note("the disconnect POST came with Origin: " . ($unlink->{origin} // '(none)') . ", Sec-Fetch-Site: " . ($unlink->{sec_fetch_site} // '(none)'));
$p = page();
like($p->{cards}{'Source code'}{connect} // '', qr{^\Q$url\E/login/oauth/authorize\?}, 'the page offers "Connect GitHub" again');
like($p->{cards}{'Source code'}{text}, qr/Connect GitHub/, 'as a visible link');
unlike($p->{cards}{'Source code'}{text}, qr/Access granted to octo-ada/, 'and no longer says octo-ada has access');
like($p->{cards}{'Community chat'}{text}, qr/Disconnect Discord/, 'Discord stays connected');
my $collaborators;
for (1 .. 300)
{
	$collaborators = $mock->state->{collaborators}{'acme/tools'} // {};
	last unless exists $collaborators->{'octo-ada'};
	usleep(200_000);
}
ok(!exists $collaborators->{'octo-ada'}, 'the worker removed octo-ada from acme/tools');
ok((grep { $_->{answer} == 204 } mock_since($t0, qr{^DELETE /repos/acme/tools/collaborators/octo-ada$})),
	'with DELETE /repos/acme/tools/collaborators/octo-ada');
screenshot('github-disconnected');

# Refusing at GitHub: the callback gets error=access_denied, and the portal
# says access was not allowed, with "Connect GitHub" to try again; trying
# again and allowing gives the access back.
$mock->control(oauth_deny => JSON::PP::true);
$r = browser(cmd => 'click', text => 'Connect GitHub');
like(chain_of($r)->[1] // '', qr{^GET 303 APP/oauth/callback\?error=access_denied&state=}, 'refused at GitHub: the callback gets error=access_denied');
$p = page();
like($p->{cards}{'Source code'}{text}, qr/Access to your GitHub account was not allowed\./, 'the portal says access was not allowed');
like($p->{cards}{'Source code'}{connect} // '', qr{/login/oauth/authorize\?}, 'and offers "Connect GitHub" to try again');
screenshot('github-refused');
$mock->control(oauth_deny => JSON::PP::false);
$r = browser(cmd => 'click', text => 'Connect GitHub');
is(chain_of($r)->[-1], 'GET 200 APP/portal', 'connecting again');
$p = reload_until('Source code', qr/Access granted to octo-ada\./);
like($p->{cards}{'Source code'}{text}, qr/Access granted to octo-ada\./, 'gives octo-ada the access again');
unlike($p->{cards}{'Source code'}{text}, qr/not allowed/, 'and the refusal is no longer shown');
screenshot('github-reconnected');

# Disconnecting while the invitation is still pending (octo-ada has not
# accepted it this time) withdraws the invitation; disconnecting Discord
# kicks the member (the benefit's kick_member).
is($mock->state->{invitations}{'acme/tools'}{'octo-ada'}{permission}, 'push', 'octo-ada holds a pending invitation again');
$t0 = last_t();
$r = browser(cmd => 'click', text => 'Disconnect GitHub');
is(chain_of($r)->[-1], 'GET 200 APP/portal', 'Disconnect GitHub again, before the invitation was accepted');
my $invitations;
for (1 .. 300)
{
	$invitations = $mock->state->{invitations}{'acme/tools'} // {};
	last unless exists $invitations->{'octo-ada'};
	usleep(200_000);
}
ok(!exists $invitations->{'octo-ada'}, 'the pending invitation is withdrawn');
ok(!exists(($mock->state->{collaborators}{'acme/tools'} // {})->{'octo-ada'}), 'and octo-ada is no collaborator');
$r = browser(cmd => 'click', text => 'Disconnect Discord');
is_deeply(chain_of($r), [ 'POST 303 APP/portal/actions', 'GET 200 APP/portal' ], 'Disconnect Discord posts the same way');
my ($dc_unlink) = grep { $_->{path} eq '/portal/actions' && ($_->{form}{platform} // '') eq 'discord' } app_requests();
is($dc_unlink->{result}, JSON::PP::true, 'portal_unlink_account removed the Discord account');
my $members;
for (1 .. 300)
{
	$members = $mock->state->{members}{'100000000000000111'} // {};
	last unless exists $members->{'80351110224678912'};
	usleep(200_000);
}
ok(!exists $members->{'80351110224678912'}, 'the member is kicked from the server');
$p = page();
ok(defined $p->{cards}{'Source code'}{connect} && defined $p->{cards}{'Community chat'}{connect},
	'the page offers to connect both accounts again');
ok(!defined $p->{cards}{'Source code'}{disconnect} && !defined $p->{cards}{'Community chat'}{disconnect},
	'and nothing to disconnect');
screenshot('both-disconnected');

# The page's Content-Security-Policy let the whole journey through (the
# connect links are navigations, the disconnect form posts to the page's own
# origin); and it is in force: a form posting to another origin is blocked,
# and seen as a violation here.
my $csp = browser(cmd => 'csp')->{violations};
is_deeply($csp, [], 'no CSP violation during the journey') or diag(explain($csp));
like(page()->{html}, qr{<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'self'">},
	'the page carried its CSP');
browser(cmd => 'eval', expression => qq{(() => {
	const f = document.createElement("form"); f.method = "post"; f.action = "$url/elsewhere";
	const b = document.createElement("button"); b.textContent = "Post elsewhere"; f.append(b);
	document.querySelector("main").prepend(f); return true; })()});
$r = browser(cmd => 'click', text => 'Post elsewhere', timeout_ms => 5000, expect_failure => 1);
ok(!$r->{ok}, 'a form posting to another origin goes nowhere');
$csp = browser(cmd => 'csp')->{violations};
ok((grep { $_->{text} =~ /form-action/ } @$csp), 'the CSP blocked it (form-action)');
is(scalar(grep { $_->{path} eq '/elsewhere' } $mock->requests), 0, 'and the other origin received nothing');

$browser->quit;
kill 'TERM', $app_pid;
waitpid($app_pid, 0);
$app_pid = undef;
$node->stop;
$mock->stop;
done_testing();
