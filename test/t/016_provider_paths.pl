# Provider requests are built only from values of their documented shapes.
# Jobs whose payload was changed after validation (here written straight
# into the outbox by a superuser) so that a name or id would become "..", an
# empty segment, a slash or a percent-encoded dot are dead with an error that
# says so, and the mock GitHub/Discord server never sees them; a well-formed
# job next to them is delivered.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use BenefitsNode;
use MockProviders;

my $mock = MockProviders->new('paths');
my $url = $mock->url;
my $node = BenefitsNode::new_node('paths', conf => qq{
benefits.github_api_url = '$url'
benefits.discord_api_url = '$url'
benefits.retry_initial_delay = '100ms'
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION benefits');

my $org = '00000000-0000-4000-8000-0000000000aa';
my $guild = '80351110224678912';
my $user = '80351110224678913';
my @tampered = (
	[ 'github', 'remove_collaborator', qq{{"owner": "acme", "repo": "app", "username": "..", "_step": 2}} ],
	[ 'github', 'add_collaborator', qq{{"owner": "acme", "repo": "..", "username": "octocat"}} ],
	[ 'github', 'add_collaborator', qq{{"owner": "acme", "repo": "app", "username": "a/../../x"}} ],
	[ 'github', 'add_collaborator', qq{{"owner": "acme", "repo": "app", "username": "%2e%2e"}} ],
	[ 'github', 'add_collaborator', qq{{"owner": "", "repo": "app", "username": "octocat"}} ],
	[ 'github', 'remove_collaborator', qq{{"owner": "acme", "repo": "app", "username": "octocat", "_step": 1, "_invitation_id": "../1"}} ],
	[ 'discord', 'remove_role', qq{{"guild_id": "$guild", "user_id": "..", "role_id": "1"}} ],
	[ 'discord', 'remove_role', qq{{"guild_id": "$guild", "user_id": "$user", "role_id": ".."}} ],
	[ 'discord', 'kick_member', qq{{"guild_id": "$guild", "user_id": ""}} ],
	[ 'discord', 'kick_member', qq{{"guild_id": "1/2", "user_id": "$user"}} ],
	[ 'discord', 'add_member', qq{{"guild_id": "$guild", "user_id": "$user", "role_ids": ["1", "x"], "customer_id": null}} ],
);
my $values = join(",\n", map { "('$org', '$_->[0]', '$_->[1]', '$_->[2]')" } @tampered);
# add_member needs a token to get as far as its body: give it one through a
# linked account, as the claim reads it.  One transaction, so the worker
# sees every job only once each is complete.
$node->safe_psql('postgres', qq{
BEGIN;
INSERT INTO benefits.organizations (id, name) VALUES ('$org', 'o');
INSERT INTO benefits.customers (id, organization_id) VALUES ('00000000-0000-4000-8000-0000000000cc', '$org');
SELECT benefits.link_account('00000000-0000-4000-8000-0000000000cc', 'discord', '$user', 'eve', 'token');
INSERT INTO benefits.outbox (organization_id, kind, action, payload) VALUES $values;
UPDATE benefits.outbox SET payload = payload || '{"customer_id": "00000000-0000-4000-8000-0000000000cc"}'
 WHERE action = 'add_member';
INSERT INTO benefits.outbox (organization_id, kind, action, payload)
VALUES ('$org', 'github', 'add_collaborator', '{"owner": "acme", "repo": "app", "username": "octocat", "permission": "pull"}');
COMMIT;
});
my $n = scalar(@tampered);
is(MockProviders::wait_for($node, 'postgres', "SELECT count(*) FROM benefits.outbox WHERE state IN ('dead', 'done')",
	$n + 1, 30), $n + 1, 'every job is finished');
is($node->safe_psql('postgres', "SELECT count(*) FROM benefits.dead_jobs WHERE last_error LIKE '%not sent'"),
	$n, 'each tampered job is dead, not sent');
is($node->safe_psql('postgres', "SELECT count(*) FROM benefits.dead_jobs WHERE attempts > 1"), '0',
	'dead at the first attempt, not retried');
like($node->safe_psql('postgres', "SELECT last_error FROM benefits.dead_jobs ORDER BY id LIMIT 1"),
	qr/payload\.username has a shape that cannot be a github name or id/, 'the error names the field');
is($node->safe_psql('postgres', "SELECT state FROM benefits.outbox WHERE payload->>'username' = 'octocat' AND action = 'add_collaborator' AND NOT payload ? '_step' ORDER BY id DESC LIMIT 1"),
	'done', 'the well-formed job next to them is delivered');
my @requests = $mock->requests;
is_deeply([ map { "$_->{method} $_->{path}" } @requests ], [ 'PUT /repos/acme/app/collaborators/octocat' ],
	'the mock saw only the well-formed request');

$node->stop;
$mock->stop;
done_testing();
