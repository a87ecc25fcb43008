# Customers link their own GitHub and Discord accounts (OAuth), end to end
# against the mock providers: the authorize URL, the provider's redirect with
# a code, the callback, the worker's exchange and account read, the access
# delivered; a Discord token renewed before a member is added and a refused
# renewal shown as an action; a relink that removes the old account's access
# first; an unlink; refusals, provider failures and a worker killed during
# the exchange.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use BenefitsNode;
use MockProviders;
use HTTP::Tiny;
use JSON::PP;
use Time::HiRes qw(usleep);

my $mock = MockProviders->new('oauth');
my $url = $mock->url;
my $node = BenefitsNode::new_node('oauth', conf => qq{
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
benefits.http_timeout = '2s'
benefits.retry_initial_delay = '100ms'
benefits.retry_max_delay = '500ms'
restart_after_crash = on
});
$node->start;
$mock->control(oauth_clients => { github => [ 'gh-client', 'gh-secret' ], discord => [ 'dc-client', 'dc-secret' ] });
$node->safe_psql('postgres', 'CREATE EXTENSION benefits');
sub sql { return $node->safe_psql('postgres', $_[0]); }
sub wait_q { return MockProviders::wait_for($node, 'postgres', $_[0], $_[1], $_[2]); }
sub last_t { return $mock->last_time; }
sub requests_since
{
	my ($since, $pattern) = @_;
	return grep { $_->{t} > $since && "$_->{method} $_->{path}" =~ $pattern } $mock->requests;
}
my $browser = HTTP::Tiny->new(max_redirect => 0, timeout => 10);
sub unescape { my ($v) = @_; $v =~ tr/+/ /; $v =~ s/%([0-9A-Fa-f]{2})/chr(hex($1))/ge; return $v; }
sub query_of { my ($q) = @_; return map { unescape($_) } map { split /=/, $_, 2 } split /&/, $q; }
my $redirect_uri = 'http://127.0.0.1:9/oauth/callback';

my $org = sql("INSERT INTO benefits.organizations (name) VALUES ('acme') RETURNING id");
my $gh = sql(qq{SELECT id FROM benefits.create_benefit('github_repository', '$org', 'Source',
    '{"repository_owner": "acme", "repository_name": "tools", "permission": "push"}')});
my $dc = sql(qq{SELECT id FROM benefits.create_benefit('discord', '$org', 'Chat',
    '{"guild_id": "100000000000000111", "role_id": "100000000000000201", "kick_member": true}')});
my $dc2 = sql(qq{SELECT id FROM benefits.create_benefit('discord', '$org', 'Beta chat',
    '{"guild_id": "100000000000000222", "role_id": "100000000000000301"}')});
my $product = sql("INSERT INTO benefits.products (organization_id, name) VALUES ('$org', 'Pro') RETURNING id");
sql("SELECT benefits.update_product_benefits('$product', ARRAY['$gh', '$dc']::uuid[])");
my $cust = sql("INSERT INTO benefits.customers (organization_id, external_id, email) VALUES ('$org', 'ada', 'ada\@example.com') RETURNING id");
sql("INSERT INTO benefits.subscriptions (customer_id, product_id, status) VALUES ('$cust', '$product', 'active')");
my $token = sql("SELECT benefits.create_customer_session('$org', 'ada')");

sub status { return sql("SELECT string_agg(platform || '=' || status, ' ' ORDER BY platform) FROM benefits.portal_link_status('$token')"); }
sub grant_of { return sql("SELECT state || ' ' || coalesce(properties->>'username', properties->>'account_id', '-') || ' ' || coalesce(error->>'action', error->>'type', '-') FROM benefits.grants WHERE customer_id = '$cust' AND benefit_id = '$_[0]' AND state <> 'revoked'"); }

# What a browser does: follow the authorize URL to the provider, which sends
# it back to the redirect URI with the code and the state.
sub authorize
{
	my ($platform) = @_;
	my $authorize = sql("SELECT benefits.portal_link_url('$token', '$platform', '$redirect_uri')");
	my $r = $browser->get($authorize);
	die "authorize: $r->{status} $r->{content}" unless $r->{status} == 302;
	my ($query) = $r->{headers}{location} =~ /\?(.*)\z/;
	my %q = query_of($query);
	return ($authorize, \%q);
}

