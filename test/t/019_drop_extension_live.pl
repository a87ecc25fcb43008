# DROP EXTENSION on a live server does not deadlock with the worker.  A DROP
# locks the extension's members one after the other; a worker transaction
# that already held one of them (the outbox) and then read others (what an
# email job lists: customers, grants, benefits, organizations) waited for
# the DROP while the DROP waited for it, and the deadlock detector killed
# one of the two.  The worker now locks the extension itself first, so the
# DROP waits for the worker's transaction, then drops.
#
# The worker is held inside its claim transaction, holding the outbox, by a
# session that locks a job its predecessor leased; the DROP is issued then;
# the session lets go.  Then the same, unheld, many times over.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use BenefitsNode;
use MockProviders;
use SmtpMock;

my $smtp = SmtpMock->new('drop_live');
my $smtp_url = $smtp->url;
my $node = BenefitsNode::new_node('drop_live', conf => qq{
benefits.smtp_url = '$smtp_url'
benefits.retry_initial_delay = '10ms'
benefits.retry_max_delay = '20ms'
benefits.maintenance_interval = '20ms'
benefits.validation_flush_interval = '20ms'
deadlock_timeout = '20ms'
});
$node->start;
sub sql { return $node->safe_psql('postgres', $_[0]); }
sub wait_q { return MockProviders::wait_for($node, 'postgres', $_[0], $_[1], $_[2]); }
is(wait_q("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'benefits worker'", '1'), '1', 'the worker runs');

# An organization that sends email, a product with one benefit, customers.
my $setup = q{
CREATE EXTENSION benefits;
INSERT INTO benefits.organizations (name, email_from) VALUES ('Shop', 'shop@example.com');
INSERT INTO benefits.products (organization_id, name) SELECT id, 'Pro' FROM benefits.organizations;
SELECT count(benefits.update_product_benefits(p.id, ARRAY[b.id]))
  FROM benefits.products p,
       benefits.create_benefit('custom', (SELECT id FROM benefits.organizations), 'Support', '{"note": "Write to us."}') b;
INSERT INTO benefits.customers (organization_id, external_id, email)
SELECT o.id, 'c' || n, 'c' || n || '@example.com' FROM benefits.organizations o, generate_series(1, 20) n;
};
# Each subscription's activation queues an email listing its benefit.
my $activate = q{
INSERT INTO benefits.subscriptions (customer_id, product_id, status)
SELECT c.id, p.id, 'active' FROM benefits.customers c, benefits.products p;
};

sql($setup);
my $held = sql(q{INSERT INTO benefits.outbox (organization_id, kind, action, payload, state, leased_until)
	SELECT id, 'github', 'add_collaborator', '{}', 'running', now() + interval '1 hour'
	  FROM benefits.organizations RETURNING id});
my $locker = $node->background_psql('postgres');
$locker->query_safe("BEGIN; SELECT id FROM benefits.outbox WHERE id = $held FOR UPDATE");
sql($activate);
sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'benefits worker'");
is(wait_q(q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'benefits worker'
              AND wait_event_type = 'Lock' AND query = 'claiming jobs'}, '1', 120), '1',
	'the restarted worker waits inside its claim transaction, holding the outbox');
my $dropper = $node->background_psql('postgres', on_error_stop => 0);
$dropper->query_until(qr/dropping/, "\\echo dropping\nDROP EXTENSION benefits;\n\\echo dropped\n");
is(wait_q(q{SELECT count(*) FROM pg_stat_activity
             WHERE query = 'DROP EXTENSION benefits;' AND wait_event_type = 'Lock'}, '1', 60), '1',
	'the DROP waits for a lock');
$locker->query_safe('COMMIT');
$locker->quit;
$dropper->query_until(qr/dropped/, '');
my $drop_error = $dropper->{stderr} // '';
$dropper->quit;
is($drop_error, '', 'the DROP succeeds once the worker is let go');
is(sql("SELECT count(*) FROM pg_extension WHERE extname = 'benefits'"), '0', 'the extension is gone');

# Unheld: the DROP at any moment of the worker's claims, records and periodic calls.
my $rounds = 20;
my $failed = 0;
for my $round (1 .. $rounds)
{
	my ($rc, $out, $err) = $node->psql('postgres', $setup . $activate, on_error_stop => 1);
	select(undef, undef, undef, rand(0.2));
	($rc, $out, $err) = $node->psql('postgres', 'DROP EXTENSION benefits', on_error_stop => 1) if $rc == 0;
	next if $rc == 0;
	$failed++;
	diag("round $round: $err");
	$node->psql('postgres', 'DROP EXTENSION IF EXISTS benefits');
}
is($failed, 0, "$rounds rounds of CREATE EXTENSION, activations and DROP EXTENSION all succeed");
my @deadlocks = slurp_file($node->logfile) =~ /(deadlock detected)/g;
is(scalar(@deadlocks), 0, 'no deadlock in the server log');

# The worker still serves the database.
sql($setup . $activate);
is(wait_q("SELECT count(*) FROM benefits.outbox WHERE kind = 'email' AND state = 'done'", '20', 60), '20',
	'afterwards the worker sends the emails of a new install');

$smtp->stop;
$node->stop;
done_testing();
