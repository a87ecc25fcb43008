# The extension installs from the build tree into a fresh cluster, with the
# library preloaded, and drops cleanly.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use BenefitsNode;

my $node = BenefitsNode::new_node('install');
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION benefits');
is($node->safe_psql('postgres',
	"SELECT extversion FROM pg_extension WHERE extname = 'benefits'"), '0.2.0', 'installed');
is($node->safe_psql('postgres',
	"SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	  WHERE n.nspname = 'benefits' AND c.relkind = 'r' AND has_table_privilege('public', c.oid, 'SELECT')"),
	'0', 'no table is readable by PUBLIC');
$node->safe_psql('postgres', 'DROP EXTENSION benefits');
$node->safe_psql('postgres', 'CREATE EXTENSION benefits');
$node->stop;
done_testing();