sub link_via_portal
{
	my ($platform) = @_;
	my (undef, $q) = authorize($platform);
	my $code = defined $q->{code} ? "'$q->{code}'" : 'NULL';
	return sql("SELECT benefits.portal_link_callback('$token', '$q->{state}', $code)");
}

is(status(), 'discord=unlinked github=unlinked', 'before anything: both platforms unlinked');
like(grant_of($gh), qr/^created - link_github$/, 'the GitHub grant waits for a link');

# --- GitHub ------------------------------------------------------------------
my ($authorize, $q) = authorize('github');
like($authorize, qr{^\Q$url\E/login/oauth/authorize\?response_type=code&client_id=gh-client&redirect_uri=http%3A%2F%2F127\.0\.0\.1%3A9%2Foauth%2Fcallback&state=[A-Za-z0-9_-]{43}$},
	'the GitHub authorize URL carries the client id, the redirect URI and a state');
my $t0 = last_t();
# GitHub takes its time to answer the exchange, so the pending state is seen.
$mock->control(delay_paths => { '/login/oauth/access_token' => 1500 });
is(sql("SELECT benefits.portal_link_callback('$token', '$q->{state}', '$q->{code}')"), 'pending', 'the callback answers pending at once');
is(status(), 'discord=unlinked github=pending', 'the link is pending while the worker exchanges the code');
$mock->control(delay_paths => {});
is(wait_q("SELECT state FROM benefits.grants WHERE benefit_id = '$gh'", 'active'), 'active',
	'the worker exchanged the code, read the account and the invitation went out');
is(status(), 'discord=unlinked github=linked', 'GitHub linked');
my ($exchange) = requests_since($t0, qr{^POST /login/oauth/access_token$});
my %form = query_of($exchange->{body});
is_deeply([ @form{qw(grant_type code redirect_uri client_id client_secret)} ],
	[ 'authorization_code', $q->{code}, $redirect_uri, 'gh-client', 'gh-secret' ],
	'the exchange posts the code, the redirect URI and the client credentials, form-encoded');
is($exchange->{headers}{accept}, 'application/json', 'and asks for JSON');
my ($user) = requests_since($t0, qr{^GET /user$});
like($user->{headers}{authorization}, qr/^Bearer mockgh_[0-9a-f]{24}$/, 'the account is read with the token obtained');
ok((grep { $_->{path} eq '/repos/acme/tools/collaborators/octo-ada' && $_->{method} eq 'PUT' } requests_since($t0, qr/./)),
	'octo-ada, the account the customer signed in with, is invited');
is(sql("SELECT account_id || ' ' || username || ' ' || (access_token LIKE 'mockgh_%') FROM benefits.customer_accounts WHERE customer_id = '$cust' AND platform = 'github'"),
	'1001 octo-ada true', 'the account and its token are stored');
is(sql("SELECT count(*) FROM benefits.outbox WHERE kind = 'oauth' AND payload ? 'code'"), '0', 'the code is gone from the outbox');
is(sql("SELECT count(*) FROM benefits.oauth_exchanges"), '0', 'and the exchange\'s tokens moved to the account');
my ($state_reuse) = $node->psql('postgres', "SELECT benefits.portal_link_callback('$token', '$q->{state}', '$q->{code}')");
isnt($state_reuse, 0, 'the state cannot be used twice');

# --- Discord -----------------------------------------------------------------
($authorize, $q) = authorize('discord');
like($authorize, qr{/oauth2/authorize\?response_type=code&client_id=dc-client&redirect_uri=[^&]+&scope=identify%20guilds\.join&state=},
	'the Discord authorize URL asks for identify and guilds.join');
