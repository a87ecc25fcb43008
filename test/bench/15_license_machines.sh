#!/usr/bin/env bash
# Offline licenses and heartbeats, each as a ratio against validate_license
# measured in the same run on the same cluster:
#
#  - benefits.checkout_license(key, org) calls per second (a signed Ed25519
#    license file of ~1 KB: the key's direct lookup, the customer's features,
#    the organization's signing key, one signature) against
#    benefits.validate_license(key, org).  Target: >= 0.5.
#  - benefits.heartbeat_license(key, org, activation) calls per second (the
#    key's lookup and one single-row UPDATE of the activation, committed)
#    against validate_license.  Target: >= 0.3.
#
# pgbench, prepared statements, 2 clients, 10,000 imported UUID-shaped keys
# with one activation each, whose key text and activation id are derived from
# pgbench's random number, runs alternated (validate, checkout, heartbeat,
# ...; median of the per-round ratios), and the same ratios by the server
# CPU each call costs, which outside load on a shared machine moves less.
set -euo pipefail

N=${BENCH_MACHINE_KEYS:-10000}
T=${BENCH_SECONDS:-4}
ROUNDS=${BENCH_ROUNDS:-5}
ORG=00000000-0000-0000-0000-0000000bd001
BEN=00000000-0000-0000-0000-0000000bd002
work=$(mktemp -d /tmp/benefits-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

sql() { psql -X -q -A -t -v ON_ERROR_STOP=1 -v org="$ORG" -v ben="$BEN" -v n="$N" "$@"; }
. "$(dirname "$0")/common.sh"

sql <<'SQL'
INSERT INTO benefits.organizations (id, name) VALUES (:'org', 'Machines Bench Org');
INSERT INTO benefits.benefits (id, organization_id, type, description, properties)
VALUES (:'ben', :'org', 'license_keys', 'Bench desktop license',
        '{"prefix": null, "expires": null, "activations": {"limit": 3, "enable_customer_admin": false, "heartbeat": "15 minutes"}, "limit_usage": null}');
INSERT INTO benefits.customers (organization_id, external_id, email)
SELECT :'org', 'm' || n, 'm' || n || '@bench.example' FROM generate_series(1, :n) AS n;
SELECT count(benefits.import_license_key(c.id, :'ben', '00000000-0000-4000-8000-' || lpad(substr(c.external_id, 2), 12, '0')))
  FROM benefits.customers c WHERE c.organization_id = :'org' \g /dev/null
INSERT INTO benefits.license_key_activations (id, license_key_id, label, fingerprint)
SELECT ('00000000-0000-4000-9000-' || right(k.key, 12))::uuid, k.id, 'bench machine', 'fp-' || k.key
  FROM benefits.license_keys k WHERE k.benefit_id = :'ben';
-- The organization's signing key exists before the timed runs.
SELECT benefits.rotate_license_signing_key(:'org') \g /dev/null
VACUUM ANALYZE;
CHECKPOINT;
SQL

# Every call of each workload must succeed: a file, a valid heartbeat.
sql <<'SQL' | grep -qx "1000|1000|1000" || { echo "a workload did not answer as expected" >&2; exit 1; }
SELECT count(*) FILTER (WHERE (benefits.validate_license(k, :'org')).valid),
       count(*) FILTER (WHERE benefits.checkout_license(k, :'org') LIKE '-----BEGIN BENEFITS LICENSE-----%'),
       count(*) FILTER (WHERE (benefits.heartbeat_license(k, :'org', a)).valid)
  FROM (SELECT '00000000-0000-4000-8000-' || lpad(n::text, 12, '0') AS k,
               ('00000000-0000-4000-9000-' || lpad(n::text, 12, '0'))::uuid AS a
          FROM generate_series(1, 1000) n) x;
SQL

cat >"$work/validate.sql" <<PGB
\set n random(1, $N)
SELECT * FROM benefits.validate_license('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'), '$ORG');
PGB
cat >"$work/checkout.sql" <<PGB
\set n random(1, $N)
SELECT benefits.checkout_license('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'), '$ORG');
PGB
cat >"$work/heartbeat.sql" <<PGB
\set n random(1, $N)
SELECT * FROM benefits.heartbeat_license('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'), '$ORG',
                                         ('00000000-0000-4000-9000-' || lpad(:n::text, 12, '0'))::uuid);
PGB

pgbench_cpu validate 2 >/dev/null; pgbench_cpu checkout 2 >/dev/null; pgbench_cpu heartbeat 2 >/dev/null   # warm-up
validates=(); checkouts=(); heartbeats=(); checkout_ratios=(); heartbeat_ratios=()
validate_cpu=(); checkout_cpu=(); heartbeat_cpu=(); checkout_cpu_ratios=(); heartbeat_cpu_ratios=()
for round in $(seq "$ROUNDS"); do
    read -r v vc <<<"$(pgbench_cpu validate "$T")"
    read -r c cc <<<"$(pgbench_cpu checkout "$T")"
    read -r h hc <<<"$(pgbench_cpu heartbeat "$T")"
    validates+=("$v"); checkouts+=("$c"); heartbeats+=("$h")
    validate_cpu+=("$vc"); checkout_cpu+=("$cc"); heartbeat_cpu+=("$hc")
    checkout_ratios+=("$(ratio "$c" "$v")"); heartbeat_ratios+=("$(ratio "$h" "$v")")
    checkout_cpu_ratios+=("$(ratio "$vc" "$cc")"); heartbeat_cpu_ratios+=("$(ratio "$vc" "$hc")")
done
echo "validate_license tps:  ${validates[*]}   (2 clients, prepared, ${T}s runs)"
echo "checkout_license tps:  ${checkouts[*]}"
echo "heartbeat_license tps: ${heartbeats[*]}"
echo "checkout ratio (checkout_license calls/s / validate_license calls/s), per round: ${checkout_ratios[*]}"
echo "checkout ratio, median: $(median "${checkout_ratios[@]}")   (target >= 0.5)"
echo "heartbeat ratio (heartbeat_license calls/s / validate_license calls/s), per round: ${heartbeat_ratios[*]}"
echo "heartbeat ratio, median: $(median "${heartbeat_ratios[@]}")   (target >= 0.3)"
# The server CPU per call (the backends' user and system time) gives the
# ratios the throughputs would have on an otherwise idle machine.
echo "server CPU per call (us): validate_license ${validate_cpu[*]}; checkout_license ${checkout_cpu[*]}; heartbeat_license ${heartbeat_cpu[*]}"
echo "checkout ratio by server CPU per call (validate us / checkout us), median: $(median "${checkout_cpu_ratios[@]}")   (target >= 0.5)"
echo "heartbeat ratio by server CPU per call (validate us / heartbeat us), median: $(median "${heartbeat_cpu_ratios[@]}")   (target >= 0.3)"
sql -c "SELECT format('activations heartbeated: %s of %s', count(*) FILTER (WHERE heartbeat_at IS NOT NULL), count(*))
          FROM benefits.license_key_activations a JOIN benefits.license_keys k ON k.id = a.license_key_id
         WHERE k.benefit_id = '$BEN'"
