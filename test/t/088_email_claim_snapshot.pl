# An email job committed while the worker's claim transaction is already
# running (after its first snapshot, before its claim statement) is sent like
# any other, with the benefits it lists; found by make soak, where such jobs
# went dead at once as "email job not found" (its message rendered with the
# transaction's first snapshot, which does not have the row the claim
# statement's own snapshot found).  The worker is held between the two by a
# session locking a job its predecessor leased.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use BenefitsNode;
use MockProviders;
use SmtpMock;

my $smtp = SmtpMock->new('claim_snapshot');
my $smtp_url = $smtp->url;
my $node = BenefitsNode::new_node('claim_snapshot', conf => qq{
benefits.smtp_url = '$smtp_url'
benefits.retry_initial_delay = '100ms'
benefits.retry_max_delay = '500ms'
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION benefits');
sub sql { return $node->safe_psql('postgres', $_[0]); }
sub wait_q { return MockProviders::wait_for($node, 'postgres', $_[0], $_[1], $_[2]); }

my $org = sql(q{INSERT INTO benefits.organizations (name, email_from) VALUES ('Shop', 'shop@example.com') RETURNING id});
my $note = sql(qq{SELECT id FROM benefits.create_benefit('custom', '$org', 'Support', '{"note": "Write to us."}')});
my $product = sql("INSERT INTO benefits.products (organization_id, name) VALUES ('$org', 'Pro') RETURNING id");
sql("SELECT benefits.update_product_benefits('$product', ARRAY['$note']::uuid[])");
my %customer;
for my $name ('early', 'late')
{
	$customer{$name} = sql(qq{INSERT INTO benefits.customers (organization_id, external_id, email)
		VALUES ('$org', '$name', '$name\@example.com') RETURNING id});
}
is(wait_q("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'benefits worker'", '1'), '1', 'the worker runs');

sql("INSERT INTO benefits.subscriptions (customer_id, product_id, status) VALUES ('$customer{early}', '$product', 'active')");
is(wait_q("SELECT count(*) FROM benefits.outbox WHERE kind = 'email' AND state IN ('pending', 'running')", '0'), '0',
	'the first activation\'s email is sent');

# Hold a restarted worker's first claim between its snapshot and its claim
# statement: it releases the leases of its predecessor first, and waits for
# a session holding one of those jobs locked.
my $held = sql(qq{INSERT INTO benefits.outbox (organization_id, kind, action, payload, state, leased_until)
	VALUES ('$org', 'github', 'add_collaborator', '{}', 'running', now() + interval '1 hour') RETURNING id});
my $locker = $node->background_psql('postgres');
$locker->query_safe("BEGIN; SELECT id FROM benefits.outbox WHERE id = $held FOR UPDATE");
# A transaction begun before the worker's, committed after its snapshot: its
# job is due (run_after, its start, is before the claim's now()).
my $late = $node->background_psql('postgres');
$late->query_safe("BEGIN; INSERT INTO benefits.subscriptions (customer_id, product_id, status) VALUES ('$customer{late}', '$product', 'active')");
sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'benefits worker'");
is(wait_q(q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'benefits worker'
              AND wait_event_type = 'Lock' AND query = 'claiming jobs'}, '1', 120), '1',
	'the restarted worker waits in its claim transaction, its snapshot taken')
  or diag(sql(q{SELECT wait_event_type || ' ' || wait_event || ' ' || state || ' ' || query
                  FROM pg_stat_activity WHERE backend_type = 'benefits worker'}));
# Committed now: after the claim transaction's snapshot, before its claim statement.
$late->query_safe('COMMIT');
$late->quit;
$locker->query_safe('COMMIT');
$locker->quit;

is(wait_q("SELECT count(*) FROM benefits.outbox WHERE kind = 'email' AND state IN ('pending', 'running')", '0'), '0',
	'every email job finished');
is(sql("SELECT count(*) FROM benefits.outbox WHERE kind = 'email' AND state = 'dead'"), '0', 'none of them dead')
  or diag(sql("SELECT string_agg(last_error, '; ') FROM benefits.outbox WHERE state = 'dead'"));
for my $name ('early', 'late')
{
	my @messages = grep { $_->{rcpt_tos}[0] eq "$name\@example.com" } $smtp->messages;
	is(scalar(@messages), 1, "one message to the $name customer");
	my ($text) = map { $_->{text} } grep { $_->{content_type} eq 'text/plain' } @{ $messages[0]{parts} || [] };
	like($text // '', qr/Support/, "and it lists the benefit granted ($name)");
}

$smtp->stop;
done_testing();
