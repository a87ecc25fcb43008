# SmtpMock — runs test/mock/smtp_server.py (aiosmtpd) on a loopback port,
# controls its refusals, stops and starts it on the same port, and returns
# the messages it accepted, parsed by Python's email package.
package SmtpMock;

use strict;
use warnings;
use IO::Socket::INET;
use JSON::PP;
use PostgreSQL::Test::Utils;
use Time::HiRes qw(usleep);

my $script = "$ENV{BENEFITS_ROOT}/test/mock/smtp_server.py";

sub new
{
	my ($class, $name) = @_;
	my $dir = PostgreSQL::Test::Utils::tempdir("smtp_$name");
	# A free port, kept for the server's whole life (stop and start reuse it).
	my $probe = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 1)
	  or die "no free port: $!";
	my $self = bless {
		dir => $dir,
		log => "$dir/messages.jsonl",
		control => "$dir/control.json",
		port => $probe->sockport,
		json => JSON::PP->new->canonical,
	}, $class;
	close $probe;
	$self->control();
	$self->start;
	return $self;
}

sub port { return $_[0]->{port}; }
sub url { return "smtp://127.0.0.1:$_[0]->{port}"; }

# Start the server and wait until it listens.
sub start
{
	my ($self) = @_;
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		open(STDOUT, '>>', "$self->{dir}/stdout");
		open(STDERR, '>>', "$self->{dir}/stderr");
		exec('python3', $script, '--port', $self->{port}, '--log', $self->{log},
			'--control', $self->{control})
		  or die "exec: $!";
	}
	$self->{pid} = $pid;
	for (1 .. 500)
	{
		my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $self->{port});
		if ($s) { close $s; return; }
		usleep(20_000);
	}
	die "smtp server did not start: " . slurp_file("$self->{dir}/stderr");
}

sub stop
{
	my ($self) = @_;
	return unless $self->{pid};
	kill 'TERM', $self->{pid};
	waitpid($self->{pid}, 0);
	$self->{pid} = undef;
}

# Replace the control settings (see smtp_server.py): fail => {MAIL => [421, 2]}, delay_ms => n.
sub control
{
	my ($self, %settings) = @_;
	open(my $fh, '>', "$self->{control}.tmp") or die $!;
	print $fh $self->{json}->encode(\%settings);
	close $fh;
	rename("$self->{control}.tmp", $self->{control}) or die $!;
}

# Every message accepted so far, parsed.
sub messages
{
	my ($self) = @_;
	return () unless -e $self->{log};
	my $out = `python3 '$script' --parse '$self->{log}'`;
	die "parsing the messages failed" if $?;
	return @{ $self->{json}->decode($out) };
}

# How many commands were refused (as the control asked).
sub refusals
{
	my ($self) = @_;
	return 0 unless -e "$self->{log}.refused";
	my @lines = split /\n/, slurp_file("$self->{log}.refused");
	return scalar(@lines);
}

sub DESTROY { my $self = shift; local $?; $self->stop; }

1;
