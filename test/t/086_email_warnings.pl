# Warnings by email against a real SMTP server (aiosmtpd): a subscription
# set to cancel at its period end gets exactly one warning once the end is
# within benefits.revocation_warning_before (the clock driven through
# run_maintenance and the period end), none while it is further away, none
# when it is reactivated first, then the removal message at the end; the
# benefit_grant.revocation_scheduled event goes only to endpoints that list
# it.  Credits running low: a message, not for a customer who opted out.  A
# license key about to expire: one message per expiry.  The address guard
# refuses a loopback SMTP server unless allow_private_network is on.
use strict;
use warnings;
use utf8;
use PostgreSQL::Test::Utils;
use Test::More;
use BenefitsNode;
use MockProviders;
use SmtpMock;

my $smtp = SmtpMock->new('warnings');
my $smtp_url = $smtp->url;
my $node = BenefitsNode::new_node('warnings', conf => qq{
benefits.smtp_url = '$smtp_url'
benefits.email_from = 'noreply\@example.net'
benefits.retry_initial_delay = '100ms'
benefits.retry_max_delay = '500ms'
benefits.revocation_warning_before = '1h'
benefits.maintenance_interval = '1h'
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION benefits');
sub sql { return $node->safe_psql('postgres', $_[0]); }
sub wait_q { return MockProviders::wait_for($node, 'postgres', $_[0], $_[1], $_[2]); }
sub idle { return wait_q("SELECT count(*) FROM benefits.outbox WHERE kind = 'email' AND state IN ('pending', 'running')", '0'); }
sub to { my ($addr) = @_; return grep { $_->{rcpt_tos}[0] eq $addr } $smtp->messages; }
sub part { my ($m, $type) = @_; my ($p) = grep { $_->{content_type} eq $type } @{ $m->{parts} }; return $p ? $p->{text} : ''; }

my $org = sql("INSERT INTO benefits.organizations (name, email_from, portal_url) VALUES ('Acme', 'shop\@example.com', 'https://acme.example.com/portal') RETURNING id");
sql("INSERT INTO benefits.webhook_endpoints (organization_id, url, secret, events) VALUES
    ('$org', 'https://hooks.example.com/asks', 'whsec_dGVzdA==', ARRAY['benefit_grant.revocation_scheduled', 'license_key.expiring']),
    ('$org', 'https://hooks.example.com/polar', 'whsec_dGVzdA==', ARRAY['benefit_grant.created', 'benefit_grant.revoked'])");
my $meter = sql("INSERT INTO benefits.meters (organization_id, name) VALUES ('$org', 'Tokens') RETURNING id");
my $key = sql(qq{SELECT id FROM benefits.create_benefit('license_keys', '$org', 'App license', '{"expires": false, "activations": 1}')});
my $note = sql(qq{SELECT id FROM benefits.create_benefit('custom', '$org', 'Community', '{"note": "Welcome"}')});
my $credits = sql(qq{SELECT id FROM benefits.create_benefit('meter_credits', '$org', 'Tokens',
    '{"meter_id": "$meter", "units": 100, "low_balance_threshold": 20}')});
my $pro = sql("INSERT INTO benefits.products (organization_id, name) VALUES ('$org', 'Pro') RETURNING id");
sql("SELECT benefits.update_product_benefits('$pro', ARRAY['$key', '$note', '$credits']::uuid[])");
sub customer
{
	my ($name, $opt_out) = @_;
	return sql("INSERT INTO benefits.customers (organization_id, external_id, email, email_opt_out)
	    VALUES ('$org', '$name', '$name\@example.com', " . ($opt_out ? 'true' : 'false') . ") RETURNING id");
}
my $ann = customer('ann');
my $bob = customer('bob');
my $sub_a = sql("INSERT INTO benefits.subscriptions (customer_id, product_id, status, current_period_end)
    VALUES ('$ann', '$pro', 'active', now() + interval '30 days') RETURNING id");
my $sub_b = sql("INSERT INTO benefits.subscriptions (customer_id, product_id, status, current_period_end)
    VALUES ('$bob', '$pro', 'active', now() + interval '30 days') RETURNING id");
idle();
is(scalar(to('ann@example.com')), 1, 'Ann got her benefits message');

# Both set to cancel at the period end, two hours away: no warning yet.
sql("UPDATE benefits.subscriptions SET cancel_at_period_end = true, current_period_end = now() + interval '2 hours'");
sql("SELECT benefits.run_maintenance()");
is(sql("SELECT count(*) FROM benefits.outbox WHERE action = 'revocation_warning'"), '0', 'two hours before the end: no warning');

# Bob reactivates first.
sql("UPDATE benefits.subscriptions SET cancel_at_period_end = false WHERE id = '$sub_b'");

# The clock moves: the end is now 30 minutes away.
sql("UPDATE benefits.subscriptions SET current_period_end = now() + interval '30 minutes'");
sql("SELECT benefits.run_maintenance()");
sql("SELECT benefits.run_maintenance()");
is(sql("SELECT count(*) FROM benefits.outbox WHERE action = 'revocation_warning'"), '1', 'within the hour: one warning, even after two runs');
idle();
my @ann = to('ann@example.com');
is(scalar(@ann), 2, 'Ann got the warning');
my $end = sql("SELECT to_char(current_period_end AT TIME ZONE 'UTC', 'FMDD Mon YYYY HH24:MI') FROM benefits.subscriptions WHERE id = '$sub_a'");
is($ann[1]{headers}{Subject}, "Your benefits from Acme end on $end", 'saying when');
is_deeply([ part($ann[1], 'text/plain') =~ /^== (.*) ==$/mg ], [ 'App license', 'Community', 'Tokens' ],
	'listing what will be removed, in attachment order');
is(scalar(to('bob@example.com')), 1, 'Bob, reactivated before, got no warning');
is(sql("SELECT string_agg(e.url, ',') FROM benefits.outbox o JOIN benefits.webhook_endpoints e ON e.id = o.endpoint_id
        WHERE o.event_type = 'benefit_grant.revocation_scheduled'"),
	join(',', ('https://hooks.example.com/asks') x 3), 'one revocation_scheduled event per grant, only to the endpoint that lists it');
is(sql("SELECT DISTINCT (payload #>> '{data,revokes_at}')::timestamptz = (SELECT current_period_end FROM benefits.subscriptions WHERE id = '$sub_a')
        FROM benefits.outbox WHERE event_type = 'benefit_grant.revocation_scheduled'"), 't', 'the event says when');

# Moved again within the window (a new end): warned again about the new end.
sql("UPDATE benefits.subscriptions SET current_period_end = now() + interval '20 minutes' WHERE id = '$sub_a'");
sql("SELECT benefits.run_maintenance()");
is(sql("SELECT count(*) FROM benefits.outbox WHERE action = 'revocation_warning'"), '2', 'a new end of access is warned about once more');

# The period ends: revoked, and the removal message.
sql("UPDATE benefits.subscriptions SET current_period_end = now() - interval '1 second' WHERE id = '$sub_a'");
sql("SELECT benefits.run_maintenance()");
is(sql("SELECT string_agg(DISTINCT state, ',') FROM benefits.grants WHERE subscription_id = '$sub_a'"), 'revoked', 'at the end the grants are revoked');
idle();
@ann = to('ann@example.com');
is(scalar(@ann), 4, 'and Ann is told');
like($ann[3]{headers}{Subject}, qr/have ended$/, 'what was removed');
sql("SELECT benefits.run_maintenance()");
is(sql("SELECT count(*) FROM benefits.outbox WHERE action = 'revocation_warning'"), '2', 'no warning after the end');

# Credits running low: a message, not for a customer who opted out.
my $cy = customer('cy');
my $dee = customer('dee', 1);
sql("SELECT benefits.grant_benefit(c, '$credits') FROM unnest(ARRAY['$cy', '$dee']::uuid[]) c");
sql("SELECT benefits.record_usage(c, '$meter', 90) FROM unnest(ARRAY['$cy', '$dee']::uuid[]) c");
idle();
my @cy = to('cy@example.com');
is(scalar(@cy), 2, 'Cy: the benefits message, then the low balance');
is($cy[1]{headers}{Subject}, 'Your Tokens credits are running low', 'credits low');
like(part($cy[1], 'text/plain'), qr/Your balance of Tokens is 10, below 20\./, 'with the balance and threshold');
is(scalar(to('dee@example.com')), 1, 'Dee opted out: the benefits message only');
sql("UPDATE benefits.organizations SET email_disabled = '{credits_low}' WHERE id = '$org'");
sql("SELECT benefits.record_usage('$cy', '$meter', 1)");
is(sql("SELECT count(*) FROM benefits.outbox WHERE action = 'credits_low'"), '1', 'an organization that turned credits_low off sends none');

# A license key expiring within benefits.license_expiry_warning_before (7
# days by default): one message per expiry.
my $expiring = sql(qq{SELECT id FROM benefits.create_benefit('license_keys', '$org', 'Yearly license',
    '{"expires": {"ttl": 1, "timeframe": "year"}}')});
my $kim = customer('kim');
sql("SELECT benefits.grant_benefit('$kim', '$expiring')");
sql("SELECT benefits.run_maintenance()");
is(sql("SELECT count(*) FROM benefits.outbox WHERE action = 'license_expiring'"), '0', 'a key expiring in a year: no warning');
sql("UPDATE benefits.license_keys SET expires_at = now() + interval '3 days' WHERE customer_id = '$kim'");
sql("SELECT benefits.run_maintenance()");
sql("SELECT benefits.run_maintenance()");
is(sql("SELECT count(*) FROM benefits.outbox WHERE action = 'license_expiring'"), '1', 'three days before: one warning, even after two runs');
idle();
my @kim = to('kim@example.com');
my $kim_key = sql("SELECT key FROM benefits.license_keys WHERE customer_id = '$kim'");
my $expires = sql("SELECT to_char(expires_at AT TIME ZONE 'UTC', 'FMDD Mon YYYY HH24:MI') FROM benefits.license_keys WHERE customer_id = '$kim'");
is($kim[-1]{headers}{Subject}, "Your license key expires on $expires", 'the license_expiring message says when');
like(part($kim[-1], 'text/plain'), qr/== Yearly license ==.*Your license key: \Q$kim_key\E/s, 'with the key');
is(sql("SELECT string_agg(e.url || ' ' || (o.payload #>> '{data,display_key}') || ' ' || ((o.payload #>> '{data,expires_at}')::timestamptz
            = (SELECT expires_at FROM benefits.license_keys WHERE customer_id = '$kim')), ',')
          FROM benefits.outbox o JOIN benefits.webhook_endpoints e ON e.id = o.endpoint_id
         WHERE o.event_type = 'license_key.expiring'"),
	'https://hooks.example.com/asks ' . sql("SELECT display_key FROM benefits.license_keys WHERE customer_id = '$kim'") . ' true',
	'one license_key.expiring event, only to the endpoint that lists it, with the display key (never the key) and the expiry');

# A past_due subscription whose past_due_at is unknown (cleared by the
# application) has no known end of access: no warning, however often
# run_maintenance runs (with it the end moved with the clock, and every run
# warned again).
sql("UPDATE benefits.organizations SET grace_period = interval '30 minutes' WHERE id = '$org'");
my $pat = customer('pat');
my $sub_p = sql("INSERT INTO benefits.subscriptions (customer_id, product_id, status, current_period_end)
    VALUES ('$pat', '$pro', 'active', now() + interval '30 days') RETURNING id");
sql("UPDATE benefits.subscriptions SET status = 'past_due' WHERE id = '$sub_p'");
sql("UPDATE benefits.subscriptions SET past_due_at = NULL WHERE id = '$sub_p'");
sql("SELECT benefits.run_maintenance()") for 1 .. 3;
is(sql("SELECT count(*) FROM benefits.outbox WHERE action = 'revocation_warning' AND payload->>'subscription_id' = '$sub_p'"),
	'0', 'past_due without past_due_at: no warning after three runs');

# A display name far longer than a header line may be is folded into encoded
# words: every header line of the message stays within RFC 5322's 998 octets.
my $long = 'L' x 1200;
my $lee = sql("INSERT INTO benefits.customers (organization_id, external_id, email, name)
    VALUES ('$org', 'lee', 'lee\@example.com', '$long') RETURNING id");
sql("SELECT benefits.grant_benefit('$lee', '$note')");
idle();
my ($lee_mail) = to('lee@example.com');
# (Python's parser of address headers keeps a space between adjacent encoded
# words of a display name, which RFC 2047 says to drop: compared without them.)
(my $lee_to = $lee_mail->{headers}{To}) =~ s/ (?=L)//g;
is($lee_to, "$long <lee\@example.com>", 'the long name arrives whole');
my ($longest) = sort { $b <=> $a } map { length } map { split /\r?\n/, $_ } values %{ $lee_mail->{raw_headers} };
cmp_ok($longest, '<=', 998, "and no header line is longer than 998 octets ($longest)");

# The address guard applies to the SMTP server as to every connection: with
# benefits.allow_private_network off, loopback is refused and nothing is sent.
sql("ALTER SYSTEM SET benefits.allow_private_network = off");
sql("SELECT pg_reload_conf()");
sleep 1;
my $before = scalar($smtp->messages);
my $eve = customer('eve');
sql("SELECT benefits.grant_benefit('$eve', '$note')");
is(wait_q("SELECT state FROM benefits.outbox WHERE kind = 'email' AND payload->>'customer_id' = '$eve'", 'dead'),
	'dead', 'allow_private_network off: the message to a loopback SMTP server is dead');
like(sql("SELECT last_error FROM benefits.outbox WHERE kind = 'email' AND payload->>'customer_id' = '$eve'"),
	qr/refused to connect to 127\.0\.0\.1/, 'refused by the address guard');
is(scalar($smtp->messages), $before, 'and the server received nothing');

$node->stop;
$smtp->stop;
done_testing();
