# Upgrade 0.1.0 -> 0.2.0.  A database set up through the 0.1.0 API (a
# product carrying one benefit of every type, a webhook endpoint, a customer
# with linked GitHub and Discord accounts, an active subscription, a license
# key validated and activated, every job delivered to the mock providers) is
# upgraded with ALTER EXTENSION benefits UPDATE; its old data keeps working
# end to end (the key validates, a cancellation revokes and the worker sends
# the revocations, the meter balance reads, a new subscription is granted),
# and its schema equals a fresh 0.2.0 install in another database of the same
# node, compared as pg_dump --schema-only --binary-upgrade (binary-upgrade
# mode because a plain dump leaves out extension members).  An empty
# database also goes 0.1.0 -> 0.2.0 and drops cleanly.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use BenefitsNode;
use MockProviders;
use HTTP::Tiny;

my $started = time();
my $timeout = 30;    # seconds, for every wait below

my $mock = MockProviders->new('upgrade');
my $url = $mock->url;
my $node = BenefitsNode::new_node('upgrade', conf => qq{
benefits.github_api_url = '$url'
benefits.github_token = 'ghp_test'
benefits.discord_api_url = '$url/api/v10'
benefits.discord_bot_token = 'bot_test'
benefits.http_timeout = '2s'
benefits.retry_initial_delay = '100ms'
benefits.retry_max_delay = '1s'
benefits.maintenance_interval = '1s'
benefits.github_oauth_url = '$url'
benefits.github_oauth_client_id = 'gh-client'
benefits.github_oauth_client_secret = 'gh-secret'
});
$node->start;

sub sql { return $node->safe_psql('postgres', $_[0]); }
sub wait_q { return MockProviders::wait_for($node, 'postgres', $_[0], $_[1], $timeout); }
# The requests the mock logged since $since matching method, path and an
# optional filter, waiting (bounded) until there are at least $want: the mock
# logs a request just after answering it, so a job can be done a moment
# before its request is in the log.
sub seen
{
	my ($method, $path, $since, $want, $filter) = @_;
	$filter //= sub { 1 };
	my @r;
	my $deadline = time() + $timeout;
	while (1)
	{
		@r = grep { $_->{method} eq $method && $_->{path} =~ $path && $_->{t} >= $since && $filter->($_) }
		  $mock->requests;
		last if @r >= $want || time() > $deadline;
		Time::HiRes::usleep(50_000);
	}
	return @r;
}
# Jobs not finished yet, and dead ones.
my $busy = "SELECT count(*) FROM benefits.outbox WHERE state IN ('pending', 'running')";
my $dead = "SELECT count(*) FROM benefits.dead_jobs";

