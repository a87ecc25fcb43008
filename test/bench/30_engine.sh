#!/usr/bin/env bash
# Grant engine benchmark (run by test/bench/run.sh against database "bench").
#
# 1. Activating N subscriptions (default 10,000) to a product with four
#    benefits (license key, custom, meter credits, GitHub repository) in one
#    UPDATE, against a plain INSERT ... SELECT of the same grant and outbox
#    rows (same tables, same run).  Target: ratio <= 3.
# 2. One subscription status change per transaction through pgbench (2
#    clients), against the same UPDATE on a copy of the table without
#    triggers: runs alternated (plain, engine, ...), median of the per-round
#    ratios of time per change.  Target: <= 6.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
N=${BENCH_SUBSCRIPTIONS:-10000}
SECONDS_PER_RUN=${BENCH_SECONDS:-8}
ROUNDS=${BENCH_ROUNDS:-3}
ORG=0b000000-0000-0000-0000-00000000000a   # pgbench_cpu passes it as :org
psql=(psql -X -q -v ON_ERROR_STOP=1)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"${psql[@]}" -v n="$N" <<'SQL'
DROP SCHEMA IF EXISTS engine_bench CASCADE;
CREATE SCHEMA engine_bench;
INSERT INTO benefits.organizations (id, name) VALUES ('0b000000-0000-0000-0000-00000000000a', 'Engine bench');
INSERT INTO benefits.meters (id, organization_id, name) VALUES
    ('0b000000-0000-0000-0000-0000000000a1', '0b000000-0000-0000-0000-00000000000a', 'calls');
INSERT INTO benefits.products (id, organization_id, name) VALUES
    ('0b000000-0000-0000-0000-0000000000b1', '0b000000-0000-0000-0000-00000000000a', 'Pro');
INSERT INTO benefits.webhook_endpoints (organization_id, url, secret, events) VALUES
    ('0b000000-0000-0000-0000-00000000000a', 'https://hooks.example.com/bench', 'whsec_dGVzdA==',
     ARRAY['benefit_grant.created', 'benefit_grant.revoked', 'benefit_grant.updated', 'benefit_grant.cycled']);
SELECT benefits.update_product_benefits('0b000000-0000-0000-0000-0000000000b1', ARRAY[
    (benefits.create_benefit('license_keys', '0b000000-0000-0000-0000-00000000000a', 'Key',
        '{"prefix": "BENCH", "expires": false, "activations": 3, "limit_usage": false}')).id,
    (benefits.create_benefit('custom', '0b000000-0000-0000-0000-00000000000a', 'Note', '{"note": "Thanks"}')).id,
    (benefits.create_benefit('meter_credits', '0b000000-0000-0000-0000-00000000000a', 'Credits',
        '{"meter_id": "0b000000-0000-0000-0000-0000000000a1", "units": 1000}')).id,
    (benefits.create_benefit('github_repository', '0b000000-0000-0000-0000-00000000000a', 'Repo',
        '{"repository_owner": "acme", "repository_name": "engine", "permission": "pull"}')).id]) \gset
INSERT INTO benefits.customers (id, organization_id, external_id, email)
SELECT gen_random_uuid(), '0b000000-0000-0000-0000-00000000000a', 'user-' || i, 'user' || i || '@example.com'
  FROM generate_series(1, :n) i;
INSERT INTO benefits.customer_accounts (customer_id, platform, account_id, username)
SELECT id, 'github', external_id, external_id FROM benefits.customers
 WHERE organization_id = '0b000000-0000-0000-0000-00000000000a';
INSERT INTO benefits.subscriptions (customer_id, product_id, status)
SELECT id, '0b000000-0000-0000-0000-0000000000b1', 'incomplete' FROM benefits.customers
 WHERE organization_id = '0b000000-0000-0000-0000-00000000000a';
CREATE TABLE engine_bench.ids AS
    SELECT row_number() OVER (ORDER BY id)::int AS n, id FROM benefits.subscriptions
     WHERE organization_id = '0b000000-0000-0000-0000-00000000000a';
ALTER TABLE engine_bench.ids ADD PRIMARY KEY (n);
VACUUM ANALYZE;
SQL

cpu_ticks_sql engine_bench | "${psql[@]}"

# Wall-clock and CPU milliseconds of a statement, rolled back (common.sh).
timed() {  # timed SQL -> "wall_ms cpu_ms"
    timed_rolled_back engine_bench "" "$1"
}

