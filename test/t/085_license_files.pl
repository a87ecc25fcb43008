# Signed offline licenses against an implementation this project did not
# write: Node's own crypto (Ed25519 through OpenSSL) runs the README's Node
# verification code, extracted from README.md, on 1,000 checked-out files
# (every one valid, its payload naming the key it was issued for) and on
# tampered, wrong-key and expired files, which must all fail.  Key rotation
# keeps files signed before it verifiable through license_public_keys.  The
# README's C/libsodium snippet is compiled and run on the same files.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use JSON::PP;
use MIME::Base64;
use BenefitsNode;

my $root = $ENV{BENEFITS_ROOT};
my $dir = PostgreSQL::Test::Utils::tempdir('license_files');
my $json = JSON::PP->new->utf8->canonical;

# ---- the README's snippets, as written there
open(my $readme_fh, '<', "$root/README.md") or die "README.md: $!";
my @readme = <$readme_fh>;
close $readme_fh;
# An indented code block of the README from the line starting with $first
# up to the first line that is exactly $last (both included), unindented.
sub readme_block
{
	my ($first, $last) = @_;
	my ($from) = grep { $readme[$_] =~ /^    \Q$first\E/ } 0 .. $#readme;
	die "README has no block starting with $first" unless defined $from;
	my @lines;
	for my $i ($from .. $#readme)
	{
		(my $line = $readme[$i]) =~ s/^    //;
		push @lines, $line;
		last if $readme[$i] eq "    $last\n";
	}
	return join('', @lines);
}
my $node_snippet = readme_block('// verify-license.mjs', '}');
my $c_snippet = readme_block('/* license_verify.c', '}');
like($node_snippet, qr/crypto\.verify|verify\(null, payload, key/, 'the README has the Node verification code');
like($c_snippet, qr/crypto_sign_verify_detached/, 'the README has the C/libsodium verification code');
open(my $fh, '>', "$dir/verify-license.mjs") or die;
print $fh $node_snippet;
close $fh;

# The driver: each case {file, keys, now?} through verifyLicense, answered
# {ok, license} or {ok: false, error}.
open($fh, '>', "$dir/driver.mjs") or die;
print $fh <<'JS';
import { readFileSync } from 'node:fs';
import { verifyLicense } from './verify-license.mjs';
const cases = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const out = cases.map((c) => {
  try {
    return { ok: true, license: verifyLicense(c.file, c.keys, c.now ? new Date(c.now) : undefined) };
  } catch (e) {
    return { ok: false, error: String(e.message || e) };
  }
});
process.stdout.write(JSON.stringify(out));
JS
close $fh;

# Runs the cases through Node's crypto; returns the answers.
sub node_verify
{
	my ($cases) = @_;
	open(my $cfh, '>', "$dir/cases.json") or die;
	print $cfh $json->encode($cases);
	close $cfh;
	my $out = `node '$dir/driver.mjs' '$dir/cases.json' 2>&1`;
	die "node failed: $out" if $? != 0;
	return $json->decode($out);
}

# The C snippet with a main reading payload, sig and public key (base64) as arguments.
open($fh, '>', "$dir/license_verify.c") or die;
print $fh $c_snippet;
close $fh;
open($fh, '>', "$dir/main.c") or die;
print $fh <<'C';
#include <stdio.h>
#include <stddef.h>
int license_verify(const char *payload_b64, const char *sig_b64, const char *public_key_b64,
                   unsigned char *payload, size_t payload_max, size_t *payload_len);
int main(int argc, char **argv)
{
    static unsigned char payload[65536];
    size_t len = 0;
    if (argc != 4)
        return 2;
    puts(license_verify(argv[1], argv[2], argv[3], payload, sizeof payload, &len) ? "valid" : "invalid");
    return 0;
}
C
close $fh;
my $cc = `cc -Wall -Werror -o '$dir/license_verify' '$dir/main.c' '$dir/license_verify.c' -lsodium 2>&1`;
is($?, 0, "the README's C snippet compiles against libsodium") or diag($cc);

# ---- a cluster with 1,000 keys
my $node = BenefitsNode::new_node('license_files');
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION benefits');
sub sql { return $node->safe_psql('postgres', $_[0]); }
my $org = '00000000-0000-4000-8000-0000000f0001';
my $other = '00000000-0000-4000-8000-0000000f0002';
sql(qq{
INSERT INTO benefits.organizations (id, name) VALUES ('$org', 'Files'), ('$other', 'Other');
INSERT INTO benefits.customers (organization_id, email)
SELECT '$org', 'c' || n || '\@example.com' FROM generate_series(1, 1000) n;
SELECT id AS ben FROM benefits.create_benefit('license_keys', '$org', 'Desktop', '{"prefix": "FILE", "activations": 2}') \\gset
SELECT benefits.grant_benefit_bulk(array_agg(id), :'ben') FROM benefits.customers WHERE organization_id = '$org';
SELECT id AS flag FROM benefits.create_benefit('feature_flag', '$org', 'PDF', '{}', metadata => '{"feature": "export_pdf"}') \\gset
SELECT benefits.grant_benefit(id, :'flag') FROM benefits.customers WHERE organization_id = '$org' AND email = 'c1\@example.com';
});
is(sql("SELECT count(*) FROM benefits.license_keys WHERE organization_id = '$org' AND status = 'granted'"),
	1000, '1,000 keys granted');
# Ten of them checked out for an activation with a fingerprint.
sql(qq{SELECT benefits.activate_license(key, '$org', 'machine ' || id, fingerprint => 'fp-' || id)
         FROM benefits.license_keys WHERE organization_id = '$org' ORDER BY id LIMIT 10});

# Returns {kid: public key} of an organization's listed keys.
sub public_keys
{
	return $json->decode(sql(qq{SELECT coalesce(json_object_agg(kid, public_key), '{}')
	                              FROM benefits.license_public_keys('$_[0]')}));
}
# Checks out every key: [{id, key, activation_id, file}].
sub checkout_all
{
	my ($ttl) = @_;
	return $json->decode(sql(qq{
SELECT json_agg(json_build_object('id', k.id, 'display_key', k.display_key, 'customer_id', k.customer_id,
                                  'activation_id', a.id, 'fingerprint', a.fingerprint,
                                  'file', benefits.checkout_license(k.key, '$org', a.id, ttl => '$ttl'))
                ORDER BY k.id)
  FROM benefits.license_keys k LEFT JOIN benefits.license_key_activations a ON a.license_key_id = k.id
 WHERE k.organization_id = '$org'}));
}

my $files = checkout_all('1 day');
my $keys = public_keys($org);
is(scalar(@$files), 1000, '1,000 files checked out');
is(scalar(keys %$keys), 1, 'the first checkout created one signing key');

# ---- every file verifies with Node's crypto, and says what it was issued for
my $answers = node_verify([ map { { file => $_->{file}, keys => $keys } } @$files ]);
my @valid = grep { $_->{ok} } @$answers;
is(scalar(@valid), 1000, 'Node verifies all 1,000 files')
  or diag(join("\n", map { $_->{error} } grep { !$_->{ok} } @$answers));
my $matching = grep {
	my ($f, $l) = ($files->[$_], $answers->[$_]{license});
	$l && $l->{license_key}{id} eq $f->{id} && $l->{license_key}{display_key} eq $f->{display_key}
	  && $l->{license_key}{customer_id} eq $f->{customer_id} && $l->{organization_id} eq $org
	  && $l->{license_key}{status} eq 'granted' && $l->{license_key}{limit_activations} == 2
	  && (defined $f->{activation_id}
		? ($l->{activation} && $l->{activation}{id} eq $f->{activation_id}
			&& $l->{activation}{fingerprint} eq $f->{fingerprint})
		: !defined $l->{activation})
} 0 .. $#$files;
is($matching, 1000, 'each payload names its own key, customer and activation');
my @with_feature = grep { $_->{license} && @{ $_->{license}{features} } == 1
	  && $_->{license}{features}[0] eq 'export_pdf' } @$answers;
is(scalar(@with_feature), 1, "the one customer holding export_pdf has it in the file's features");

# ---- tampered files fail
# Re-armors an envelope after $edit changed it.
sub rearmor
{
	my ($file, $edit) = @_;
	my ($body) = $file =~ /-----BEGIN BENEFITS LICENSE-----\n(.*)-----END BENEFITS LICENSE-----/s;
	my $envelope = $json->decode(decode_base64($body));
	$edit->($envelope);
	my $b64 = encode_base64($json->encode($envelope), '');
	$b64 =~ s/(.{64})/$1\n/g;
	$b64 .= "\n" unless $b64 =~ /\n$/;
	return "-----BEGIN BENEFITS LICENSE-----\n$b64-----END BENEFITS LICENSE-----\n";
}
my $sample = $files->[0]{file};
my @tampered;
# More activations than sold, in the signed payload.
push @tampered, rearmor($sample, sub {
	my $p = decode_base64($_[0]{payload});
	$p =~ s/"limit_activations":2/"limit_activations":9/ or die 'no limit in payload';
	$_[0]{payload} = encode_base64($p, '');
});
# A later expiry.
push @tampered, rearmor($sample, sub {
	my $p = decode_base64($_[0]{payload});
	$p =~ s/"expires_at":"(\d{4})/'"expires_at":"' . ($1 + 10)/e or die 'no expiry';
	$_[0]{payload} = encode_base64($p, '');
});
# One bit of the signature.
push @tampered, rearmor($sample, sub {
	my $s = decode_base64($_[0]{sig});
	substr($s, 10, 1) = chr(ord(substr($s, 10, 1)) ^ 1);
	$_[0]{sig} = encode_base64($s, '');
});
# Another file's signature on this payload.
push @tampered, rearmor($sample, sub { $_[0]{sig} = $json->decode(decode_base64(
	join('', grep { !/^-----/ } split /\n/, $files->[1]{file})))->{sig}; });
# Every single byte of the payload changed in turn (the first 200 positions).
my $payload0 = decode_base64($json->decode(decode_base64(join('', grep { !/^-----/ } split /\n/, $sample)))->{payload});
for my $i (0 .. 199)
{
	push @tampered, rearmor($sample, sub {
		my $p = $payload0;
		substr($p, $i, 1) = chr(ord(substr($p, $i, 1)) ^ 0x01);
		$_[0]{payload} = encode_base64($p, '');
	});
}
$answers = node_verify([ map { { file => $_, keys => $keys } } @tampered ]);
is(scalar(grep { !$_->{ok} } @$answers), scalar(@tampered), scalar(@tampered) . ' tampered files all fail');
is(scalar(grep { !$_->{ok} && $_->{error} eq 'bad signature' } @$answers), scalar(@tampered),
	'each one on its signature');
# A changed character of the armored text itself fails too (whatever it breaks).
my @flipped;
for my $pos (40, 200, 400, 700)
{
	my $f = $sample;
	my $c = substr($f, $pos, 1);
	next if $c eq "\n" || $c eq '-';
	substr($f, $pos, 1) = $c eq 'A' ? 'B' : 'A';
	push @flipped, $f;
}
$answers = node_verify([ map { { file => $_, keys => $keys } } @flipped ]);
is(scalar(grep { !$_->{ok} } @$answers), scalar(@flipped), 'a changed character of the armored text fails');

# ---- the wrong key fails: another organization's key under the same kid
sql("SELECT benefits.rotate_license_signing_key('$other')");
my $other_keys = public_keys($other);
my ($kid) = keys %$keys;
my ($other_public) = values %$other_keys;
$answers = node_verify([ map { { file => $_->{file}, keys => { $kid => $other_public } } } @$files[0 .. 99] ]);
is(scalar(grep { !$_->{ok} && $_->{error} eq 'bad signature' } @$answers), 100,
	"another organization's public key rejects 100 files");
$answers = node_verify([ { file => $sample, keys => $other_keys } ]);
ok(!$answers->[0]{ok} && $answers->[0]{error} eq 'unknown signing key', 'an unlisted kid is refused');

# ---- expired files fail
my $short = $json->decode(sql(qq{SELECT json_agg(benefits.checkout_license(key, '$org', ttl => '1 second'))
                                   FROM (SELECT key FROM benefits.license_keys WHERE organization_id = '$org' LIMIT 5) k}));
$answers = node_verify([ map { { file => $_, keys => $keys } } @$short ]);
my $fresh = grep { $_->{ok} } @$answers;
sleep 2;
$answers = node_verify([ map { { file => $_, keys => $keys } } @$short ]);
is(scalar(grep { !$_->{ok} && $_->{error} eq 'license file expired' } @$answers), 5,
	'files past their 1-second ttl are expired');
cmp_ok($fresh, '<=', 5, '(checked right after checkout they were at most valid)');
# A one-day file is expired for a verifier whose clock is two days ahead.
$answers = node_verify([ { file => $sample, keys => $keys, now => time() * 1000 + 2 * 86400 * 1000 } ]);
ok(!$answers->[0]{ok} && $answers->[0]{error} eq 'license file expired', 'a 1-day file is expired two days later');
# The key's own expiry clamps the file's.
sql(qq{UPDATE benefits.license_keys SET expires_at = now() + interval '1 hour'
        WHERE id = '$files->[0]{id}'});
my $clamped = sql(qq{SELECT benefits.checkout_license(key, '$org', ttl => '30 days')
                       FROM benefits.license_keys WHERE id = '$files->[0]{id}'});
$answers = node_verify([ { file => $clamped, keys => $keys },
	{ file => $clamped, keys => $keys, now => time() * 1000 + 2 * 3600 * 1000 } ]);
ok($answers->[0]{ok}, 'a file clamped to its key expiry verifies now');
ok(!$answers->[1]{ok} && $answers->[1]{error} eq 'license file expired', '... and is expired once the key is');

# ---- rotation keeps old files verifiable
sql("SELECT benefits.rotate_license_signing_key('$org')");
my $after = checkout_all('1 day');
my $all_keys = public_keys($org);
is(scalar(keys %$all_keys), 2, 'after rotation both public keys are listed');
$answers = node_verify([ map { { file => $_->{file}, keys => $all_keys } } (@$files, @$after) ]);
is(scalar(grep { $_->{ok} } @$answers), 2000, 'files of the old key and the new key all verify');
my %kids = map { ($json->decode(decode_base64(join('', grep { !/^-----/ } split /\n/, $_->{file})))->{kid} => 1) }
  (@$files, @$after);
is(scalar(keys %kids), 2, 'signed by two different kids');
my $current = sql("SELECT kid FROM benefits.license_public_keys('$org') WHERE retired_at IS NULL");
$answers = node_verify([ map { { file => $_->{file}, keys => { $current => $all_keys->{$current} } } } @$files[0 .. 9] ]);
is(scalar(grep { !$_->{ok} } @$answers), 10, 'without the retired key listed, old files would not verify');

# ---- the README's C snippet agrees with Node
my ($c_valid, $c_invalid) = (0, 0);
for my $i (0 .. 49)
{
	my $envelope = $json->decode(decode_base64(join('', grep { !/^-----/ } split /\n/, $after->[$i]{file})));
	my $pk = $all_keys->{ $envelope->{kid} };
	my $out = `'$dir/license_verify' '$envelope->{payload}' '$envelope->{sig}' '$pk'`;
	$c_valid++ if $out eq "valid\n";
	my $bad = $envelope->{sig};
	substr($bad, 5, 1) = substr($bad, 5, 1) eq 'A' ? 'B' : 'A';
	$out = `'$dir/license_verify' '$envelope->{payload}' '$bad' '$pk'`;
	$c_invalid++ if $out eq "invalid\n";
	$out = `'$dir/license_verify' '$envelope->{payload}' '$envelope->{sig}' '$other_public'`;
	$c_invalid++ if $out eq "invalid\n";
}
is($c_valid, 50, "the README's C snippet verifies 50 files");
is($c_invalid, 100, '... and rejects them with a changed signature or the wrong key');

# ---- revocation: no new file; the files already issued run out with their ttl
sql(qq{UPDATE benefits.license_keys SET status = 'disabled' WHERE id = '$files->[2]{id}'});
is(sql(qq{SELECT benefits.checkout_license(key, '$org') IS NULL FROM benefits.license_keys WHERE id = '$files->[2]{id}'}),
	't', 'a disabled key cannot be checked out again');
$answers = node_verify([ { file => $files->[2]{file}, keys => $all_keys } ]);
ok($answers->[0]{ok}, 'a file issued before stays valid offline until it expires (the documented trade-off)');

$node->stop;
done_testing();
