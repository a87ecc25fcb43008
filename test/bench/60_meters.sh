#!/usr/bin/env bash
# Meter credits, as ratios against baselines measured in the same run on the
# same cluster (pgbench, prepared statements, runs alternated: baseline,
# subject, baseline, subject):
#
#  - record_usage(customer, meter, 1) on one customer's meter from 16 clients
#    (one hot balance row), against a plain UPDATE ... SET balance = balance - 1
#    of one row from 16 clients.  Target: >= 0.3.
#  - record_usage on 10,000 customers picked at random from 2 clients,
#    against the plain UPDATE of one random row of a 10,000-row table from 2
#    clients.  Target: >= 0.5.  The same with an idempotency key is shown
#    beside it (no target).
#  - meter_usage_history over a year of daily usage (365 days, 20 usage rows
#    a day) in daily buckets, against a plain GROUP BY of the same usage rows
#    by day.  Target: >= 0.5.
set -euo pipefail

N=${BENCH_METER_CUSTOMERS:-10000}
T=${BENCH_SECONDS:-8}
ORG=00000000-0000-0000-0000-0000000c1400
METER=00000000-0000-0000-0000-0000000c14e1
HOT=00000000-0000-0000-0000-0000000c14c1
work=$(mktemp -d /tmp/benefits-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

sql() { psql -X -q -A -t -v ON_ERROR_STOP=1 -v org="$ORG" -v meter="$METER" -v hot="$HOT" -v n="$N" "$@"; }
. "$(dirname "$0")/common.sh"

sql <<'SQL'
INSERT INTO benefits.organizations (id, name) VALUES (:'org', 'Meter Bench Org');
INSERT INTO benefits.meters (id, organization_id, name) VALUES (:'meter', :'org', 'calls');
INSERT INTO benefits.customers (id, organization_id, external_id) VALUES (:'hot', :'org', 'hot');
INSERT INTO benefits.customers (organization_id, external_id)
SELECT :'org', 'm' || n FROM generate_series(1, :n) n;
-- Every customer holds a subscription's credits (a lot expiring at its
-- period end) and a top-up, enough for every run.
INSERT INTO benefits.products (organization_id, name) VALUES (:'org', 'Calls') RETURNING id AS product \gset
SELECT benefits.update_product_benefits(:'product', ARRAY[(benefits.create_benefit('meter_credits', :'org', 'Calls',
    jsonb_build_object('meter_id', :'meter', 'units', 1000000)::jsonb)).id]) \g /dev/null
INSERT INTO benefits.subscriptions (customer_id, product_id, status, current_period_end)
SELECT id, :'product', 'active', now() + interval '30 days' FROM benefits.customers WHERE organization_id = :'org';
SELECT count(benefits.adjust_credits(id, :'meter', 1000000000000, 'bench')) FROM benefits.customers
 WHERE organization_id = :'org' \g /dev/null
CREATE TABLE public.bench_meter_customers (n int PRIMARY KEY, customer_id uuid NOT NULL);
INSERT INTO public.bench_meter_customers
SELECT row_number() OVER (ORDER BY id), id FROM benefits.customers WHERE organization_id = :'org' AND id <> :'hot';
-- The baseline's rows: one balance per customer, nothing else.
CREATE TABLE public.bench_meter_plain (n int PRIMARY KEY, balance bigint NOT NULL);
INSERT INTO public.bench_meter_plain SELECT n, 1000000000000 FROM generate_series(1, :n) n;
-- A year of daily usage of one customer, 20 rows a day.
CREATE TABLE public.bench_meter_year AS SELECT date_trunc('day', now()) - interval '365 days' AS since,
                                               date_trunc('day', now()) AS until;
INSERT INTO benefits.meter_usage (customer_id, meter_id, units, balance_after, occurred_at)
SELECT c.customer_id, :'meter', 1 + (d * 7 + k) % 13, 0,
       y.since + make_interval(days => d) + make_interval(mins => k * 60)
  FROM public.bench_meter_customers c, public.bench_meter_year y, generate_series(0, 364) d, generate_series(0, 19) k
 WHERE c.n = 1;
VACUUM ANALYZE;
CHECKPOINT;
SQL