activate="UPDATE benefits.subscriptions SET status = 'active'
 WHERE organization_id = '0b000000-0000-0000-0000-00000000000a' AND status = 'incomplete'"

# One real activation, kept only to read what it writes: the counts and a
# real event body for the baseline's rows.
"${psql[@]}" -A -t >"$work/counts" <<SQL
BEGIN;
$activate;
SELECT count(*) FROM benefits.grants WHERE organization_id = '0b000000-0000-0000-0000-00000000000a';
SELECT count(*) FROM benefits.outbox WHERE organization_id = '0b000000-0000-0000-0000-00000000000a' AND kind = 'webhook';
SELECT count(*) FROM benefits.outbox WHERE organization_id = '0b000000-0000-0000-0000-00000000000a' AND kind = 'github';
CREATE TABLE engine_bench.sample AS
    SELECT payload FROM benefits.outbox WHERE organization_id = '0b000000-0000-0000-0000-00000000000a'
       AND kind = 'webhook' LIMIT 1;
COMMIT;
SQL
read -r grants webhooks jobs < <(tr "\n" " " <"$work/counts"; echo) || true
"${psql[@]}" <<'SQL'
-- Undo the sample activation without the engine: the baseline and the timed
-- runs start from incomplete subscriptions and empty tables again.
ALTER TABLE benefits.subscriptions DISABLE TRIGGER USER;
UPDATE benefits.subscriptions SET status = 'incomplete' WHERE organization_id = '0b000000-0000-0000-0000-00000000000a';
ALTER TABLE benefits.subscriptions ENABLE TRIGGER USER;
DELETE FROM benefits.outbox WHERE organization_id = '0b000000-0000-0000-0000-00000000000a' AND kind <> 'webhook' OR
    (organization_id = '0b000000-0000-0000-0000-00000000000a' AND event_type LIKE 'benefit_grant.%');
DELETE FROM benefits.grants WHERE organization_id = '0b000000-0000-0000-0000-00000000000a';
DELETE FROM benefits.license_keys WHERE organization_id = '0b000000-0000-0000-0000-00000000000a';
DELETE FROM benefits.meter_credits WHERE organization_id = '0b000000-0000-0000-0000-00000000000a';
DELETE FROM benefits.meter_balances WHERE organization_id = '0b000000-0000-0000-0000-00000000000a';
VACUUM ANALYZE;
SQL

# The baseline writes the same rows with plain INSERT ... SELECT: grants in
# their final state, the webhook rows with a real event body, the GitHub jobs.
baseline="INSERT INTO benefits.grants (organization_id, customer_id, benefit_id, subscription_id, state, properties)
SELECT s.organization_id, s.customer_id, pb.benefit_id, s.id,
       CASE b.type WHEN 'github_repository' THEN 'created' ELSE 'active' END, '{\"k\": 1}'
  FROM benefits.subscriptions s
  JOIN benefits.product_benefits pb ON pb.product_id = s.product_id
  JOIN benefits.benefits b ON b.id = pb.benefit_id
 WHERE s.organization_id = '0b000000-0000-0000-0000-00000000000a';
INSERT INTO benefits.outbox (organization_id, kind, grant_id, endpoint_id, event_type, message_id, action, payload)
SELECT g.organization_id, 'webhook', g.id, e.id, 'benefit_grant.created',
       'msg_' || translate(gen_random_uuid()::text, '-', ''), 'deliver', x.payload
  FROM benefits.grants g, benefits.webhook_endpoints e, engine_bench.sample x
 WHERE g.organization_id = '0b000000-0000-0000-0000-00000000000a' AND g.state = 'active'
   AND e.organization_id = g.organization_id;
INSERT INTO benefits.outbox (organization_id, kind, grant_id, action, payload)
SELECT g.organization_id, 'github', g.id, 'add_collaborator',
       jsonb_build_object('owner', 'acme', 'repo', 'engine', 'username', 'user', 'permission', 'pull')
  FROM benefits.grants g
 WHERE g.organization_id = '0b000000-0000-0000-0000-00000000000a' AND g.state = 'created'"

