# BenefitsNode — a PostgreSQL::Test::Cluster node that loads `benefits` from
# the build tree's tmp_install (Debian's extension_destdir), with the worker
# serving the databases given.
package BenefitsNode;

use strict;
use warnings;
use PostgreSQL::Test::Cluster;

sub new_node
{
	my ($name, %opts) = @_;
	my $destdir = $ENV{BENEFITS_DESTDIR}
	  or die "BENEFITS_DESTDIR is not set: run the TAP tests through make test";
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(%{ $opts{init} // {} });
	my $databases = $opts{databases} // 'postgres';
	$node->append_conf(
		'postgresql.conf', qq{
extension_destdir = '$destdir'
shared_preload_libraries = '\$libdir/benefits'
benefits.database_names = '$databases'
benefits.allow_private_network = on
log_min_messages = info
} . ($opts{conf} // ''));
	return $node;
}

1;
