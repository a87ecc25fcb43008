# Discord welcome messages against the mock Discord: once the member and its
# roles are added, the worker posts the benefit's welcome message to its
# channel, with {username} and {roles} filled in, mentions limited to the
# member, and the job's id as an enforced nonce.  Once per grant (a grant
# revoked and granted again is not welcomed twice), for one-at-a-time and
# set-based grants alike; a 429 is retried and delivered once; a resend
# after a lost answer carries the same nonce, which Discord answers with the
# message it already created; a refusal is dead, and the access stays.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use JSON::PP;
use BenefitsNode;
use MockProviders;

my $mock = MockProviders->new('welcome');
my $url = $mock->url;
my $node = BenefitsNode::new_node('welcome', conf => qq{
benefits.discord_api_url = '$url/api/v10'
benefits.discord_bot_token = 'bot_test'
benefits.http_timeout = '2s'
benefits.retry_initial_delay = '100ms'
benefits.retry_max_delay = '1s'
benefits.max_attempts = 3
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION benefits');
sub sql { return $node->safe_psql('postgres', $_[0]); }
sub wait_q { return MockProviders::wait_for($node, 'postgres', $_[0], $_[1], $_[2]); }
my $json = JSON::PP->new->canonical;
my $channel = '100000000000000777';
my $guild = '100000000000000111';
sub posts { return grep { $_->{method} eq 'POST' && $_->{path} eq "/api/v10/channels/$channel/messages" } $mock->requests; }
sub messages_for { my ($user) = @_; return grep { $_->{content} =~ /<\@$user>/ } @{ $mock->state->{messages} }; }
sub idle { return wait_q("SELECT count(*) FROM benefits.outbox WHERE kind = 'discord' AND state IN ('pending', 'running')", '0'); }

my $org = sql("INSERT INTO benefits.organizations (name) VALUES ('acme') RETURNING id");
my $dc = sql(qq{SELECT id FROM benefits.create_benefit('discord', '$org', 'Chat',
    '{"guild_id": "$guild", "roles": [{"role_id": "100000000000000201", "name": "Sponsor <b>"}, {"role_id": "100000000000000202"}],
      "welcome_channel_id": "$channel", "welcome_message": "Welcome {username}! You now have {roles}. \@everyone"}')});
my $pro = sql("INSERT INTO benefits.products (organization_id, name) VALUES ('$org', 'Pro') RETURNING id");
sql("SELECT benefits.update_product_benefits('$pro', ARRAY['$dc']::uuid[])");
sub customer
{
	my ($name, $discord_id) = @_;
	my $id = sql("INSERT INTO benefits.customers (organization_id, external_id, email) VALUES ('$org', '$name', '$name\@example.com') RETURNING id");
	sql("SELECT benefits.link_account('$id', 'discord', '$discord_id', '$name', 'oauth-$discord_id')");
	return $id;
}

# One subscription: member, roles, then the welcome.
my $ann = customer('ann', '7001');
my $sub = sql("INSERT INTO benefits.subscriptions (customer_id, product_id, status) VALUES ('$ann', '$pro', 'active') RETURNING id");
is(wait_q("SELECT state FROM benefits.grants WHERE subscription_id = '$sub'", 'active'), 'active', 'the Discord grant becomes active');
idle();
my @log = $mock->requests;
my @order = map { "$_->{method} $_->{path}" } grep { $_->{path} =~ m{/(guilds|channels)/} } @log;
is_deeply(\@order, [
	"PUT /api/v10/guilds/$guild/members/7001",
	"PUT /api/v10/guilds/$guild/members/7001/roles/100000000000000201",
	"PUT /api/v10/guilds/$guild/members/7001/roles/100000000000000202",
	"POST /api/v10/channels/$channel/messages" ], 'the welcome is posted after the member and both roles were added');
my @p = posts();
is(scalar(@p), 1, 'one welcome message posted');
my $body = $json->decode($p[0]{body});
is($body->{content}, 'Welcome <@7001>! You now have Sponsor <b>, <@&100000000000000202>. @everyone',
	'{username} is a mention of the member, {roles} the role names (a mention for an unnamed role)');
is_deeply($body->{allowed_mentions}, { parse => [], users => ['7001'] }, 'mentions are limited to that member (no @everyone, no roles)');
my $job = sql("SELECT id FROM benefits.outbox WHERE action = 'post_welcome' AND grant_id = (SELECT id FROM benefits.grants WHERE subscription_id = '$sub')");
is($body->{nonce}, $job, 'the nonce is the job id');
ok($body->{enforce_nonce}, 'and Discord is asked to enforce it');
is($p[0]{headers}{authorization}, 'Bot bot_test', 'sent with the bot token');
is(sql("SELECT properties->>'welcomed' FROM benefits.grants WHERE subscription_id = '$sub'"), 'true', 'the grant records that it was welcomed');

# Revoked and granted again: the member and roles come back, no second welcome.
sql("UPDATE benefits.subscriptions SET status = 'revoked' WHERE id = '$sub'");
idle();
sql("UPDATE benefits.subscriptions SET status = 'active' WHERE id = '$sub'");
is(wait_q("SELECT state FROM benefits.grants WHERE subscription_id = '$sub'", 'active'), 'active', 'granted again');
idle();
is(scalar(grep { $_->{method} eq 'PUT' && $_->{path} eq "/api/v10/guilds/$guild/members/7001" } $mock->requests), 2,
	'the member was added again');
is(scalar(posts()), 1, 'but not welcomed again: once per grant');

# Set-based: three subscriptions in one statement, each welcomed once.
my @batch = map { customer("b$_", "800$_") } 1 .. 3;
sql("INSERT INTO benefits.subscriptions (customer_id, product_id, status) VALUES "
	  . join(', ', map { "('$_', '$pro', 'active')" } @batch));
is(wait_q("SELECT count(*) FROM benefits.grants g JOIN benefits.customers c ON c.id = g.customer_id"
		  . " WHERE c.external_id LIKE 'b%' AND g.state = 'active' AND g.properties->>'welcomed' = 'true'", '3'),
	'3', 'the batch grants are active and marked welcomed');
idle();
is(join(',', map { scalar(messages_for("800$_")) } 1 .. 3), '1,1,1', 'each member of the batch got one welcome');
for my $i (1 .. 3)
{
	my ($post) = grep { $json->decode($_->{body})->{content} =~ /<\@800$i>/ } posts();
	my ($member) = grep { $_->{path} eq "/api/v10/guilds/$guild/members/800$i/roles/100000000000000202" } $mock->requests;
	ok($post && $member && $post->{t} >= $member->{t}, "batch member 800$i: welcomed after its last role");
	is_deeply($json->decode($post->{body})->{allowed_mentions}{users}, ["800$i"], "batch member 800$i: mentions limited to them");
}

# A 429 on the channel: retried, delivered once.
$mock->control(status_once => { "/api/v10/channels/$channel/messages" => 429 }, retry_after => 0.2);
my $cy = customer('cy', '7003');
sql("SELECT benefits.grant_benefit('$cy', '$dc')");
is(wait_q("SELECT state || ':' || attempts FROM benefits.outbox WHERE action = 'post_welcome'"
		  . " AND grant_id = (SELECT id FROM benefits.grants WHERE customer_id = '$cy')", 'done:2'),
	'done:2', 'after a 429 the welcome is retried and done');
is(scalar(messages_for('7003')), 1, 'and posted once');
is(scalar(grep { $json->decode($_->{body})->{content} =~ /<\@7003>/ } posts()), 2, 'in two requests');

# A resend (the answer was lost: the job is sent again) carries the same
# nonce: Discord answers with the message it created, none is added.
my $cy_job = sql("SELECT id FROM benefits.outbox WHERE action = 'post_welcome' AND grant_id = (SELECT id FROM benefits.grants WHERE customer_id = '$cy')");
my $before = scalar(@{ $mock->state->{messages} });
sql("UPDATE benefits.outbox SET state = 'pending', run_after = now(), finished_at = NULL WHERE id = $cy_job");
sql("SELECT benefits.wake_worker()");
is(wait_q("SELECT state FROM benefits.outbox WHERE id = $cy_job", 'done'), 'done', 'the resend is done');
my @cy_posts = grep { $json->decode($_->{body})->{content} =~ /<\@7003>/ } posts();
is(scalar(@cy_posts), 3, 'a third request was made');
is($json->decode($cy_posts[-1]{body})->{nonce}, $json->decode($cy_posts[0]{body})->{nonce}, 'with the same nonce');
is($cy_posts[-1]{effect}, "message-again:$channel", 'which Discord answers with the message it had');
is(scalar(@{ $mock->state->{messages} }), $before, 'no message added');

# A refusal (the channel is gone: 404): dead and recorded, the access stays.
$mock->control(status_once => { "/api/v10/channels/$channel/messages" => 404 });
my $dee = customer('dee', '7004');
sql("SELECT benefits.grant_benefit('$dee', '$dc')");
is(wait_q("SELECT count(*) FROM benefits.dead_jobs WHERE action = 'post_welcome'", '1'), '1', 'a refused welcome is a dead job');
is(sql("SELECT state FROM benefits.grants WHERE customer_id = '$dee'"), 'active', 'the access itself stays granted');
is(sql("SELECT error->>'action' FROM benefits.grants WHERE customer_id = '$dee'"), 'post_welcome', 'the failure is recorded on the grant');

# A benefit without a welcome posts nothing.
my $quiet = sql(qq{SELECT id FROM benefits.create_benefit('discord', '$org', 'Quiet', '{"guild_id": "100000000000000112", "role_id": "100000000000000301"}')});
my $n_posts = scalar(posts());
sql("SELECT benefits.grant_benefit('$ann', '$quiet')");
is(wait_q("SELECT state FROM benefits.grants WHERE customer_id = '$ann' AND benefit_id = '$quiet'", 'active'), 'active', 'a benefit without a welcome is granted');
idle();
is(scalar(posts()), $n_posts, 'and posts no message');
is(sql("SELECT count(*) FROM benefits.outbox WHERE action = 'post_welcome'"), '6', 'six welcome jobs in all: ann, three in the batch, cy, dee');

$node->stop;
$mock->stop;
done_testing();