cat >"$work/plain_hot.sql" <<PGB
UPDATE public.bench_meter_plain SET balance = balance - 1 WHERE n = 1;
PGB
cat >"$work/usage_hot.sql" <<PGB
SELECT benefits.record_usage('$HOT', '$METER', 1);
PGB
cat >"$work/plain_many.sql" <<PGB
\set n random(1, $N)
UPDATE public.bench_meter_plain SET balance = balance - 1 WHERE n = :n;
PGB
cat >"$work/usage_many.sql" <<PGB
\set n random(1, $N)
SELECT benefits.record_usage(c.customer_id, '$METER', 1) FROM public.bench_meter_customers c WHERE c.n = :n;
PGB
cat >"$work/usage_keyed.sql" <<PGB
\set n random(1, $N)
\set k random(1, 1000000000)
SELECT benefits.record_usage(c.customer_id, '$METER', 1, 'evt-' || :k) FROM public.bench_meter_customers c WHERE c.n = :n;
PGB
cat >"$work/group_by.sql" <<PGB
SELECT date_bin('1 day', u.occurred_at, y.since), sum(u.units)
  FROM benefits.meter_usage u, public.bench_meter_year y, public.bench_meter_customers c
 WHERE c.n = 1 AND u.customer_id = c.customer_id AND u.meter_id = '$METER'
   AND u.occurred_at >= y.since AND u.occurred_at < y.until
 GROUP BY 1;
PGB
cat >"$work/history.sql" <<PGB
SELECT h.* FROM public.bench_meter_year y, public.bench_meter_customers c,
       benefits.meter_usage_history(c.customer_id, '$METER', y.since, y.until) h
 WHERE c.n = 1;
PGB

rows=$(sql -c "SELECT count(*) FROM public.bench_meter_year y, public.bench_meter_customers c,
    benefits.meter_usage_history(c.customer_id, '$METER', y.since, y.until) h WHERE c.n = 1 AND h.used > 0")
echo "meter_usage_history: $rows of 365 daily buckets with usage"
[ "$rows" -eq 365 ] || { echo "unexpected history" >&2; exit 1; }

sum() { python3 -c "print($1 + $2)"; }
pair() {  # pair BASELINE SUBJECT CLIENTS -> "b1 s1 b2 s2"
    local b1 s1 b2 s2
    b1=$(pgbench_tps "$1" "$T" "$3"); s1=$(pgbench_tps "$2" "$T" "$3")
    b2=$(pgbench_tps "$1" "$T" "$3"); s2=$(pgbench_tps "$2" "$T" "$3")
    echo "$b1 $s1 $b2 $s2"
}

pgbench_tps plain_hot 2 16 >/dev/null; pgbench_tps usage_hot 2 16 >/dev/null   # warm-up
read -r b1 s1 b2 s2 < <(pair plain_hot usage_hot 16)
echo "one hot row, 16 clients: plain UPDATE $b1, $b2 tps; record_usage $s1, $s2 tps"
echo "record_usage ratio, one customer's meter, 16 clients (calls/s / plain UPDATE of one row): $(ratio "$(sum "$s1" "$s2")" "$(sum "$b1" "$b2")")   (target >= 0.3)"

read -r b1 s1 b2 s2 < <(pair plain_many usage_many 2)
echo "$N customers, 2 clients: plain UPDATE $b1, $b2 tps; record_usage $s1, $s2 tps"
echo "record_usage ratio, $N customers, 2 clients (calls/s / plain UPDATE of one random row): $(ratio "$(sum "$s1" "$s2")" "$(sum "$b1" "$b2")")   (target >= 0.5)"
k1=$(pgbench_tps usage_keyed "$T" 2)
echo "record_usage with an idempotency key, $N customers, 2 clients: $k1 tps, ratio $(ratio "$k1" "$(python3 -c "print(($b1 + $b2) / 2)")") of the plain UPDATE   (no target)"

read -r b1 s1 b2 s2 < <(pair group_by history 2)
echo "a year of daily usage (7,300 rows): plain GROUP BY $b1, $b2 tps; meter_usage_history $s1, $s2 tps"
echo "meter_usage_history ratio (calls/s / plain GROUP BY of the same rows): $(ratio "$(sum "$s1" "$s2")" "$(sum "$b1" "$b2")")   (target >= 0.5)"
