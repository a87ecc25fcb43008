# The portal's usage chart in a real browser: headless Chromium renders the
# page of a customer who used a meter on four of the last 30 days; the
# rendered DOM has the accessible inline SVG (a title and description it is
# labelled by, no script), and a screenshot shows four bars in the chart's
# colour, in day order at the right distances, each as tall as its day's
# usage against the busiest day (decoded by test/tools/png_bars.py).
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use File::Copy;
use BenefitsNode;
use Chromium;

my $tmp = PostgreSQL::Test::Utils::tempdir;
my $node = BenefitsNode::new_node('chart');
$node->start;

# Usage 29, 20 and 10 days ago and today: 10, 40, 20 and 30 units.
my %usage = (29 => 10, 20 => 40, 10 => 20, 0 => 30);
$node->safe_psql('postgres', q{
CREATE EXTENSION benefits;
INSERT INTO benefits.organizations (id, name) VALUES ('00000000-0000-0000-0000-0000000014a1', 'Acme');
INSERT INTO benefits.meters (id, organization_id, name) VALUES
    ('00000000-0000-0000-0000-0000000014e1', '00000000-0000-0000-0000-0000000014a1', 'API calls');
INSERT INTO benefits.customers (id, organization_id, external_id, email) VALUES
    ('00000000-0000-0000-0000-0000000014c1', '00000000-0000-0000-0000-0000000014a1', 'ada', 'ada@example.com');
INSERT INTO benefits.products (id, organization_id, name) VALUES
    ('00000000-0000-0000-0000-0000000014d1', '00000000-0000-0000-0000-0000000014a1', 'Pro');
SELECT benefits.update_product_benefits('00000000-0000-0000-0000-0000000014d1', ARRAY[
    (benefits.create_benefit('meter_credits', '00000000-0000-0000-0000-0000000014a1', 'Monthly calls',
        '{"meter_id": "00000000-0000-0000-0000-0000000014e1", "units": 1000}')).id]);
INSERT INTO benefits.subscriptions (customer_id, product_id, status, current_period_end)
VALUES ('00000000-0000-0000-0000-0000000014c1', '00000000-0000-0000-0000-0000000014d1', 'active', now() + interval '20 days');
} . join('', map { qq{
SELECT benefits.record_usage('00000000-0000-0000-0000-0000000014c1', '00000000-0000-0000-0000-0000000014e1', $usage{$_},
    occurred_at => date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' - interval '$_ days' + interval '1 minute');} }
	sort keys %usage));
is($node->safe_psql('postgres',
	q{SELECT benefits.meter_balance('00000000-0000-0000-0000-0000000014c1', '00000000-0000-0000-0000-0000000014e1')}),
	'900', 'the customer has used 100 of 1000 credits');

# Her portal page, and headless Chromium on it (test/t/Chromium.pm).
my $chromium = Chromium::portal($node, $tmp, '00000000-0000-0000-0000-0000000014a1', 'ada');

my ($ok, $dom) = $chromium->('--dump-dom');
ok($ok, 'Chromium rendered the page');
my ($svg) = $dom =~ m{(<svg class="usage-chart".*?</svg>)}s;
ok(defined $svg, 'the rendered page has the usage chart as inline SVG');
$svg //= '';
my ($labelled_by) = $svg =~ m{aria-labelledby="([^"]+)"};
like($svg, qr{role="img"}, 'the chart is an image to assistive technology');
my @ids = split / /, $labelled_by // '';
is(scalar(@ids), 2, 'labelled by two elements');
like($svg, qr{<title id="\Q$ids[0]\E">API calls used per day, last 30 days</title>}, 'its title names the meter and the span');
like($svg, qr{<desc id="\Q$ids[1]\E">100 units in 30 days; the most in one day: 40 on \d+ \w+ \d+\.</desc>},
	'its description gives the total and the busiest day');
is(scalar(() = $svg =~ /<rect /g), 4, 'four bars, one per day with usage');
like($svg, qr{<title>\d+ \w+ \d+: 40 units</title>}, 'each bar is titled with its day and units');
unlike($dom, qr{<script}i, 'the page has no script');
unlike($svg, qr{(?:href|src)=}, 'the chart loads nothing');

# The screenshot: the bars are drawn, in day order and sized by the data.
my $png = "$tmp/portal.png";
($ok) = $chromium->('--hide-scrollbars', '--window-size=1000,1000', "--screenshot=$png");
ok($ok && -s $png, 'screenshot taken');
my ($bars, $err) = ('', '');
IPC::Run::run([ 'python3', "$ENV{BENEFITS_ROOT}/test/tools/png_bars.py", $png, '2f6fdb' ], '>', \$bars, '2>', \$err);
is($err, '', 'the screenshot decodes');
my @bars = map { [ split / / ] } split /\n/, $bars;
is(scalar(@bars), 4, 'four bars of the chart colour are visible') or diag($bars);
SKIP:
{
	skip 'bars not found', 6 unless @bars == 4;
	my @days = sort { $b <=> $a } keys %usage;    # oldest first, as drawn
	# Slots are 10 px apart, one per day: 29, 20, 10 and 0 days ago.
	is_deeply([ map { $bars[$_][0] - $bars[0][0] } 0 .. 3 ], [ 0, 90, 190, 290 ],
		'the bars stand in day order at their days\' positions');
	is_deeply([ map { $_->[1] } @bars ], [ 8, 8, 8, 8 ], 'each bar is 8 px wide');
	is($bars[1][2], 75, 'the busiest day (40 units) is the full 75 px');
	for my $i (0, 2, 3)
	{
		my $want = 75 * $usage{ $days[$i] } / 40;
		ok(abs($bars[$i][2] - $want) <= 1, "the day of $usage{$days[$i]} units is $bars[$i][2] px tall (about $want)");
	}
	my %bottoms = map { ($_->[3] + $_->[2]) => 1 } @bars;
	is(scalar(keys %bottoms), 1, 'all bars stand on one baseline');
}
my $keep = $ENV{BENEFITS_SCREENSHOT_CHART} // "$PostgreSQL::Test::Utils::log_path/meter_chart.png";
copy($png, $keep) or diag("could not keep the screenshot: $!");
note("screenshot: $keep");

$node->stop;
done_testing();