$t0 = last_t();
sql("SELECT benefits.portal_link_callback('$token', '$q->{state}', '$q->{code}')");
is(wait_q("SELECT state FROM benefits.grants WHERE benefit_id = '$dc'", 'active'), 'active', 'Discord: the member is added');
my ($dc_exchange) = requests_since($t0, qr{^POST /api/v10/oauth2/token$});
ok($dc_exchange, 'the Discord code is exchanged at {discord_api_url}/oauth2/token');
my ($me) = requests_since($t0, qr{^GET /api/v10/users/\@me$});
my ($issued) = $me->{headers}{authorization} =~ /^Bearer (\S+)$/;
my ($put) = requests_since($t0, qr{^PUT /api/v10/guilds/100000000000000111/members/80351110224678912$});
is(decode_json($put->{body})->{access_token}, $issued, 'the member is added with the token from the exchange');
is(sql("SELECT (refresh_token LIKE 'mockrt_%') || ' ' || (token_expires_at BETWEEN now() + interval '6 days' AND now() + interval '8 days') || ' ' || array_to_string(scopes, ',') FROM benefits.customer_accounts WHERE customer_id = '$cust' AND platform = 'discord'"),
	'true true identify,guilds.join', 'the refresh token, the expiry and the scopes are kept');

# An expired token is renewed before the next member is added.
sql("UPDATE benefits.customer_accounts SET token_expires_at = now() - interval '1 minute' WHERE customer_id = '$cust' AND platform = 'discord'");
$mock->control(expire_tokens => JSON::PP::true);
$t0 = last_t();
sql("SELECT benefits.grant_benefit('$cust', '$dc2')");
is(wait_q("SELECT state FROM benefits.grants WHERE benefit_id = '$dc2'", 'active'), 'active', 'the second server\'s member is added');
my @seq = map { "$_->{method} $_->{path}" } requests_since($t0, qr{oauth2/token|members/80351110224678912$});
is_deeply(\@seq, [ 'POST /api/v10/oauth2/token', 'PUT /api/v10/guilds/100000000000000222/members/80351110224678912' ],
	'the token is renewed first, then the member added');
my ($refresh) = requests_since($t0, qr{^POST /api/v10/oauth2/token$});
like($refresh->{body}, qr/grant_type=refresh_token&refresh_token=mockrt_/, 'with grant_type=refresh_token');
my ($put2) = requests_since($t0, qr{^PUT /api/v10/guilds/100000000000000222/});
my $new_token = sql("SELECT access_token FROM benefits.customer_accounts WHERE customer_id = '$cust' AND platform = 'discord'");
is(decode_json($put2->{body})->{access_token}, $new_token, 'the new token is stored and used');
isnt($new_token, $issued, 'and it is not the expired one');

# A refused renewal: the delivery fails and the portal asks to connect again.
sql("SELECT benefits.revoke_benefit('$cust', '$dc2')");
is(wait_q("SELECT count(*) FROM benefits.outbox WHERE kind = 'discord' AND state <> 'done'", '0'), '0', 'the removal went out');
sql("UPDATE benefits.customer_accounts SET token_expires_at = now() - interval '1 minute' WHERE customer_id = '$cust' AND platform = 'discord'");
$mock->control(expire_tokens => JSON::PP::true, refuse_refresh => JSON::PP::true);
sql("SELECT benefits.grant_benefit('$cust', '$dc2')");
is(wait_q("SELECT status FROM benefits.portal_link_status('$token') WHERE platform = 'discord'", 'failed'), 'failed',
	'a refused renewal marks the Discord link failed');
like(sql("SELECT error FROM benefits.portal_link_status('$token') WHERE platform = 'discord'"), qr/Connect your Discord account again/,
	'with the action to reconnect');
is(sql("SELECT state || ' ' || (error->>'type') FROM benefits.grants WHERE benefit_id = '$dc2' AND state <> 'revoked'"), 'created provider_error',
	'the grant records the failed delivery');
