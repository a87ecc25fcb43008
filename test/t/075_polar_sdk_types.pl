# Webhook bodies against Polar's SDK: a scenario that sends every event type
# Polar also has (benefit.created, benefit.updated, benefit_grant.created,
# .updated, .cycled, .revoked) for every benefit type (license_keys,
# github_repository, discord, downloadable, meter_credits, custom) to a mock
# receiver, then test/tools/polar_webhook_typecheck.mjs checks every body it
# received against @polar-sh/sdk (tsc --strict against the SDK's wire types,
# and the SDK's zod schemas).  The checker itself is shown to catch a missing,
# a mistyped and an undeclared property.  Event types Polar does not have
# (meter.low_balance) go only to an endpoint that subscribed to them.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use JSON::PP;
use BenefitsNode;
use MockProviders;

my $root = $ENV{BENEFITS_ROOT};
my $checker = "$root/test/tools/polar_webhook_typecheck.mjs";
my $modules = "$root/test/mock/node_modules";
die "\@polar-sh/sdk or typescript is not installed: run 'make deps' (npm ci in test/mock)\n"
  unless -f "$modules/\@polar-sh/sdk/package.json" && -f "$modules/typescript/bin/tsc";

my $mock = MockProviders->new('polar_sdk');
my $url = $mock->url;
my $node = BenefitsNode::new_node('polar_sdk', conf => qq{
benefits.github_api_url = '$url'
benefits.github_token = 'ghp_test'
benefits.discord_api_url = '$url/api/v10'
benefits.discord_bot_token = 'bot_test'
benefits.http_timeout = '2s'
benefits.retry_initial_delay = '100ms'
benefits.retry_max_delay = '1s'
benefits.max_attempts = 2
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION benefits');
sub sql { return $node->safe_psql('postgres', $_[0]); }
sub wait_q { return MockProviders::wait_for($node, 'postgres', $_[0], $_[1], $_[2]); }
# Every job sent (or dead): the webhooks of what came before are all delivered.
sub settle
{
	my ($what) = @_;
	is(wait_q("SELECT count(*) FROM benefits.outbox WHERE state IN ('pending', 'running')", '0'), '0',
		"$what: every job delivered");
}

my @polar_events = qw(benefit.created benefit.updated benefit_grant.created benefit_grant.updated
  benefit_grant.cycled benefit_grant.revoked);
my $org = sql("INSERT INTO benefits.organizations (name) VALUES ('polar-sdk') RETURNING id");
my $events = join(', ', map { "'$_'" } @polar_events);
my (undef, $secret_polar) = split /\|/, sql(qq{
SELECT id, secret FROM benefits.create_webhook_endpoint('$org', '$url/hooks/polar', ARRAY[$events])});
my (undef, $secret_meter) = split /\|/, sql(qq{
SELECT id, secret FROM benefits.create_webhook_endpoint('$org', '$url/hooks/meter', ARRAY['meter.low_balance'])});
my (undef, $secret_both) = split /\|/, sql(qq{
SELECT id, secret FROM benefits.create_webhook_endpoint('$org', '$url/hooks/both',
    ARRAY['benefit_grant.revoked', 'meter.low_balance'])});
$mock->control(secrets => { '/hooks/polar' => $secret_polar, '/hooks/meter' => $secret_meter,
		'/hooks/both' => $secret_both });

# One benefit of each type, in each of its forms: benefit.created.
my $meter = sql("INSERT INTO benefits.meters (organization_id, name) VALUES ('$org', 'API calls') RETURNING id");
my %b;
sub benefit
{
	my ($name, $type, $description, $properties) = @_;
	$b{$name} = sql(qq{SELECT id FROM benefits.create_benefit('$type', '$org', '$description', '$properties')});
}
benefit(lk_full => 'license_keys', 'License, all limits',
	'{"prefix": "POLAR", "expires": {"ttl": 1, "timeframe": "year"}, "activations": {"limit": 3, "enable_customer_admin": true, "heartbeat": "15 minutes"}, "limit_usage": 100, "key_per": "grant", "conditions_match": "subset"}');
benefit(lk_none => 'license_keys', 'License, no limits', '{"expires": false, "activations": false, "limit_usage": false}');
benefit(gh_one => 'github_repository', 'One repository',
	'{"repository_owner": "acme", "repository_name": "engine", "permission": "pull"}');
benefit(gh_many => 'github_repository', 'Two repositories',
	'{"repositories": [{"owner": "acme", "name": "docs", "permission": "triage"}, {"owner": "acme", "name": "site", "permission": "push"}]}');
benefit(dc_one => 'discord', 'One role', '{"guild_id": "100000000000000111", "role_id": "100000000000000201"}');
benefit(dc_many => 'discord', 'Two roles',
	'{"guild_id": "100000000000000111", "roles": [{"role_id": "100000000000000202", "name": "Sponsor"}, {"role_id": "100000000000000203"}], "kick_member": true}');
benefit(dl => 'downloadable', 'Files', '{"files": [{"name": "Manual.pdf", "size": 2048}, {"name": "App.zip", "size": 4096}]}');
benefit(mc => 'meter_credits', 'Credits', qq{{"meter_id": "$meter", "units": 100, "low_balance_threshold": 20}});
benefit(mc_roll => 'meter_credits', 'Rolling credits', qq{{"meter_id": "$meter", "units": 5, "rollover": true}});
benefit(note => 'custom', 'A note', '{"note": "Thanks for **subscribing**."}');
benefit(note_none => 'custom', 'No note', '{}');
$b{flag} = sql(qq{SELECT id FROM benefits.create_benefit('feature_flag', '$org', 'Export to PDF', '{}',
    metadata => '{"feature": "export_pdf", "tier": 2, "beta": true}')});
my @all = sort keys %b;
my $pro = sql("INSERT INTO benefits.products (organization_id, name) VALUES ('$org', 'Pro') RETURNING id");
sql("SELECT benefits.update_product_benefits('$pro', ARRAY[" . join(', ', map { "'$b{$_}'" } @all) . "]::uuid[])");
my $once = sql("INSERT INTO benefits.products (organization_id, name) VALUES ('$org', 'Download') RETURNING id");
sql("SELECT benefits.update_product_benefits('$once', ARRAY['$b{dl}', '$b{lk_none}']::uuid[])");

# Customers: one complete with linked accounts, one with nothing but an id.
my $alice = sql(qq{INSERT INTO benefits.customers (organization_id, external_id, email, name, metadata)
    VALUES ('$org', 'alice', 'alice\@example.com', 'Alice', '{"plan": "pro", "seats": 3, "vip": true}') RETURNING id});
my $bob = sql("INSERT INTO benefits.customers (organization_id, external_id) VALUES ('$org', 'bob') RETURNING id");
sql("SELECT benefits.link_account('$alice', 'github', '5001', 'octocat')");
sql("SELECT benefits.link_account('$alice', 'discord', '7001', 'alice', 'oauth-token-7001')");
settle('benefits created');

# benefit_grant.created: subscriptions (Alice's GitHub and Discord grants are
# then confirmed by the providers: benefit_grant.updated), Bob's waiting for
# linked accounts (an error naming the action), and a one-time order.
my $sub_a = sql("INSERT INTO benefits.subscriptions (customer_id, product_id, status) VALUES ('$alice', '$pro', 'active') RETURNING id");
my $sub_b = sql("INSERT INTO benefits.subscriptions (customer_id, product_id, status) VALUES ('$bob', '$pro', 'trialing') RETURNING id");
sql("INSERT INTO benefits.orders (customer_id, product_id, billing_reason, status) VALUES ('$bob', '$once', 'purchase', 'paid')");
is(wait_q("SELECT count(*) FROM benefits.grants WHERE subscription_id = '$sub_a' AND state = 'active'", scalar(@all)),
	scalar(@all), "Alice's grants are all active once the providers confirmed");
settle('grants');

# Bob links his GitHub account: his GitHub grants are delivered (benefit_grant.updated).
sql("SELECT benefits.link_account('$bob', 'github', '5002', 'hubot')");
is(wait_q("SELECT count(*) FROM benefits.grants g JOIN benefits.benefits b ON b.id = g.benefit_id
            WHERE g.customer_id = '$bob' AND b.type = 'github_repository' AND g.state = 'active'", '2'),
	'2', "Bob's GitHub grants are active once he linked his account");
settle('linked account');

# Metadata Polar's types do not take (nested values, null) is sent as Polar's
# flat metadata: nested values as their JSON text, nulls left out.
my $carol = sql(qq{INSERT INTO benefits.customers (organization_id, external_id, email, metadata)
    VALUES ('$org', 'carol', 'carol\@example.com',
            '{"plan": "team", "limits": {"seats": 5}, "tags": ["a", "b"], "gone": null, "score": 1.5, "ok": false}') RETURNING id});
sql("UPDATE benefits.benefits SET metadata = '{\"tier\": {\"level\": 2}, \"code\": \"X1\"}' WHERE id = '$b{note}'");
sql("SELECT benefits.grant_benefit('$carol', '$b{note}')");
settle('nested metadata');

# benefit.updated and benefit_grant.updated (previous properties): edits of live benefits.
sql(qq{SELECT benefits.update_benefit('$b{lk_full}', NULL,
    '{"prefix": "POLAR", "expires": {"ttl": 2, "timeframe": "month"}, "activations": {"limit": 5, "enable_customer_admin": false}, "limit_usage": 200}')});
sql(qq{SELECT benefits.update_benefit('$b{gh_one}', NULL,
    '{"repository_owner": "acme", "repository_name": "engine", "permission": "maintain"}')});
sql(qq{SELECT benefits.update_benefit('$b{dc_many}', NULL,
    '{"guild_id": "100000000000000111", "roles": [{"role_id": "100000000000000202", "name": "Sponsor"}], "kick_member": true}')});
sql(qq{SELECT benefits.update_benefit('$b{note}', 'A note, edited', '{"note": "Edited."}')});
sql(qq{SELECT benefits.update_benefit('$b{mc}', NULL, '{"meter_id": "$meter", "units": 150, "low_balance_threshold": 20}')});
sql(qq{SELECT benefits.update_benefit(id, 'Files, one archived',
    properties || jsonb_build_object('archived', jsonb_build_object(properties #>> '{files,0}', true)))
  FROM benefits.benefits WHERE id = '$b{dl}'});
sql(qq{SELECT benefits.update_benefit('$b{flag}', NULL, '{}', metadata => '{"feature": "export_pdf_v2"}')});
settle('benefit edits');

# benefit_grant.cycled: a paid renewal of Alice's subscription.
sql("INSERT INTO benefits.orders (customer_id, product_id, subscription_id, billing_reason, status) VALUES ('$alice', '$pro', '$sub_a', 'subscription_cycle', 'paid')");
settle('renewal');

# meter.low_balance, an event Polar does not have: usage below the threshold.
sql("SELECT benefits.record_usage('$alice', '$meter', benefits.meter_balance('$alice', '$meter') - 5)");
settle('usage');

# A provider's permanent refusal on a grant, then benefit_grant.revoked for
# everything: the refused grant (carrying the error), Bob's subscription,
# Alice's subscription, a deleted benefit.
my $gh_403 = sql(qq{SELECT id FROM benefits.create_benefit('github_repository', '$org', 'Refused',
    '{"repository_owner": "acme", "repository_name": "secret", "permission": "pull"}')});
$mock->control(status => { '/repos/acme/secret/collaborators/octocat' => 403 });
sql("SELECT benefits.grant_benefit('$alice', '$gh_403')");
is(wait_q("SELECT error->>'type' FROM benefits.grants WHERE customer_id = '$alice' AND benefit_id = '$gh_403'", 'provider_error'),
	'provider_error', 'the refusal is recorded on the grant');
settle('refused grant');
sql("SELECT benefits.revoke_benefit('$alice', '$gh_403')");
sql("SELECT benefits.delete_benefit('$b{note_none}')");
sql("UPDATE benefits.subscriptions SET status = 'revoked' WHERE id IN ('$sub_a', '$sub_b')");
sql("UPDATE benefits.orders SET status = 'refunded' WHERE customer_id = '$bob'");
settle('revocations');

# What the receivers got.
my @posts = grep { $_->{method} eq 'POST' } $mock->requests;
my $json = JSON::PP->new->canonical;
my %by_path;
push @{ $by_path{ $_->{path} } }, $_ for @posts;
my @polar = @{ $by_path{'/hooks/polar'} // [] };
ok(@polar >= 40, 'the Polar endpoint received ' . scalar(@polar) . ' webhooks');
is(scalar(grep { !$_->{signature_valid} } @posts), 0, 'every delivery is signed with its endpoint secret');

my (%types, %benefit_types, %pairs);
for my $r (@polar)
{
	my $body = $json->decode($r->{body});
	my $bt = $body->{type} =~ /^benefit_grant\./ ? $body->{data}{benefit}{type} : $body->{data}{type};
	$types{ $body->{type} }++;
	$benefit_types{$bt}++;
	$pairs{"$body->{type} $bt"}++;
}
is_deeply([ sort keys %types ], [ sort @polar_events ], 'the Polar endpoint got every Polar event type the extension emits');
is_deeply([ sort keys %benefit_types ],
	[ sort qw(custom discord downloadables feature_flag github_repository license_keys meter_credit) ],
	'and bodies of every benefit type');
for my $event (@polar_events)
{
	is(scalar(grep { /^\Q$event\E / } keys %pairs), 7, "$event for all seven benefit types");
}
note("event and benefit type: $_ x$pairs{$_}") for sort keys %pairs;

my ($carol_body) = map { $json->decode($_->{body}) }
  grep { $_->{body} =~ /"external_id": "carol"/ && $_->{body} =~ /"benefit_grant\.created"/ } @polar;
is_deeply($carol_body->{data}{customer}{metadata},
	{ plan => 'team', limits => '{"seats": 5}', tags => '["a", "b"]', score => 1.5, ok => JSON::PP::false },
	'customer metadata: nested values as JSON text, null members left out');
is_deeply($carol_body->{data}{benefit}{metadata}, { tier => '{"level": 2}', code => 'X1' },
	'benefit metadata too');

# Never a full license key in any body.
my @keys = split /\n/, sql("SELECT key FROM benefits.license_keys WHERE organization_id = '$org'");
ok(@keys >= 2, 'license keys were issued');
is(scalar(grep { my $b = $_->{body}; grep { index($b, $_) >= 0 } @keys } @posts), 0, 'no body carries a full license key');

# The oracle: every body the Polar endpoint received, against the SDK.
my $dir = PostgreSQL::Test::Utils::tempdir('polar_typecheck');
my $log = "$dir/polar.jsonl";
open(my $fh, '>', $log) or die "$log: $!";
print $fh JSON::PP->new->canonical->encode($_), "\n" for @polar;
close $fh;
my ($out, $err) = run_checker($log);
is($?, 0, 'every body type-checks against @polar-sh/sdk (tsc --strict and the zod schemas)')
  or diag($out . $err);
note($out);
my @ok_lines = grep { /^ok \d+ / } split /\n/, $out;
is(scalar(@ok_lines), scalar(@polar), 'the checker printed one ok line per body');

# The checker fails a missing, a mistyped and an undeclared property, each at its path.
my ($sample) = grep { $json->decode($_->{body})->{data}{benefit} } @polar;
my $good = $json->decode($sample->{body});
my @broken;
{
	my $b = $json->decode($sample->{body});
	delete $b->{data}{benefit}{visibility_configurable};
	push @broken, $b;
	$b = $json->decode($sample->{body});
	$b->{data}{is_granted} = 'yes';
	push @broken, $b;
	$b = $json->decode($sample->{body});
	$b->{data}{customer}{favourite_colour} = 'blue';
	push @broken, $b;
	$b = $json->decode($sample->{body});
	$b->{data}{created_at} = '2025-01-01 10:00:00+02';
	push @broken, $b;
	$b = $json->decode($sample->{body});
	$b->{data}{customer}{metadata} = { limits => { seats => 5 } };
	push @broken, $b;
}
open($fh, '>', "$dir/broken.jsonl") or die;
print $fh $json->encode($_), "\n" for $good, @broken;
close $fh;
($out, $err) = run_checker("$dir/broken.jsonl");
isnt($?, 0, 'the checker fails broken bodies');
like($out, qr/^ok 1 /m, 'the unbroken copy passes');
like($out, qr/^FAIL 2 .*\n(?:\s+.*\n)*?\s+\$\.data\.benefit\.visibility_configurable: \[/m, 'a missing property fails, at its path');
like($out, qr/^FAIL 3 .*\n(?:\s+.*\n)*?\s+\$\.data\.is_granted: \[tsc\]/m, 'a mistyped property fails, at its path');
like($out, qr/^FAIL 4 .*\n(?:\s+.*\n)*?\s+\$\.data\.customer\.favourite_colour: \[tsc\] TS\d+ Object literal may only specify known properties/m,
	'an undeclared property fails, at its path');
like($out, qr/^FAIL 5 .*\n(?:\s+.*\n)*?\s+\$\.data\.created_at: \[rfc3339\]/m, 'a time not in UTC with a Z fails');
like($out, qr/^FAIL 6 .*\n(?:\s+.*\n)*?\s+\$\.data\.customer\.metadata\.limits: \[/m, 'nested metadata fails (why payloads flatten it)');
note($out);

# meter.low_balance went to the endpoints that asked for it, and nowhere else.
my @meter = @{ $by_path{'/hooks/meter'} // [] };
ok(@meter >= 1, 'the meter.low_balance endpoint received the low-balance event');
is(scalar(grep { $json->decode($_->{body})->{type} ne 'meter.low_balance' } @meter), 0, 'and nothing else');
my @both = map { $json->decode($_->{body})->{type} } @{ $by_path{'/hooks/both'} // [] };
is(scalar(grep { $_ eq 'meter.low_balance' } @both), scalar(@meter), 'an endpoint subscribed to it and to a Polar event gets it too');
ok(scalar(grep { $_ eq 'benefit_grant.revoked' } @both) > 0, 'with the Polar events it asked for');
is(scalar(grep { $_ ne 'meter.low_balance' && $_ ne 'benefit_grant.revoked' } @both), 0, 'and no other');
is(scalar(grep { $json->decode($_->{body})->{type} !~ /^benefit(_grant)?\./ } @polar), 0,
	'the endpoint subscribed to Polar events only never gets meter.low_balance');
is(sql("SELECT count(*) FROM benefits.outbox o JOIN benefits.webhook_endpoints e ON e.id = o.endpoint_id
         WHERE o.event_type = 'meter.low_balance' AND NOT 'meter.low_balance' = ANY (e.events)"), '0',
	'no outbox row of meter.low_balance for an endpoint that did not subscribe');

$node->stop;
done_testing();

sub run_checker
{
	my ($file) = @_;
	my $out = `node '$checker' --modules '$modules' --workdir '$dir' '$file' 2>&1`;
	return ($out, '');
}
