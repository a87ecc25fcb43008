#!/usr/bin/env bash
# Meter credits, as ratios against baselines measured in the same run on the
# same cluster (pgbench, prepared statements, BENCH_ROUNDS rounds (default
# 3) of a baseline run then a subject run; the figure is the median of the
# rounds' ratios, so a burst of other work on the machine moves one round,
# not the figure):
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
ROUNDS=${BENCH_ROUNDS:-3}
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
# Both read the same customer's rows by the same index, the times given.
year_customer=$(sql -c "SELECT customer_id FROM public.bench_meter_customers WHERE n = 1")
since=$(sql -c "SELECT benefits.rfc3339(since) FROM public.bench_meter_year")
until=$(sql -c "SELECT benefits.rfc3339(until) FROM public.bench_meter_year")
cat >"$work/group_by.sql" <<PGB
SELECT date_bin('1 day', u.occurred_at, '$since'), sum(u.units)
  FROM benefits.meter_usage u
 WHERE u.customer_id = '$year_customer' AND u.meter_id = '$METER'
   AND u.occurred_at >= '$since' AND u.occurred_at < '$until'
 GROUP BY 1;
PGB
cat >"$work/history.sql" <<PGB
SELECT * FROM benefits.meter_usage_history('$year_customer', '$METER', '$since', '$until');
PGB

rows=$(sql -c "SELECT count(*) FROM public.bench_meter_year y, public.bench_meter_customers c,
    benefits.meter_usage_history(c.customer_id, '$METER', y.since, y.until) h WHERE c.n = 1 AND h.used > 0")
echo "meter_usage_history: $rows of 365 daily buckets with usage"
[ "$rows" -eq 365 ] || { echo "unexpected history" >&2; exit 1; }

# rounds BASELINE SUBJECT CLIENTS WHAT TARGET: each round's tps, then the
# median ratio next to its target.
rounds() {
    local b x ratios=()
    for _ in $(seq "$ROUNDS"); do
        b=$(pgbench_tps "$1" "$T" "$3"); x=$(pgbench_tps "$2" "$T" "$3")
        echo "  $1 $b tps, $2 $x tps"
        ratios+=("$(ratio "$x" "$b")")
    done
    echo "$4: $(python3 -c "import statistics, sys; print('%.2f' % statistics.median(map(float, sys.argv[1:])))" "${ratios[@]}")   (target $5; rounds: ${ratios[*]})"
}

pgbench_tps plain_hot 2 16 >/dev/null; pgbench_tps usage_hot 2 16 >/dev/null   # warm-up
rounds plain_hot usage_hot 16 "record_usage ratio, one customer's meter, 16 clients (calls/s / plain UPDATE of one row)" ">= 0.3"
rounds plain_many usage_many 2 "record_usage ratio, $N customers, 2 clients (calls/s / plain UPDATE of one random row)" ">= 0.5"
rounds plain_many usage_keyed 2 "record_usage with an idempotency key, $N customers, 2 clients (same baseline)" "none"
sql -c "VACUUM ANALYZE benefits.meter_usage"
rounds group_by history 2 "meter_usage_history ratio, a year of daily usage, 7,300 rows (calls/s / plain GROUP BY of the same rows)" ">= 0.5"
