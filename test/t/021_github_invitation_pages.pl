# A GitHub revoke finds the customer's pending invitation among several
# pages while other revokes delete invitations between its page fetches.
# The mock deletes the 100 oldest invitations right after serving page 1,
# which moves the customer's invitation from page 2 to page 1: a walk
# forward by page number steps over it (and removes the collaborator
# instead, leaving the invitation pending); the walk from the last page down
# to page 1 finds and deletes it.  Once with a short Link header and once
# with one over 512 bytes (the worker reads long header lines apart).
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use BenefitsNode;
use MockProviders;

my $mock = MockProviders->new('invitation_pages');
my $url = $mock->url;
my $node = BenefitsNode::new_node('invitation_pages', conf => qq{
benefits.github_api_url = '$url'
benefits.github_token = 'ghp_test'
benefits.http_timeout = '2s'
benefits.retry_initial_delay = '100ms'
benefits.retry_max_delay = '1s'
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION benefits');
sub sql { return $node->safe_psql('postgres', $_[0]); }
sub wait_q { return MockProviders::wait_for($node, 'postgres', $_[0], $_[1], $_[2]); }

my $org = sql("INSERT INTO benefits.organizations (name) VALUES ('acme') RETURNING id");

# One revoke of login $who on repository acme/$repo, invited after 150 others
# and before 100 more, the mock deleting the $deleted (default 100) oldest
# right after page 1; returns the revoke's requests to the repository.
sub revoke_among_pages
{
	my ($repo, $who, $deleted) = @_;
	$deleted //= 100;
	my $benefit = sql(qq{SELECT id FROM benefits.create_benefit('github_repository', '$org', '$repo',
	    '{"repository_owner": "acme", "repository_name": "$repo", "permission": "pull"}')});
	my $cust = sql("INSERT INTO benefits.customers (organization_id, external_id) VALUES ('$org', '$who') RETURNING id");
	sql("SELECT benefits.link_account('$cust', 'github', '" . (6000 + length($repo)) . "', '$who')");
	$mock->control(invite => { "acme/$repo" => [ map { sprintf('%s-early%03d', $repo, $_) } 1 .. 150 ] });
	sql("SELECT benefits.grant_benefit('$cust', '$benefit')");
	is(wait_q("SELECT state FROM benefits.grants WHERE customer_id = '$cust'", 'active'), 'active',
		"$repo: the grant is delivered");
	$mock->control(invite => { "acme/$repo" => [ map { sprintf('%s-late%03d', $repo, $_) } 1 .. 100 ] });
	my $pending = $mock->state->{invitations}{"acme/$repo"};
	is(scalar(keys %$pending), 251, "$repo: 251 pending invitations, 3 pages of 100");
	is(scalar(grep { $_->{id} < $pending->{$who}{id} } values %$pending), 150,
		"$repo: $who\'s is the 151st, on page 2");

	$mock->control(uninvite_after_first_page => { "acme/$repo" => $deleted }) if $deleted;
	my @before = $mock->requests;
	sql("SELECT benefits.revoke_benefit('$cust', '$benefit')");
	wait_q("SELECT count(*) FROM benefits.outbox WHERE kind <> 'webhook' AND state IN ('pending', 'running')", '0');
	my @requests = $mock->requests;
	return map { "$_->{method} $_->{path}" }
	  grep { $_->{path} =~ m{^/repos/acme/\Q$repo\E/} } @requests[ scalar(@before) .. $#requests ];
}

my @calls = revoke_among_pages('many', 'target');
is($calls[0], 'GET /repos/acme/many/invitations?per_page=100&page=1', 'the revoke reads page 1 first');
is_deeply([ @calls[ 1 .. 3 ] ],
	[ map { "GET /repos/acme/many/invitations?per_page=100&page=$_" } 3, 2, 1 ],
	'then the pages from the last (3, from rel="last") down to 1 again');
like($calls[4] // '', qr{^DELETE /repos/acme/many/invitations/\d+$}, 'then deletes the invitation it found');
is(scalar(@calls), 5, 'five requests, no collaborator removal');
my $left = $mock->state->{invitations}{'acme/many'};
ok(!exists $left->{target}, 'the customer\'s invitation is gone although it moved to page 1 meanwhile');
is(scalar(keys %$left), 150, 'the others\' invitations are untouched (250 less the 100 deleted)');

# A Link header over 512 bytes.
$mock->control(link_base => 'http://mock/' . ('x' x 200));
@calls = revoke_among_pages('long', 'longtarget');
is_deeply([ @calls[ 0 .. 3 ] ],
	[ map { "GET /repos/acme/long/invitations?per_page=100&page=$_" } 1, 3, 2, 1 ],
	'a long Link header: the same walk');
ok(!exists $mock->state->{invitations}{'acme/long'}{longtarget}, 'and the invitation is gone');

# A list whose Link headers give rel="next" but no rel="last" is walked
# forward (no deletions this time).
$mock->control(link_base => 'http://mock', link_rels => [ 'next' ]);
@calls = revoke_among_pages('nextonly', 'nexttarget', 0);
is_deeply(\@calls,
	[ (map { "GET /repos/acme/nextonly/invitations?per_page=100&page=$_" } 1, 2), $calls[2] ],
	'rel="next" only: pages 1 and 2, then the delete');
like($calls[2], qr{^DELETE /repos/acme/nextonly/invitations/\d+$}, 'of the invitation found on page 2');
ok(!exists $mock->state->{invitations}{'acme/nextonly'}{nexttarget}, 'which is gone');

is(sql("SELECT count(*) FROM benefits.outbox WHERE state = 'dead'"), '0', 'no job died');

$node->stop;
$mock->stop;
done_testing();
