# S3Mock — a local S3-compatible server for the TAP tests: s3rver (npm,
# test/mock) with one bucket, behind test/mock/s3_sigv4_gateway.py, which
# checks every presigned URL's SigV4 signature with botocore (s3rver itself
# enforces expiry but not V4 signatures).  Both listen on 127.0.0.1 only.
package S3Mock;

use strict;
use warnings;
use IO::Socket::INET;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;

# start(bucket => 'downloads') -> { endpoint, s3_port, port, conf, stop }
sub start
{
	my (%opts) = @_;
	my $root = $ENV{BENEFITS_ROOT} or die "BENEFITS_ROOT is not set";
	my $bucket = $opts{bucket} // 'downloads';
	my $s3rver = "$root/test/mock/node_modules/s3rver/bin/s3rver.js";
	die "s3rver is not installed: run 'make deps' (npm ci in test/mock)\n" unless -f $s3rver;

	my $dir = PostgreSQL::Test::Utils::tempdir;
	my $self = {
		s3_port => PostgreSQL::Test::Cluster::get_free_port(),
		port => PostgreSQL::Test::Cluster::get_free_port(),
		log => '',
	};
	$self->{s3} = IPC::Run::start(
		[ 'node', $s3rver, '-d', $dir, '-a', '127.0.0.1', '-p', $self->{s3_port},
			'--silent', '--no-vhost-buckets', '--configure-bucket', $bucket ],
		'>&', \$self->{log}, IPC::Run::timeout(900));
	$self->{gateway} = IPC::Run::start(
		[ 'python3', "$root/test/mock/s3_sigv4_gateway.py", $self->{port}, $self->{s3_port},
			'S3RVER', 'S3RVER', 'us-east-1' ],
		'>&', \$self->{log}, IPC::Run::timeout(900));
	for my $port ($self->{s3_port}, $self->{port})
	{
		my $up = 0;
		for (1 .. 150)
		{
			if (IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp'))
			{
				$up = 1;
				last;
			}
			select(undef, undef, undef, 0.1);
		}
		die "S3 mock on port $port did not start:\n$self->{log}\n" unless $up;
	}
	$self->{endpoint} = "http://127.0.0.1:$self->{port}";
	$self->{conf} = qq{
benefits.s3_endpoint = '$self->{endpoint}'
benefits.s3_url_style = 'path'
benefits.s3_region = 'us-east-1'
benefits.s3_bucket = '$bucket'
benefits.s3_access_key_id = 'S3RVER'
benefits.s3_secret_access_key = 'S3RVER'
};
	return bless $self, 'S3Mock';
}

sub stop
{
	my ($self) = @_;
	$_->kill_kill for grep { defined } $self->{gateway}, $self->{s3};
	delete $self->{gateway};
	delete $self->{s3};
}

sub DESTROY { $_[0]->stop }

1;