my $html = sql("SELECT benefits.customer_portal_html('$token', '/portal/actions', '$redirect_uri')");
like($html, qr{<a class="connect" href="\Q$url\E/oauth2/authorize\?[^"]*">Connect Discord</a>}, 'the page links to Discord to connect again');
unlike($html, qr{Connect GitHub}, 'but not to GitHub, which is linked');
like($html, qr{name="action" value="portal_unlink_account"><input type="hidden" name="platform" value="github"><button type="submit">Disconnect GitHub</button>},
	'and offers to disconnect GitHub');
$mock->control(refuse_refresh => JSON::PP::false);
link_via_portal('discord');
is(wait_q("SELECT state FROM benefits.grants WHERE benefit_id = '$dc2' AND state <> 'revoked'", 'active'), 'active',
	'connecting again delivers the grant that failed');
is(status(), 'discord=linked github=linked', 'both linked');

# --- Relink to another GitHub account: the old access goes first ------------
$mock->control(oauth_users => { github => { id => 1002, login => 'octo-bob' }, discord => { id => '80351110224678912', username => 'ada' } });
$mock->control(accept_invitations => JSON::PP::true);
$t0 = last_t();
link_via_portal('github');
is(wait_q("SELECT properties->>'username' FROM benefits.grants WHERE benefit_id = '$gh' AND state = 'active' AND NOT EXISTS (SELECT FROM benefits.outbox WHERE kind = 'github' AND state <> 'done')", 'octo-bob'),
	'octo-bob', 'the GitHub grant now holds octo-bob');
@seq = map { "$_->{method} $_->{path}" } requests_since($t0, qr{collaborators/});
is_deeply([ $seq[0], $seq[-1] ], [ 'DELETE /repos/acme/tools/collaborators/octo-ada', 'PUT /repos/acme/tools/collaborators/octo-bob' ],
	'octo-ada is removed before octo-bob is invited');
my $gh_state = $mock->state;
ok(!exists $gh_state->{collaborators}{'acme/tools'}{'octo-ada'}, 'octo-ada has no access left');
is(sql("SELECT account_id FROM benefits.customer_accounts WHERE customer_id = '$cust' AND platform = 'github'"), '1002', 'the account is octo-bob\'s');

# --- Unlink ------------------------------------------------------------------
$t0 = last_t();
is(sql("SELECT benefits.portal_unlink_account('$token', 'discord')"), 't', 'the customer disconnects Discord');
is(wait_q("SELECT count(*) FROM benefits.outbox WHERE kind = 'discord' AND state <> 'done'", '0'), '0', 'the removals went out');
ok((grep { $_->{method} eq 'DELETE' && $_->{path} eq '/api/v10/guilds/100000000000000111/members/80351110224678912' } requests_since($t0, qr/./)),
	'kick_member: the member is kicked from the first server');
ok((grep { $_->{method} eq 'DELETE' && $_->{path} =~ m{/guilds/100000000000000222/members/80351110224678912/roles/100000000000000301$} } requests_since($t0, qr/./)),
	'and loses the role on the second');
like(grant_of($dc), qr/^active - link_discord$/, 'the grant stays granted and waits for a link');
is(status(), 'discord=unlinked github=linked', 'Discord is unlinked');
is(sql("SELECT benefits.portal_unlink_account('$token', 'discord')"), 'f', 'unlinking again: nothing to remove');

# --- Refusals and failures ---------------------------------------------------
$mock->control(oauth_deny => JSON::PP::true);
is(link_via_portal('discord'), 'failed', 'the customer refuses at Discord: the callback answers failed');
like(sql("SELECT status || ': ' || error FROM benefits.portal_link_status('$token') WHERE platform = 'discord'"),
	qr/^failed: Access to your Discord account was not allowed/, 'and the portal says so');
$mock->control(oauth_deny => JSON::PP::false);

(undef, $q) = authorize('discord');
sql("SELECT benefits.portal_link_callback('$token', '$q->{state}', 'not-the-code')");
is(wait_q("SELECT status FROM benefits.portal_link_status('$token') WHERE platform = 'discord'", 'failed'), 'failed',
	'a code the provider refuses ends failed');
is(sql("SELECT state || ' ' || (payload ? 'code') FROM benefits.outbox WHERE kind = 'oauth' ORDER BY id DESC LIMIT 1"), 'dead false',
	'the job is dead and its code deleted');

$mock->control(oauth_fail => { '/api/v10/oauth2/token' => [ 500, 429 ], '/api/v10/users/@me' => [ 503 ] });
$t0 = last_t();
link_via_portal('discord');
is(wait_q("SELECT status FROM benefits.portal_link_status('$token') WHERE platform = 'discord'", 'linked'), 'linked',
	'5xx and 429 from the provider are retried until the account is linked');
is(scalar(requests_since($t0, qr{^POST /api/v10/oauth2/token$})), 3, 'the exchange was tried three times');
is(wait_q("SELECT state FROM benefits.grants WHERE benefit_id = '$dc'", 'active'), 'active', 'and the member is back');
is(sql("SELECT count(*) FROM benefits.customer_accounts WHERE platform = 'discord'"), '1', 'one Discord account');

# A renewal that brings a token expiring within the margin is not repeated:
# the member is added with it (one renewal per job).
my $dc3 = sql(qq{SELECT id FROM benefits.create_benefit('discord', '$org', 'Third chat',
    '{"guild_id": "100000000000000333", "role_id": "100000000000000401"}')});
$mock->control(discord_token_ttl => 60);
sql("UPDATE benefits.customer_accounts SET token_expires_at = now() - interval '1 minute' WHERE customer_id = '$cust' AND platform = 'discord'");
$t0 = last_t();
sql("SELECT benefits.grant_benefit('$cust', '$dc3')");
is(wait_q("SELECT state FROM benefits.grants WHERE benefit_id = '$dc3'", 'active'), 'active',
	'a renewed token that expires within a minute still adds the member');
is(scalar(requests_since($t0, qr{^POST /api/v10/oauth2/token$})), 1, 'after exactly one renewal');
$mock->control(discord_token_ttl => 604800);

# --- The worker killed during the exchange ------------------------------------
my $cust2 = sql("INSERT INTO benefits.customers (organization_id, external_id) VALUES ('$org', 'bob') RETURNING id");
my $token2 = sql("SELECT benefits.create_customer_session('$org', 'bob')");
sql("SELECT benefits.grant_benefit('$cust2', '$gh')");
$mock->control(delay_paths => { '/login/oauth/access_token' => 3000 },
	oauth_users => { github => { id => 1003, login => 'octo-carl' }, discord => { id => '80351110224678912', username => 'ada' } });
my $authorize2 = sql("SELECT benefits.portal_link_url('$token2', 'github', '$redirect_uri')");
my ($q2) = $browser->get($authorize2)->{headers}{location} =~ /\?(.*)\z/;
my %q2 = query_of($q2);
$t0 = last_t();
sql("SELECT benefits.portal_link_callback('$token2', '$q2{state}', '$q2{code}', 'github')");
# The mock holds the answer for 3 s (and logs the request once answered).
is(wait_q("SELECT state FROM benefits.outbox WHERE kind = 'oauth' AND payload->>'customer_id' = '$cust2'", 'running'),
	'running', 'the worker claimed the exchange');
usleep(500_000);
my $worker_pid = sql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'benefits worker'");
ok($worker_pid, 'and waits for the provider\'s answer');
kill 'KILL', $worker_pid;
$mock->control(delay_paths => {});
# The postmaster resets every backend after a crashed child: wait for a new worker.
for (1 .. 300)
{
	last if (eval { $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'benefits worker' AND pid <> $worker_pid") } // '') eq '1';
	usleep(100_000);
}
my $end = '';
for (1 .. 600)
{
	$end = sql("SELECT status FROM benefits.account_link_status('$cust2') WHERE platform = 'github' AND status IN ('linked', 'failed')");
	last if $end ne '';
	usleep(100_000);
}
like($end, qr/^(linked|failed)$/, "after SIGKILL mid-exchange the link ends $end");
is(sql("SELECT count(*) FROM benefits.customer_accounts WHERE account_id = '1003'"), $end eq 'linked' ? '1' : '0',
	'octo-carl is linked at most once');
is(sql("SELECT count(*) FROM benefits.customer_accounts WHERE account_id = '1003' AND customer_id <> '$cust2'"), '0',
	'and never to another customer');
is(sql("SELECT account_id FROM benefits.customer_accounts WHERE customer_id = '$cust' AND platform = 'github'"), '1002',
	'the first customer keeps their own account');
if ($end eq 'failed')
{
	like(sql("SELECT error FROM benefits.portal_link_status('$token2') WHERE platform = 'github'"), qr/Connect your account again/,
		'with the action to reconnect');
}
else
{
	pass('linked: nothing to reconnect');
}

$node->stop;
$mock->stop;
done_testing();
