# MockProviders — starts test/mock/providers.py (mock GitHub, Discord and
# webhook receiver) on an ephemeral loopback port, controls it, and reads
# the log of every request it received.
package MockProviders;

use strict;
use warnings;
use HTTP::Tiny;
use JSON::PP;
use PostgreSQL::Test::Utils;
use Time::HiRes qw(usleep);

sub new
{
	my ($class, $name) = @_;
	my $dir = PostgreSQL::Test::Utils::tempdir("mock_$name");
	my $self = bless {
		dir => $dir,
		log => "$dir/requests.jsonl",
		portfile => "$dir/port",
		http => HTTP::Tiny->new(timeout => 10),
		json => JSON::PP->new->canonical->ascii,
	}, $class;
	my $script = "$ENV{BENEFITS_ROOT}/test/mock/providers.py";
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		open(STDOUT, '>', "$dir/stdout");
		open(STDERR, '>', "$dir/stderr");
		exec('python3', $script, '--port-file', $self->{portfile}, '--log', $self->{log})
		  or die "exec: $!";
	}
	$self->{pid} = $pid;
	for (1 .. 500)
	{
		last if -s $self->{portfile};
		usleep(20_000);
	}
	open(my $fh, '<', $self->{portfile}) or die "mock did not start: " . slurp("$dir/stderr");
	$self->{port} = <$fh>;
	close $fh;
	$self->{url} = "http://127.0.0.1:$self->{port}";
	return $self;
}

sub url { return $_[0]->{url}; }

# Merge settings into the mock's (see providers.py).
sub control
{
	my ($self, %settings) = @_;
	my $r = $self->{http}->post("$self->{url}/__control",
		{ content => $self->{json}->encode(\%settings) });
	die "mock control failed: $r->{status}" unless $r->{success};
}

sub state
{
	my ($self) = @_;
	my $r = $self->{http}->get("$self->{url}/__state");
	die "mock state failed: $r->{status}" unless $r->{success};
	return $self->{json}->decode($r->{content});
}

# The latest time a request was received, 0 before any.  The log's lines
# can be out of time order (the server's threads write them as they finish),
# so this is the largest, not the last line's.
sub last_time
{
	my ($self) = @_;
	my $t = 0;
	for my $r ($self->requests) { $t = $r->{t} if $r->{t} > $t; }
	return $t;
}

# Every request received so far, as hashes (method, path, headers, body, answer, ...).
sub requests
{
	my ($self) = @_;
	my @entries;
	open(my $fh, '<', $self->{log}) or return ();
	while (my $line = <$fh>)
	{
		next unless $line =~ /\n\z/;    # a line still being written
		push @entries, $self->{json}->decode($line);
	}
	close $fh;
	return @entries;
}

sub stop
{
	my ($self) = @_;
	kill 'TERM', $self->{pid} if $self->{pid};
	waitpid($self->{pid}, 0) if $self->{pid};
	$self->{pid} = undef;
}

sub DESTROY { $_[0]->stop; }

# Poll a query until it returns the expected value (or time out); returns the last value.
sub wait_for
{
	my ($node, $db, $query, $expected, $timeout) = @_;
	$timeout //= 60;
	my $value;
	my $deadline = time() + $timeout;
	while (time() < $deadline)
	{
		$value = $node->safe_psql($db, $query);
		return $value if $value eq $expected;
		usleep(100_000);
	}
	return $value;
}

1;