# Schema-only binary-upgrade dump of a database, normalised (see below).
my $dumpdir = PostgreSQL::Test::Utils::tempdir('dumps');
sub normalised_dump
{
	my ($db) = @_;
	my $raw = "$dumpdir/$db.raw.sql";
	$node->run_log([ 'pg_dump', '--schema-only', '--binary-upgrade', '-h', $node->host, '-p', $node->port,
		'-d', $db, '-f', $raw ])
	  or die "pg_dump of $db failed";
	my @lines;
	for (split /\n/, slurp_file($raw))
	{
		# per-run or per-database values, not schema: the \restrict key,
		# OIDs and frozen xids that pg_upgrade carries over, the versions
		# in the header
		next if /^\\(un)?restrict/;
		next if /binary_upgrade_set_next_/;
		next if /relfrozenxid/;
		next if /^WHERE oid = /;
		next if /^UPDATE pg_catalog\.pg_class$/;
		next if /^-- Dumped (from database|by pg_dump) version /;
		# Binary-upgrade mode dumps sequence data even with --schema-only
		# (pg_upgrade needs it): the current value of every sequence and
		# identity column is data, so it is masked; the sequences'
		# definitions (START, INCREMENT, ...) are kept and compared.
		s/^(SELECT pg_catalog\.setval\('[^']*', )\d+, (?:true|false)\);$/$1<value>);/;
		push @lines, $_;
	}
	my $file = "$dumpdir/$db.sql";
	open(my $fh, '>', $file) or die "$file: $!";
	print $fh join("\n", @lines), "\n";
	close $fh;
	return (join("\n", @lines) . "\n", $file, slurp_file($raw));
}

# ok() when the normalised dump of database $db equals the fresh install's;
# otherwise the unified diff of the two explains the failure.
sub same_schema_as_fresh
{
	my ($db, $what, $fresh, $fresh_file) = @_;
	my ($dump, $file) = normalised_dump($db);
	return 1 if ok($dump eq $fresh, "$what: the schema equals a fresh 0.2.0 install's (normalised pg_dump --schema-only --binary-upgrade)");
	my ($diff) = PostgreSQL::Test::Utils::run_command(
		[ 'diff', '-u', '--label', 'fresh 0.2.0', '--label', "$what ($db)", $fresh_file, $file ]);
	my @d = split /\n/, $diff;
	diag(join("\n", @d > 300 ? (@d[0 .. 299], '... (' . (@d - 300) . ' more lines)') : @d));
	return 0;
}

# The reference: a fresh 0.2.0 install in a database of its own.
$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('fresh', 'CREATE EXTENSION benefits');
is($node->safe_psql('fresh', "SELECT extversion FROM pg_extension WHERE extname = 'benefits'"), '0.2.0',
	'fresh database: 0.2.0 installed');
my ($fresh, $fresh_file) = normalised_dump('fresh');
like($fresh, qr/binary_upgrade_create_empty_extension\('benefits'/, 'the dump has the extension and its members');

# --- An empty database: 0.1.0, UPDATE TO '0.2.0', DROP EXTENSION -----------

# DROP EXTENSION leaves the schema benefits behind, empty: CREATE EXTENSION
# made it for the control file's "schema", so it is no member.  An upgraded
# install must drop to exactly what a fresh 0.2.0 install drops to.
$node->safe_psql('postgres', 'CREATE DATABASE empty');
$node->safe_psql('empty', "CREATE EXTENSION benefits VERSION '0.1.0'");
is($node->safe_psql('empty', "SELECT extversion FROM pg_extension WHERE extname = 'benefits'"), '0.1.0',
	'empty database: 0.1.0 installs');
my ($rc, $out, $err) = $node->psql('empty', "ALTER EXTENSION benefits UPDATE TO '0.2.0'");
is($rc . $err, '0', "empty database: ALTER EXTENSION benefits UPDATE TO '0.2.0' succeeds");
is($node->safe_psql('empty', "SELECT extversion FROM pg_extension WHERE extname = 'benefits'"), '0.2.0',
	'empty database: now 0.2.0');
same_schema_as_fresh('empty', 'upgraded empty database', $fresh, $fresh_file);
($rc, $out, $err) = $node->psql('empty', 'DROP EXTENSION benefits');
is($rc . $err, '0', 'empty database: DROP EXTENSION succeeds');
my $leftovers = q{
SELECT (SELECT count(*) FROM pg_extension WHERE extname = 'benefits') || ','
    || (SELECT count(*) FROM pg_depend WHERE refclassid = 'pg_extension'::regclass
           AND refobjid NOT IN (SELECT oid FROM pg_extension)) || ','
    || (SELECT count(*) FROM pg_depend WHERE refclassid = 'pg_namespace'::regclass
           AND refobjid = (SELECT oid FROM pg_namespace WHERE nspname = 'benefits'))};
is($node->safe_psql('empty', $leftovers), '0,0,0', 'empty database: no extension, no member, nothing in schema benefits');
my ($after_upgraded_drop) = normalised_dump('empty');
$node->safe_psql('empty', 'DROP SCHEMA benefits');
$node->safe_psql('empty', 'CREATE EXTENSION benefits');
$node->safe_psql('empty', 'DROP EXTENSION benefits');
my ($after_fresh_drop) = normalised_dump('empty');
is($after_upgraded_drop, $after_fresh_drop,
	'empty database: after DROP EXTENSION its dump is the same as after dropping a fresh 0.2.0 install');
$node->safe_psql('postgres', 'DROP DATABASE empty');

# --- (a) 0.1.0 with data, every job delivered --------------------------------

sql("CREATE EXTENSION benefits VERSION '0.1.0'");
is(sql("SELECT extversion FROM pg_extension WHERE extname = 'benefits'"), '0.1.0', '0.1.0 installed in postgres');

my $org = sql("INSERT INTO benefits.organizations (name) VALUES ('Acme Upgrade') RETURNING id");
my ($ep, $secret) = split /\|/, sql(qq{
SELECT id, secret FROM benefits.create_webhook_endpoint('$org', '$url/hooks/acme',
    ARRAY['benefit_grant.created', 'benefit_grant.updated', 'benefit_grant.revoked'])});
$mock->control(secrets => { '/hooks/acme' => $secret });
my $meter = sql("INSERT INTO benefits.meters (organization_id, name) VALUES ('$org', 'API calls') RETURNING id");
my $guild = '613425648685547541';
my $role = '613425648685547550';
my %benefit = (
	license_keys => sql(qq{SELECT id FROM benefits.create_benefit('license_keys', '$org', 'App license',
    '{"prefix": "UPG", "expires": false, "activations": {"limit": 3, "enable_customer_admin": true}, "limit_usage": false}')}),
	github_repository => sql(qq{SELECT id FROM benefits.create_benefit('github_repository', '$org', 'Source',
    '{"repository_owner": "acme", "repository_name": "engine", "permission": "push"}')}),
	discord => sql(qq{SELECT id FROM benefits.create_benefit('discord', '$org', 'Community',
    '{"guild_id": "$guild", "role_id": "$role"}')}),
	downloadable => sql(qq{SELECT id FROM benefits.create_benefit('downloadable', '$org', 'Files',
    '{"files": [{"name": "manual.pdf", "size": 2048}]}')}),
	meter_credits => sql(qq{SELECT id FROM benefits.create_benefit('meter_credits', '$org', 'Credits',
    '{"meter_id": "$meter", "units": 100}')}),
	custom => sql(qq{SELECT id FROM benefits.create_benefit('custom', '$org', 'Support',
    '{"note": "Write to **support\@acme.test**."}')}));
my @types = sort keys %benefit;
my $product = sql("INSERT INTO benefits.products (organization_id, name, external_id) VALUES ('$org', 'Pro', 'pro') RETURNING id");
sql("SELECT benefits.update_product_benefits('$product', ARRAY['" . join("', '", map { $benefit{$_} } @types) . "']::uuid[])");
is(sql("SELECT string_agg(b.type, ',' ORDER BY b.type) FROM benefits.product_benefits pb
         JOIN benefits.benefits b ON b.id = pb.benefit_id WHERE pb.product_id = '$product'"),
	join(',', @types), 'the product carries one benefit of every type');

my $cust = sql("INSERT INTO benefits.customers (organization_id, external_id, email) VALUES ('$org', 'user-1', 'u1\@example.com') RETURNING id");
sql("SELECT benefits.link_account('$cust', 'github', '583231', 'octo-cat')");
sql("SELECT benefits.link_account('$cust', 'discord', '80351110224678912', 'nelly', 'oauth-token-80351110224678912')");
my $sub = sql(qq{INSERT INTO benefits.subscriptions (customer_id, product_id, status, current_period_end)
  VALUES ('$cust', '$product', 'active', now() + interval '30 days') RETURNING id});

is(wait_q("SELECT count(*) FILTER (WHERE state = 'active') || '/' || count(*) FROM benefits.grants WHERE subscription_id = '$sub'", '6/6'),
	'6/6', '0.1.0: the subscription grants all six benefits, GitHub and Discord confirmed by the providers');
my $key = sql("SELECT key FROM benefits.license_keys WHERE customer_id = '$cust'");
like($key, qr/^UPG-/, "0.1.0: a license key is issued ($key)");
is(sql("SELECT code FROM benefits.validate_license('$key', '$org')"), 'valid', '0.1.0: the key validates');
my ($act_code, $act) = split /\|/, sql(qq{
SELECT code, activation_id FROM benefits.activate_license('$key', '$org', 'laptop', '{"machine": "m1"}')});
is($act_code, 'activated', '0.1.0: the key is activated once');
is(sql(qq{SELECT code FROM benefits.validate_license('$key', '$org', activation_id => '$act', conditions => '{"machine": "m1"}')}),
	'valid', '0.1.0: the key validates with its activation');
is(sql("SELECT benefits.record_usage('$cust', '$meter', 10)"), '90', '0.1.0: 100 credits granted, 10 used');

is(wait_q("$busy", '0'), '0', '0.1.0: the outbox is drained');
is(sql("SELECT count(*) FILTER (WHERE state <> 'done') || ':' || (count(*) > 0) FROM benefits.outbox"), '0:true',
	'0.1.0: every job is done');
ok(scalar(seen('PUT', qr{^/repos/acme/engine/collaborators/octo-cat$}, 0, 1)), '0.1.0: GitHub PUT collaborator octo-cat seen');
ok(scalar(seen('PUT', qr{^/api/v10/guilds/$guild/members/80351110224678912$}, 0, 1)), '0.1.0: Discord PUT member seen');
is_deeply($mock->state->{members}{$guild}{80351110224678912}, [$role], '0.1.0: the member has the role');
my $hooks = sql("SELECT count(*) FROM benefits.outbox WHERE kind = 'webhook' AND state = 'done'");
ok($hooks >= 8, "0.1.0: $hooks webhook deliveries done (6 created, 2 updated)");
is(scalar(seen('POST', qr{^/hooks/acme$}, 0, $hooks, sub { $_[0]{signature_valid} })), $hooks,
	'0.1.0: the mock received them all, validly signed');

# --- (b) the upgrade -----------------------------------------------------------

($rc, $out, $err) = $node->psql('postgres', 'ALTER EXTENSION benefits UPDATE');
is($rc . $err, '0', 'ALTER EXTENSION benefits UPDATE succeeds under the running worker');
is(sql("SELECT extversion FROM pg_extension WHERE extname = 'benefits'"), '0.2.0', 'the extension is now 0.2.0');

# --- (c) the old data keeps working ------------------------------------------

is(sql("SELECT code FROM benefits.validate_license('$key', '$org')"), 'valid', 'upgraded: the old key still validates');
is(sql(qq{SELECT code FROM benefits.validate_license('$key', '$org', activation_id => '$act', conditions => '{"machine": "m1"}')}),
	'valid', 'upgraded: with its old activation too');
is(sql(qq{SELECT code || ':' || activations FROM benefits.activate_license('$key', '$org', 'desktop', '{"machine": "m2"}')}),
	'activated:2', 'upgraded: a second activation of the old key');
# Machines and offline licenses on 0.1.0's key and activation.
is(sql(qq{SELECT code || ':' || activations FROM benefits.activate_license('$key', '$org', 'tablet', fingerprint => 'fp-upg')}),
	'activated:3', 'upgraded: a fingerprint activation of the old key');
is(sql(qq{SELECT code || ':' || activations FROM benefits.activate_license('$key', '$org', 'tablet again', fingerprint => 'fp-upg')}),
	'activated:3', 'upgraded: the same fingerprint returns its activation, no new seat');
is(sql(qq{SELECT code FROM benefits.heartbeat_license('$key', '$org', '$act')}), 'valid',
	'upgraded: the 0.1.0 activation takes heartbeats');
like(sql(qq{SELECT benefits.checkout_license('$key', '$org', '$act')}), qr/^-----BEGIN BENEFITS LICENSE-----\n/,
	'upgraded: the old key and activation check out a license file');
is(sql(qq{SELECT benefits.deactivate_license('$key', '$org', '$act')}), 't', 'upgraded: the 0.1.0 activation is deactivated');
is(sql(qq{SELECT deactivated_at IS NOT NULL FROM benefits.license_key_activations WHERE id = '$act'}), 't',
	'upgraded: ... and kept as history');
is(sql(qq{SELECT code FROM benefits.validate_license('$key', '$org', activation_id => '$act', conditions => '{"machine": "m1"}')}),
	'activation_not_found', 'upgraded: a deactivated activation no longer validates');
is(sql("SELECT benefits.meter_balance('$cust', '$meter')"), '90', 'upgraded: the meter balance reads');
is(sql("SELECT benefits.record_usage('$cust', '$meter', 5)"), '85', 'upgraded: usage is recorded on it');

# Cancellation with its period ended: every grant of the subscription is revoked.
$mock->control(accept_invitations => JSON::PP::true);    # so revoking removes a collaborator
my $t_cancel = time();
sql(qq{UPDATE benefits.subscriptions SET status = 'canceled', canceled_at = now(), ended_at = now(),
         current_period_end = now() WHERE id = '$sub'});
is(sql("SELECT string_agg(DISTINCT state, ',') || ':' || count(*) FROM benefits.grants WHERE subscription_id = '$sub'"),
	'revoked:6', 'upgraded: canceling with the period ended revokes all six grants');
is(sql("SELECT status FROM benefits.license_keys WHERE customer_id = '$cust'"), 'revoked', 'upgraded: the license key is revoked');
is(sql("SELECT code FROM benefits.validate_license('$key', '$org')"), 'revoked', 'upgraded: validation says so');
is(wait_q($busy, '0'), '0', 'upgraded: the revocation jobs are done');
is(sql($dead), '0', 'upgraded: no dead job');
ok(scalar(seen('DELETE', qr{^/repos/acme/engine/collaborators/octo-cat$}, $t_cancel, 1)),
	'upgraded: GitHub DELETE collaborator octo-cat seen');
ok(scalar(seen('DELETE', qr{^/api/v10/guilds/$guild/members/80351110224678912/roles/$role$}, $t_cancel, 1)),
	'upgraded: Discord DELETE role seen');
my $state = $mock->state;
ok(!exists $state->{collaborators}{'acme/engine'}{'octo-cat'}, 'upgraded: octo-cat is no collaborator any more');
is_deeply($state->{members}{$guild}{80351110224678912}, [], 'upgraded: the member lost the role');
my @revoked = seen('POST', qr{^/hooks/acme$}, $t_cancel, 6,
	sub { $_[0]{body} =~ /"type": "benefit_grant\.revoked"/ && $_[0]{signature_valid} });
is(scalar(@revoked), 6, 'upgraded: six signed benefit_grant.revoked webhooks delivered');
is(sql("SELECT benefits.meter_balance('$cust', '$meter') || ':' || string_agg(units::text, ',')
         FROM benefits.meter_credits WHERE customer_id = '$cust' AND reason = 'revoke'"), '0:-85',
	'upgraded: the meter balance reads 0 after the revoke, which took the 85 credits left');

# A new customer subscribing after the upgrade is granted everything.
my $cust2 = sql("INSERT INTO benefits.customers (organization_id, external_id) VALUES ('$org', 'user-2') RETURNING id");
sql("SELECT benefits.link_account('$cust2', 'github', '583232', 'hub-ot')");
sql("SELECT benefits.link_account('$cust2', 'discord', '80351110224678913', 'zed', 'oauth-token-80351110224678913')");
my $t_new = time();
my $sub2 = sql("INSERT INTO benefits.subscriptions (customer_id, product_id, status) VALUES ('$cust2', '$product', 'active') RETURNING id");
is(wait_q("SELECT count(*) FILTER (WHERE state = 'active') || '/' || count(*) FROM benefits.grants WHERE subscription_id = '$sub2'", '6/6'),
	'6/6', 'upgraded: a new subscription is granted all six benefits, GitHub and Discord confirmed');
my $key2 = sql("SELECT key FROM benefits.license_keys WHERE customer_id = '$cust2'");
is(sql("SELECT code FROM benefits.validate_license('$key2', '$org')"), 'valid', 'upgraded: its new key validates');
is(sql("SELECT benefits.meter_balance('$cust2', '$meter')"), '100', 'upgraded: its credits are granted');
is(wait_q($busy, '0'), '0', 'upgraded: its jobs are done');
ok(scalar(seen('PUT', qr{^/repos/acme/engine/collaborators/hub-ot$}, $t_new, 1)),
	'upgraded: GitHub PUT collaborator hub-ot seen');
is_deeply($mock->state->{members}{$guild}{80351110224678913}, [$role], 'upgraded: Discord member joined with the role');
is(sql($dead), '0', 'no dead job at all');
is(sql("SELECT count(*) FROM benefits.outbox WHERE state <> 'done'"), '0', 'every job of the test is done');

# 0.2.0's new type on the old product reaches its old holder.
my $ff = sql(qq{SELECT id FROM benefits.create_benefit('feature_flag', '$org', 'Export', '{}', metadata => '{"feature": "export_pdf"}')});
sql(qq{SELECT benefits.update_product_benefits('$product',
    ARRAY(SELECT benefit_id FROM benefits.product_benefits WHERE product_id = '$product' ORDER BY position) || '$ff'::uuid)});
is(sql("SELECT benefits.has_feature('$cust2', 'export_pdf')"), 't', 'upgraded: a feature flag added to the old product reaches its holder');
is(wait_q($busy, '0'), '0', 'upgraded: and its events are delivered');

# 0.2.0's account linking on upgraded data: the account linked under 0.1.0
# reads as linked, and a customer relinks GitHub through the portal.
my $token_old = sql("SELECT benefits.create_customer_session('$org', 'user-1')");
is(sql("SELECT status || ':' || username FROM benefits.portal_link_status('$token_old') WHERE platform = 'github'"),
	'linked:octo-cat', 'upgraded: the GitHub account linked under 0.1.0 reads as linked');
my $token2 = sql("SELECT benefits.create_customer_session('$org', 'user-2')");
$mock->control(oauth_users => { github => { id => 583299, login => 'octo-new' }, discord => { id => '80351110224678913', username => 'zed' } });
my $authorize = sql("SELECT benefits.portal_link_url('$token2', 'github', 'https://app.example/oauth/callback')");
my ($code, $link_state) = (HTTP::Tiny->new(max_redirect => 0)->get($authorize)->{headers}{location} // '') =~ /code=(\w+)&state=([\w-]+)/;
my $t_link = time();
is(sql("SELECT benefits.portal_link_callback('$token2', '$link_state', '$code')"), 'pending', 'upgraded: the OAuth callback queues the exchange');
is(wait_q("SELECT username FROM benefits.customer_accounts WHERE customer_id = '$cust2' AND platform = 'github'", 'octo-new'),
	'octo-new', 'upgraded: the worker links the account the customer signed in with');
is(wait_q($busy, '0'), '0', 'upgraded: the relink jobs are done');
ok(scalar(seen('DELETE', qr{^/repos/acme/engine/invitations/\d+$}, $t_link, 1))
	  && scalar(seen('PUT', qr{^/repos/acme/engine/collaborators/octo-new$}, $t_link, 1)),
	'upgraded: hub-ot\'s pending invitation is deleted and octo-new invited');
ok(!exists $mock->state->{invitations}{'acme/engine'}{'hub-ot'}, 'upgraded: hub-ot has no invitation left');

# --- (d) the upgraded schema equals a fresh 0.2.0 install (database fresh) ----

my ($upgraded, $upgraded_file, $upgraded_raw) = normalised_dump('postgres');
my $outbox_seq = sql("SELECT last_value FROM benefits.outbox_id_seq");
like($upgraded_raw, qr/setval\('benefits\.outbox_id_seq', $outbox_seq, true\)/,
	"the raw dump carries the outbox sequence's current value ($outbox_seq), data that the comparison masks");
# Nothing of the data written above appears in the compared text.
my @leaks = grep { index($upgraded, $_) >= 0 } ($org, $cust, $cust2, $sub, $key, $key2, $secret, 'octo-cat', 'Acme Upgrade');
is_deeply(\@leaks, [], 'no data value of the upgraded database is in its normalised dump');
same_schema_as_fresh('postgres', 'upgraded database with data', $fresh, $fresh_file);

$node->stop;
$mock->stop;
note(sprintf('070_upgrade ran in %.1f s', time() - $started));
done_testing();
