# Statements that once killed a backend (a NULL reaching a C trigger before
# NOT NULL is checked, a trigger function attached to another table) end in
# clean errors: no backend dies, the postmaster never restarts the cluster,
# and every other session keeps its connection.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use BenefitsNode;

my $node = BenefitsNode::new_node('nocrash');
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION benefits;
CREATE ROLE app LOGIN IN ROLE benefits_app;
CREATE ROLE admin LOGIN IN ROLE benefits_admin;
INSERT INTO benefits.organizations (id, name) VALUES ('00000000-0000-4000-8000-000000000001', 'o');
INSERT INTO benefits.customers (id, organization_id) VALUES ('00000000-0000-4000-8000-000000000002', '00000000-0000-4000-8000-000000000001');
INSERT INTO benefits.products (id, organization_id, name) VALUES ('00000000-0000-4000-8000-000000000003', '00000000-0000-4000-8000-000000000001', 'p');
INSERT INTO benefits.benefits (id, organization_id, type, description) VALUES ('00000000-0000-4000-8000-000000000004', '00000000-0000-4000-8000-000000000001', 'custom', 'perk');
SELECT benefits.grant_benefit('00000000-0000-4000-8000-000000000002', '00000000-0000-4000-8000-000000000004');
INSERT INTO benefits.subscriptions (id, customer_id, product_id, status) VALUES ('00000000-0000-4000-8000-000000000005', '00000000-0000-4000-8000-000000000002', '00000000-0000-4000-8000-000000000003', 'active');
CREATE TABLE public.lookalike (id uuid, customer_id uuid, state text, status text);
});
my $launcher_pid = $node->safe_psql('postgres', 'SELECT pid FROM pg_stat_activity WHERE backend_type = \'benefits launcher\'');

# A session that must survive everything below.
my $bystander = $node->background_psql('postgres');
$bystander->query_safe('SELECT 1');

my $c = '00000000-0000-4000-8000-000000000002';
my $p = '00000000-0000-4000-8000-000000000003';
my @cases = (
	[ 'app', "INSERT INTO benefits.subscriptions (customer_id, product_id, status) VALUES ('$c', '$p', NULL)", qr/null value in column "status"/ ],
	[ 'app', "UPDATE benefits.subscriptions SET status = NULL", qr/null value in column "status"/ ],
	[ 'app', "INSERT INTO benefits.orders (customer_id, product_id, status, billing_reason) VALUES ('$c', '$p', 'paid', NULL)", qr/null value in column "billing_reason"/ ],
	[ 'admin', "INSERT INTO benefits.grants (customer_id, benefit_id, state) VALUES ('$c', '00000000-0000-4000-8000-000000000004', NULL)", qr/null value in column "state"/ ],
	[ 'admin', "UPDATE benefits.grants SET state = NULL", qr/null value in column "state"/ ],
	[ 'postgres', "CREATE TRIGGER t BEFORE INSERT ON public.lookalike FOR EACH ROW EXECUTE FUNCTION benefits.grants_state_guard(); INSERT INTO public.lookalike VALUES (NULL, NULL, NULL, NULL)", qr/fires only on benefits.grants/ ],
	[ 'postgres', "CREATE TRIGGER t BEFORE INSERT OR UPDATE ON public.lookalike FOR EACH ROW EXECUTE FUNCTION benefits.subscriptions_before(); INSERT INTO public.lookalike VALUES (NULL, NULL, NULL, NULL)", qr/fires only on benefits.subscriptions/ ],
	[ 'postgres', "CREATE TRIGGER t AFTER INSERT ON public.lookalike FOR EACH ROW EXECUTE FUNCTION benefits.orders_after(); INSERT INTO public.lookalike VALUES (NULL, NULL, NULL, NULL)", qr/fires only on benefits.orders/ ],
);
for my $case (@cases)
{
	my ($role, $sql, $expect) = @$case;
	my ($ret, $out, $err) = $node->psql('postgres', "BEGIN; $sql; COMMIT", extra_params => [ '-U', $role ]);
	isnt($ret, 0, "refused: $sql");
	like($err, $expect, '... with a clean error');
	unlike($err, qr/server closed the connection|terminated abnormally/, '... and the connection intact');
}

is($bystander->query_safe('SELECT 2'), '2', 'the bystander session is still connected');
$bystander->quit;
is($node->safe_psql('postgres', 'SELECT pid FROM pg_stat_activity WHERE backend_type = \'benefits launcher\''),
	$launcher_pid, 'the launcher is the one started with the server (no restart of the cluster)');
my $log = slurp_file($node->logfile);
my $restarts = () = $log =~ /terminated by signal|all server processes terminated; reinitializing/g;
is($restarts, 0, 'the server log shows no backend killed by a signal and no restart');

$node->stop;
done_testing();
