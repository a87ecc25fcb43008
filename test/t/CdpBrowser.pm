# CdpBrowser — one headless Chromium for a TAP test, driven over the DevTools
# protocol by test/mock/cdp_browser.mjs: a command is a hash (cmd => 'goto',
# url => ...), its answer the driver's JSON line as a hash ({ok => 1, ...}).
# A failed command is reported with diag unless expect_failure is given.
package CdpBrowser;

use strict;
use warnings;
use IPC::Run;
use JSON::PP;
use Test::More;

# start(profile => DIR, log => FILE) -> the browser
sub start
{
	my (%opts) = @_;
	my $self = bless { in => '', out => '', err => '', json => JSON::PP->new->utf8->canonical,
		timer => IPC::Run::timeout(180) }, 'CdpBrowser';
	$self->{run} = IPC::Run::start(
		[ 'node', "$ENV{BENEFITS_ROOT}/test/mock/cdp_browser.mjs", '--profile', $opts{profile}, '--log', $opts{log} ],
		'<', \$self->{in}, '>', \$self->{out}, '2>', \$self->{err}, $self->{timer});
	return $self;
}

# Sends one command and waits for its answer.
sub cmd
{
	my ($self, %cmd) = @_;
	my $expect_failure = delete $cmd{expect_failure};
	$self->{in} .= $self->{json}->encode(\%cmd) . "\n";
	$self->{timer}->start(180);
	while ($self->{out} !~ /\n/)
	{
		die "the browser driver ended: $self->{err}" unless $self->{run}->pumpable;
		$self->{run}->pump;
	}
	$self->{out} =~ s/\A([^\n]*)\n//;
	my $answer = $self->{json}->decode($1);
	diag("browser $cmd{cmd}: $answer->{error}") unless $answer->{ok} || $expect_failure;
	return $answer;
}

# Closes the browser and waits for the driver to end.
sub quit
{
	my ($self) = @_;
	$self->cmd(cmd => 'quit');
	$self->{run}->finish;
}

1;
