# GitHub and Discord end to end: subscriptions drive grants (the engine
# writes the outbox), the worker calls the mock providers, grants become
# active with a benefit_grant.updated event, a product change calls only the
# diff, revocation removes access (a pending invitation is deleted instead of
# the collaborator), and a permanent failure is recorded on the grant.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use BenefitsNode;
use MockProviders;
use List::Util;
use Time::HiRes;

my $mock = MockProviders->new('providers');
my $url = $mock->url;
my $node = BenefitsNode::new_node('providers', conf => qq{
benefits.github_api_url = '$url'
benefits.github_token = 'ghp_test'
benefits.discord_api_url = '$url/api/v10'
benefits.discord_bot_token = 'bot_test'
benefits.http_timeout = '2s'
benefits.retry_initial_delay = '100ms'
benefits.retry_max_delay = '1s'
});
# The worker must not go through a proxy named in the server's environment
# (the address guard would only see the proxy): this one records and fails.
my $proxy = MockProviders->new('proxy');
{
	local $ENV{http_proxy} = $proxy->url;
	local $ENV{HTTP_PROXY} = $proxy->url;
	local $ENV{ALL_PROXY} = $proxy->url;
	local $ENV{all_proxy} = $proxy->url;
	delete local $ENV{no_proxy};
	delete local $ENV{NO_PROXY};
	$node->start;
}
$node->safe_psql('postgres', 'CREATE EXTENSION benefits');
sub sql { return $node->safe_psql('postgres', $_[0]); }
sub wait_q { return MockProviders::wait_for($node, 'postgres', $_[0], $_[1], $_[2]); }
sub calls
{
	my ($since) = @_;
	return map { "$_->{method} $_->{path}" }
	  grep { $_->{method} ne 'POST' && $_->{t} > $since } $mock->requests;
}
sub last_t { return $mock->last_time; }

my $org = sql("INSERT INTO benefits.organizations (name) VALUES ('acme') RETURNING id");
my ($ep, $secret) = split /\|/, sql(qq{
SELECT id, secret FROM benefits.create_webhook_endpoint('$org', '$url/hooks/acme',
    ARRAY['benefit_grant.created', 'benefit_grant.updated', 'benefit_grant.revoked'])});
