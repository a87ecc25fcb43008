#!/usr/bin/env bash
# Feature flags, as a ratio against a baseline measured in the same run on
# the same cluster:
#
#  - benefits.has_feature(customer, 'export_pdf') calls per second, for 1,000
#    customers each holding the feature through an active grant, against a
#    plain indexed SELECT of that same grant row (by customer and benefit).
#    pgbench, prepared statements, 2 clients, customers picked at random from
#    the same lookup table by both statements, runs alternated (baseline,
#    has_feature, baseline, has_feature).  Target: >= 0.8.
set -euo pipefail

N=${BENCH_FEATURE_CUSTOMERS:-1000}
T=${BENCH_SECONDS:-8}
ORG=00000000-0000-0000-0000-0000000bf001
work=$(mktemp -d /tmp/benefits-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

sql() { psql -X -q -A -t -v ON_ERROR_STOP=1 -v org="$ORG" -v n="$N" "$@"; }
. "$(dirname "$0")/common.sh"

sql <<'SQL'
INSERT INTO benefits.organizations (id, name) VALUES (:'org', 'Feature Bench Org');
INSERT INTO benefits.customers (organization_id, external_id)
SELECT :'org', 'f' || n FROM generate_series(1, :n) n;
-- Other features of the organization, so the lookup has to pick its benefit.
SELECT count(benefits.create_benefit('feature_flag', :'org', 'Feature ' || n, '{}',
                                     metadata => jsonb_build_object('feature', 'feature_' || n)))
  FROM generate_series(1, 20) n \g /dev/null
SELECT id AS pdf FROM benefits.create_benefit('feature_flag', :'org', 'Export to PDF', '{}',
                                              metadata => '{"feature": "export_pdf"}') \gset
SELECT benefits.grant_benefit_bulk(ARRAY(SELECT id FROM benefits.customers WHERE organization_id = :'org'), :'pdf')
\g /dev/null
CREATE TABLE public.bench_feature_customers (n int PRIMARY KEY, customer_id uuid NOT NULL, benefit_id uuid NOT NULL);
INSERT INTO public.bench_feature_customers
SELECT row_number() OVER (ORDER BY c.external_id), c.id, :'pdf'
  FROM benefits.customers c WHERE c.organization_id = :'org';
VACUUM ANALYZE;
CHECKPOINT;
SQL

held=$(sql -c "SELECT count(*) FILTER (WHERE benefits.has_feature(customer_id, 'export_pdf')) FROM public.bench_feature_customers")
echo "$held of $N customers hold export_pdf"
[ "$held" -eq "$N" ] || { echo "unexpected feature holders" >&2; exit 1; }

cat >"$work/grant.sql" <<PGB
\set n random(1, $N)
SELECT g.id FROM public.bench_feature_customers c JOIN benefits.grants g
    ON g.customer_id = c.customer_id AND g.benefit_id = c.benefit_id AND g.state = 'active'
 WHERE c.n = :n;
PGB
cat >"$work/feature.sql" <<PGB
\set n random(1, $N)
SELECT benefits.has_feature(c.customer_id, 'export_pdf') FROM public.bench_feature_customers c WHERE c.n = :n;
PGB

pgbench_tps grant 2 >/dev/null; pgbench_tps feature 2 >/dev/null   # warm-up
g1=$(pgbench_tps grant "$T"); f1=$(pgbench_tps feature "$T"); g2=$(pgbench_tps grant "$T"); f2=$(pgbench_tps feature "$T")
echo "grant row SELECT: $g1, $g2 tps; has_feature: $f1, $f2 tps (2 clients, prepared, ${T}s runs)"
echo "has_feature ratio (calls/s / plain indexed SELECT of the same grant row): $(ratio "$(python3 -c "print($f1 + $f2)")" "$(python3 -c "print($g1 + $g2)")")   (target >= 0.8)"
