# Headless Chromium for the browser tests (060, 062): a fresh profile per
# run, no network services of its own, one CSS pixel per screen pixel in
# sRGB, so screenshots can be measured.
package Chromium;
use strict;
use warnings;
use IPC::Run;
use Test::More;

# run(DIR, PAGE, ARGS...): Chromium's exit status as a boolean and its
# standard output, for the local file PAGE, with DIR as its home.
sub run
{
	my ($dir, $page, @args) = @_;
	my ($stdout, $stderr) = ('', '');
	local $ENV{HOME} = $dir;
	my $ok = IPC::Run::run(
		[ 'chromium', '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
			'--disable-background-networking', '--disable-component-update', '--disable-sync',
			'--force-device-scale-factor=1', '--force-color-profile=srgb',
			"--user-data-dir=$dir/profile-" . int(rand(1e9)), @args, "file://$page" ],
		'>', \$stdout, '2>', \$stderr, IPC::Run::timeout(120));
	diag($stderr) unless $ok;
	return ($ok, $stdout);
}

# portal(NODE, DIR, ORGANIZATION, EXTERNAL_ID[, ACTION_URL]): the customer's
# portal page (a fresh session's customer_portal_html) written to
# DIR/portal.html, and a function running Chromium on it with more ARGS.
sub portal
{
	my ($node, $dir, $org, $external_id, $action_url) = @_;
	my $token = $node->safe_psql('postgres', "SELECT benefits.create_customer_session('$org', '$external_id')");
	my $action = defined $action_url ? ", '$action_url'" : '';
	my $html = $node->safe_psql('postgres', "SELECT benefits.customer_portal_html('$token'$action)");
	open(my $fh, '>:raw', "$dir/portal.html") or die "$dir/portal.html: $!";
	print $fh $html;
	close $fh;
	return sub { return run($dir, "$dir/portal.html", @_); };
}

1;