my (undef, $secret_r) = split /\|/, sql(qq{
SELECT id, secret FROM benefits.create_webhook_endpoint('$org', '$url/hooks/revoked-only', ARRAY['benefit_grant.revoked'])});
$mock->control(secrets => { '/hooks/acme' => $secret, '/hooks/revoked-only' => $secret_r });
my $gh_a = sql(qq{SELECT id FROM benefits.create_benefit('github_repository', '$org', 'Source',
    '{"repositories": [{"owner": "acme", "name": "engine", "permission": "pull"},
                       {"owner": "acme", "name": "docs", "permission": "triage"}]}')});
my $gh_b = sql(qq{SELECT id FROM benefits.create_benefit('github_repository', '$org', 'Site',
    '{"repository_owner": "acme", "repository_name": "site", "permission": "push"}')});
my $dc = sql(qq{SELECT id FROM benefits.create_benefit('discord', '$org', 'Chat',
    '{"guild_id": "100000000000000111", "roles": [{"role_id": "100000000000000201", "name": "Sponsor"}, {"role_id": "100000000000000202", "name": "Beta"}]}')});
my $p1 = sql("INSERT INTO benefits.products (organization_id, name) VALUES ('$org', 'Pro') RETURNING id");
my $p2 = sql("INSERT INTO benefits.products (organization_id, name) VALUES ('$org', 'Team') RETURNING id");
sql("SELECT benefits.update_product_benefits('$p1', ARRAY['$gh_a', '$dc']::uuid[])");
sql("SELECT benefits.update_product_benefits('$p2', ARRAY['$gh_a', '$gh_b']::uuid[])");
my $cust = sql("INSERT INTO benefits.customers (organization_id, external_id, email) VALUES ('$org', 'u1', 'u1\@example.com') RETURNING id");
sql("SELECT benefits.link_account('$cust', 'github', '5001', 'octocat')");
sql("SELECT benefits.link_account('$cust', 'discord', '7001', 'eve', 'oauth-token-7001')");

# Grant: subscribe to Pro.
my $sub = sql("INSERT INTO benefits.subscriptions (customer_id, product_id, status) VALUES ('$cust', '$p1', 'active') RETURNING id");
is(wait_q("SELECT string_agg(state, ',' ORDER BY state) FROM benefits.grants WHERE subscription_id = '$sub'", 'active,active'),
	'active,active', 'the GitHub and Discord grants become active once the providers confirm');
my $state = $mock->state;
is_deeply([ sort keys %{ $state->{invitations}{'acme/engine'} }, sort keys %{ $state->{invitations}{'acme/docs'} } ],
	[ 'octocat', 'octocat' ], 'GitHub: octocat is invited to acme/engine and acme/docs');
is($state->{invitations}{'acme/docs'}{octocat}{permission}, 'triage', 'with the benefit\'s permission');
is_deeply($state->{members}{100000000000000111}{7001}, [ "100000000000000201", "100000000000000202" ], 'Discord: member 7001 added with both roles');
my ($put_member) = grep { $_->{method} eq 'PUT' && $_->{path} eq '/api/v10/guilds/100000000000000111/members/7001' } $mock->requests;
is($put_member->{headers}{authorization}, 'Bot bot_test', 'Discord calls carry the bot token');
like($put_member->{body}, qr/"access_token":"oauth-token-7001"/, "the customer's OAuth token is read at send time");
my ($put_collab) = grep { $_->{method} eq 'PUT' && $_->{path} =~ m{/collaborators/} } $mock->requests;
is($put_collab->{headers}{authorization}, 'Bearer ghp_test', 'GitHub calls carry the token');
is(wait_q("SELECT count(*) FROM benefits.outbox WHERE kind = 'webhook' AND event_type = 'benefit_grant.updated' AND state = 'done'", '2'),
	'2', 'two benefit_grant.updated webhooks delivered (one per activated grant)');
my @updated = grep { $_->{method} eq 'POST' && $_->{body} =~ /"benefit_grant\.updated"/ } $mock->requests;
is(scalar(grep { $_->{signature_valid} } @updated), 2, 'both signed with the endpoint secret');
like($updated[0]{body}, qr/"is_granted": true/, 'the event shows the grant as granted');

# Product change Pro -> Team: gh_a is shared (no calls), discord goes, gh_b comes.
my $t = last_t();
sql("UPDATE benefits.subscriptions SET product_id = '$p2' WHERE id = '$sub'");
is(wait_q("SELECT state FROM benefits.grants WHERE subscription_id = '$sub' AND benefit_id = '$gh_b'", 'active'),
	'active', 'the added benefit is granted');
wait_q("SELECT count(*) FROM benefits.outbox WHERE kind <> 'webhook' AND state IN ('pending', 'running')", '0');
my @diff = sort(calls($t));
is_deeply(\@diff, [
	'DELETE /api/v10/guilds/100000000000000111/members/7001/roles/100000000000000201',
	'DELETE /api/v10/guilds/100000000000000111/members/7001/roles/100000000000000202',
	'PUT /repos/acme/site/collaborators/octocat' ],
	'a product change calls only the diff: Discord roles removed, the new repository added, nothing for the shared one');

# Editing the benefit changes the permission of live grants at GitHub.
$t = last_t();
sql(qq{SELECT benefits.update_benefit('$gh_b', NULL,
    '{"repository_owner": "acme", "repository_name": "site", "permission": "maintain"}')});
wait_q("SELECT count(*) FROM benefits.outbox WHERE kind <> 'webhook' AND state IN ('pending', 'running')", '0');
is_deeply([ calls($t) ], [ 'PUT /repos/acme/site/collaborators/octocat' ], 'a permission change is one PUT');
is($mock->state->{invitations}{'acme/site'}{octocat}{permission}, 'maintain', 'GitHub now has the new permission');

# Revoke after the customer accepted the invitations: collaborators removed.
$mock->control(accept_invitations => JSON::PP::true);
$t = last_t();
sql("UPDATE benefits.subscriptions SET status = 'revoked' WHERE id = '$sub'");
is(wait_q("SELECT count(*) FROM benefits.outbox WHERE kind <> 'webhook' AND state IN ('pending', 'running')", '0'), '0', 'revocation jobs done');
$state = $mock->state;
is(scalar(map { keys %$_ } values %{ $state->{collaborators} }), 0, 'no collaborator is left');
my @rev = sort(calls($t));
is(scalar(grep { m{^GET /repos/acme/\w+/invitations} } @rev), 3, 'each revoke looked for a pending invitation first');
is(scalar(grep { m{^DELETE /repos/acme/\w+/collaborators/octocat} } @rev), 3, 'then removed the collaborator');
is(sql("SELECT string_agg(state, ',') FROM benefits.grants WHERE subscription_id = '$sub'"), 'revoked,revoked,revoked',
	'all three grants of the subscription are revoked');

# Event filters: the endpoint subscribed only to benefit_grant.revoked got
# exactly the revocations: Discord's at the product change, then the two GitHub grants.
wait_q("SELECT count(*) FROM benefits.outbox WHERE kind = 'webhook' AND state IN ('pending', 'running')", '0');
my @only = grep { $_->{method} eq 'POST' && $_->{path} eq '/hooks/revoked-only' } $mock->requests;
is(scalar(@only), 3, 'the revoked-only endpoint received 3 events');
is(scalar(grep { $_->{body} =~ /"type": "benefit_grant\.revoked"/ && $_->{signature_valid} } @only), 3,
	'all benefit_grant.revoked, signed with its own secret');

# A pending invitation is deleted instead of removing a collaborator.
my $cust2 = sql("INSERT INTO benefits.customers (organization_id, external_id) VALUES ('$org', 'u2') RETURNING id");
sql("SELECT benefits.link_account('$cust2', 'github', '5002', 'hubot')");
sql("SELECT benefits.grant_benefit('$cust2', '$gh_b')");
is(wait_q("SELECT state FROM benefits.grants WHERE customer_id = '$cust2'", 'active'), 'active', 'manual grant delivered');
ok(exists $mock->state->{invitations}{'acme/site'}{hubot}, 'hubot has a pending invitation');
$t = last_t();
sql("SELECT benefits.revoke_benefit('$cust2', '$gh_b')");
wait_q("SELECT count(*) FROM benefits.outbox WHERE kind <> 'webhook' AND state IN ('pending', 'running')", '0');
my @inv = calls($t);
is(scalar(@inv), 2, 'two requests: list invitations, delete it');
like($inv[1], qr{^DELETE /repos/acme/site/invitations/\d+$}, 'the invitation is deleted');
ok(!exists $mock->state->{invitations}{'acme/site'}{hubot}, 'the invitation is gone');

# A permanent failure (403) stays on the grant and in dead_jobs.
my $gh_c = sql(qq{SELECT id FROM benefits.create_benefit('github_repository', '$org', 'Secret',
    '{"repository_owner": "acme", "repository_name": "secret", "permission": "pull"}')});
$mock->control(status => { '/repos/acme/secret/collaborators/hubot' => 403 });
sql("SELECT benefits.grant_benefit('$cust2', '$gh_c')");
is(wait_q("SELECT count(*) FROM benefits.dead_jobs WHERE payload->>'repo' = 'secret'", '1'), '1', 'the 403 job is dead at once');
is(sql("SELECT state FROM benefits.grants WHERE customer_id = '$cust2' AND benefit_id = '$gh_c'"), 'created',
	'the grant stays created');
like(sql("SELECT error->>'message' FROM benefits.grants WHERE customer_id = '$cust2' AND benefit_id = '$gh_c'"),
	qr/HTTP 403/, 'the error is recorded on the grant');
is(sql("SELECT attempts FROM benefits.dead_jobs WHERE payload->>'repo' = 'secret'"), '1', 'no retry of a permanent failure');

# No linked account: the grant waits with an action-required error; linking
# the account later delivers it.  kick_member: revoking removes the member.
my $dk = sql(qq{SELECT id FROM benefits.create_benefit('discord', '$org', 'Members only',
    '{"guild_id": "100000000000000999", "role_id": "100000000000000301", "kick_member": true}')});
my $cust3 = sql("INSERT INTO benefits.customers (organization_id, external_id) VALUES ('$org', 'u3') RETURNING id");
sql("SELECT benefits.grant_benefit('$cust3', '$dk')");
is(sql("SELECT state || ':' || (error IS NOT NULL) FROM benefits.grants WHERE customer_id = '$cust3'"), 'created:true',
	'without a linked Discord account the grant waits with an error');
is(sql("SELECT count(*) FROM benefits.outbox o JOIN benefits.grants g ON g.id = o.grant_id
         WHERE g.customer_id = '$cust3' AND o.kind = 'discord'"), '0', 'and no provider job');
sql("SELECT benefits.link_account('$cust3', 'discord', '7003', 'zed', 'oauth-token-7003')");
is(wait_q("SELECT state || ':' || (error IS NULL) FROM benefits.grants WHERE customer_id = '$cust3'", 'active:true'),
	'active:true', 'linking the account delivers it: active, error cleared');
is_deeply($mock->state->{members}{100000000000000999}{7003}, ['100000000000000301'], 'member 7003 joined with the role');
sql("SELECT benefits.revoke_benefit('$cust3', '$dk')");
wait_q("SELECT count(*) FROM benefits.outbox WHERE kind <> 'webhook' AND state IN ('pending', 'running')", '0');
ok(!exists $mock->state->{members}{100000000000000999}{7003}, 'kick_member: revoking removed the member');
is(scalar(grep { $_->{method} eq 'DELETE' && $_->{path} eq '/api/v10/guilds/100000000000000999/members/7003' } $mock->requests),
	1, 'with one DELETE of the member');

# A result that cannot be recorded (here a trigger of the application's
# raises when the grant is activated) does not hold back the others: that job
# alone is set dead, with an error pointing at the server log.
sql(q{CREATE FUNCTION public.refuse() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN IF NEW.state = 'active' AND NEW.properties->>'username' = 'poison' THEN
    RAISE EXCEPTION 'refused by the application'; END IF; RETURN NEW; END$$});
sql("CREATE TRIGGER refuse BEFORE UPDATE ON benefits.grants FOR EACH ROW EXECUTE FUNCTION public.refuse()");
my @c;
for my $u ('poison', 'fine1', 'fine2')
{
	my $c = sql("INSERT INTO benefits.customers (organization_id, external_id) VALUES ('$org', '$u') RETURNING id");
	sql("SELECT benefits.link_account('$c', 'github', '6$u', '$u')");
	push @c, $c;
}
sql("BEGIN; SELECT benefits.grant_benefit(id, '$gh_b') FROM benefits.customers WHERE id IN ('$c[0]', '$c[1]', '$c[2]'); COMMIT;");
is(wait_q("SELECT count(*) FROM benefits.grants WHERE benefit_id = '$gh_b' AND customer_id IN ('$c[1]', '$c[2]') AND state = 'active'", '2'),
	'2', 'the other grants of the batch are recorded and active');
is(wait_q("SELECT count(*) FROM benefits.dead_jobs WHERE payload->>'username' = 'poison'", '1'), '1',
	'the job whose result could not be recorded is dead');
like(sql("SELECT last_error FROM benefits.dead_jobs WHERE payload->>'username' = 'poison'"),
	qr/recording the result of this job failed/, 'with an error saying so');
like(slurp_file($node->logfile), qr/refused by the application/, 'and the cause is in the server log');

# Provider jobs of different grants that touch the same collaborator run in
# id order: grant A's revoke (list invitations, then DELETE) is not overtaken
# by grant B's later add, so the customer keeps access through grant B.
sub queue_gh
{
	my ($action, $repo, $user) = @_;
	return qq{INSERT INTO benefits.outbox (organization_id, kind, grant_id, action, payload)
	  VALUES ('$org', 'github', gen_random_uuid(), '$action',
	          '{"owner": "acme", "repo": "$repo", "username": "$user", "permission": "pull"}');};
}
sub idle { wait_q("SELECT count(*) FROM benefits.outbox WHERE kind <> 'webhook' AND state IN ('pending', 'running')", '0'); }
sql(queue_gh('add_collaborator', 'race', 'racer'));
idle();
$mock->control(accept_invitations => JSON::PP::true);
ok(exists $mock->state->{collaborators}{'acme/race'}{racer}, 'racer is a collaborator of acme/race');
# (the listing is slow, so an add sent alongside it would land first)
$mock->control(delay_paths => { '/repos/acme/race/invitations' => 300 });
$t = last_t();
sql('BEGIN;' . queue_gh('remove_collaborator', 'race', 'racer') . queue_gh('add_collaborator', 'race', 'racer') . 'COMMIT;');
idle();
$mock->control(delay_paths => {});
my @race = calls($t);
is_deeply(\@race, [ 'GET /repos/acme/race/invitations?per_page=100&page=1',
	'DELETE /repos/acme/race/collaborators/racer', 'PUT /repos/acme/race/collaborators/racer' ],
	"grant A's removal reached GitHub before grant B's add");
$state = $mock->state;
ok(exists $state->{collaborators}{'acme/race'}{racer} || exists $state->{invitations}{'acme/race'}{racer},
	'the customer ends with access (grant B)');
is(sql(q{SELECT count(DISTINCT chain_key) || ':' || min(chain_key) FROM benefits.outbox
         WHERE payload->>'repo' = 'race' OR payload->>'repo' = 'RACE'}), '1:github:acme/race/racer',
	'both jobs share one chain key');

# A page of invitations that cannot be read (a \u0000 escape jsonb refuses,
# invalid UTF-8, not an array) is listed again later: nothing is removed
# while the invitations are unknown, and the batch's recording is not aborted.
$mock->control(raw => { '/repos/acme/race/invitations' => '[{"id": 1, "invitee": {"login": "x\u0000"}}]' });
$t = last_t();
sql(queue_gh('remove_collaborator', 'race', 'racer'));
my $unreadable = q{SELECT count(*) FROM benefits.outbox WHERE action = 'remove_collaborator' AND payload->>'repo' = 'race'
  AND state = 'pending' AND attempts >= %d AND last_error LIKE '%%page 1 of pending invitations (HTTP 200) is not a readable JSON array'};
is(wait_q(sprintf($unreadable, 1), '1', 10), '1', 'a page with a \u0000 escape: the job waits to list again, with the reason');
$mock->control(raw => { '/repos/acme/race/invitations' => "[\x{ff}\x{fe}]" });
my $seen = sql("SELECT attempts FROM benefits.outbox WHERE action = 'remove_collaborator' AND payload->>'repo' = 'race' AND state <> 'done'");
is(wait_q(sprintf($unreadable, $seen + 2), '1', 10), '1', 'invalid UTF-8: the same');
is(scalar(grep { $_->{method} eq 'DELETE' && $_->{t} > $t } $mock->requests), 0, 'nothing deleted meanwhile');
is(sql(q{SELECT count(*) FROM benefits.dead_jobs WHERE payload->>'repo' = 'race'}), '0', 'and the job is not dead');
$mock->control(raw => {});
idle();
$state = $mock->state;
ok(!exists $state->{collaborators}{'acme/race'}{racer} && !exists $state->{invitations}{'acme/race'}{racer},
	'once the page reads, the pending invitation is deleted');

# A provider's rate-limited answer holds every provider job to that host
# until the time it gives, not only the job that got it; the held jobs keep
# their attempts.  (Webhook deliveries are not held: receivers are tenants'.)
$mock->control(retry_after => 2, status_once => { '/repos/acme/rl/collaborators/u1' => 429 });
sql(queue_gh('add_collaborator', 'rl', 'u1'));
is(wait_q("SELECT last_status FROM benefits.outbox WHERE payload->>'repo' = 'rl'", '429', 10), '429', 'a 429 with Retry-After: 2');
my ($limited) = grep { $_->{answer} eq '429' && $_->{path} eq '/repos/acme/rl/collaborators/u1' } $mock->requests;
sql('BEGIN;' . queue_gh('add_collaborator', 'rl', 'u2') . queue_gh('add_collaborator', 'rl', 'u3') . 'COMMIT;');
Time::HiRes::sleep(List::Util::max(0, $limited->{t} + 1.5 - Time::HiRes::time()));
is(scalar(grep { $_->{method} ne 'POST' && $_->{t} > $limited->{t} } $mock->requests), 0,
	'no provider request reached the host in the next 1.5 s');
idle();
my @resumed = grep { $_->{method} ne 'POST' && $_->{t} > $limited->{t} } $mock->requests;
is(join(',', sort map { $_->{path} =~ m{/(u\d)$} ? $1 : () } @resumed), 'u1,u2,u3', 'then all three were sent');
cmp_ok($resumed[0]{t} - $limited->{t}, '>=', 1.9, 'once the pause was over');
is(sql("SELECT string_agg(attempts::text, ',' ORDER BY id) FROM benefits.outbox WHERE payload->>'repo' = 'rl'"), '2,1,1',
	'the held jobs did not use up an attempt');

is(scalar($proxy->requests), 0, 'no request went to the proxy of the environment');
ok(scalar($mock->requests) > 50, 'all went direct');

$node->stop;
$mock->stop;
$proxy->stop;
done_testing();