engine_ms=(); baseline_ms=(); engine_cpu=(); baseline_cpu=()
for _ in $(seq "$ROUNDS"); do
    read -r w c < <(timed "$baseline"); baseline_ms+=("$w"); baseline_cpu+=("$c")
    read -r w c < <(timed "$activate"); engine_ms+=("$w"); engine_cpu+=("$c")
    "${psql[@]}" -c 'VACUUM benefits.grants, benefits.outbox, benefits.subscriptions, benefits.license_keys, benefits.meter_credits, benefits.meter_balances'
done
e=$(median "${engine_ms[@]}"); b=$(median "${baseline_ms[@]}")
ec=$(median "${engine_cpu[@]}"); bc=$(median "${baseline_cpu[@]}")
echo "activate $N subscriptions x 4 benefits in one UPDATE: $grants grants, $webhooks webhook rows, $jobs GitHub jobs"
echo "  engine UPDATE:         ${e} ms wall, ${ec} ms CPU (runs: ${engine_ms[*]} / ${engine_cpu[*]})"
echo "  plain INSERT baseline: ${b} ms wall, ${bc} ms CPU (runs: ${baseline_ms[*]} / ${baseline_cpu[*]})"
awk -v e="$e" -v b="$b" -v ec="$ec" -v bc="$bc" \
    'BEGIN { printf "  ratio engine/baseline: %.2f wall, %.2f CPU (target <= 3)\n", e / b, (bc > 0 ? ec / bc : 0) }'

# 2. Single status changes through pgbench.  The engine's table starts active
# (grants held); each transaction flips one subscription between active and
# past_due (grace period 0: revoked at once, granted again on the way back).
"${psql[@]}" <<SQL
$activate;
CREATE TABLE engine_bench.subscriptions_plain (LIKE benefits.subscriptions INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);
INSERT INTO engine_bench.subscriptions_plain SELECT * FROM benefits.subscriptions
 WHERE organization_id = '0b000000-0000-0000-0000-00000000000a';
VACUUM ANALYZE;
SQL
cat >"$work/engine.sql" <<SQL
\set n random(1, $N)
UPDATE benefits.subscriptions SET status = CASE status WHEN 'active' THEN 'past_due' ELSE 'active' END
 WHERE id = (SELECT id FROM engine_bench.ids WHERE n = :n);
SQL
sed 's/benefits\.subscriptions/engine_bench.subscriptions_plain/' "$work/engine.sql" >"$work/plain.sql"
# Each run gives its tps and the server CPU per change (pgbench_cpu,
# common.sh: the backends' own time, which outside load on a shared machine
# moves far less than throughput).
plain_runs=(); engine_runs=(); change_ratios=(); plain_cpu=(); engine_cpu=(); cpu_ratios=()
for _ in $(seq "$ROUNDS"); do
    read -r p pc <<<"$(pgbench_cpu plain "$SECONDS_PER_RUN" simple)"
    read -r e ec <<<"$(pgbench_cpu engine "$SECONDS_PER_RUN" simple)"
    plain_runs+=("$p"); engine_runs+=("$e"); change_ratios+=("$(ratio "$p" "$e")")
    plain_cpu+=("$pc"); engine_cpu+=("$ec"); cpu_ratios+=("$(ratio "$ec" "$pc")")
done
echo "single status change (pgbench, 2 clients, simple protocol, ${SECONDS_PER_RUN}s runs, $ROUNDS rounds)"
echo "  engine table: ${engine_runs[*]} tps; trigger-less copy: ${plain_runs[*]} tps"
echo "  server CPU per change (us): engine ${engine_cpu[*]}; trigger-less ${plain_cpu[*]}"
echo "  ratio (time per change, engine/plain), per round: ${change_ratios[*]}"
echo "  ratio (time per change, engine/plain), median: $(median "${change_ratios[@]}")   (target <= 6)"
echo "  ratio (server CPU per change, engine/plain), per round: ${cpu_ratios[*]}"
echo "  ratio (server CPU per change, engine/plain), median: $(median "${cpu_ratios[@]}")   (target <= 6)"

# Leave nothing for the worker to deliver to hosts that are not there: it
# would compete with the benchmarks that follow.
"${psql[@]}" <<'SQL'
DROP SCHEMA engine_bench CASCADE;
DELETE FROM benefits.outbox WHERE organization_id = '0b000000-0000-0000-0000-00000000000a';
DELETE FROM benefits.webhook_endpoints WHERE organization_id = '0b000000-0000-0000-0000-00000000000a';
SQL
