#!/usr/bin/env bash
# Customer portal (issue 5, section 4), as ratios against a baseline measured
# in the same pgbench_tps on the same cluster:
#
#  - customer_portal(token) calls per second for customers holding ten granted
#    benefits (three license keys with activations, two downloadable benefits
#    of two files each, so four URLs are signed on every call, two notes,
#    meter credits, GitHub and Discord), against a plain SELECT of the same
#    customer's grant rows.  pgbench, prepared statements, 2 clients, 1,000
#    customers picked at random, runs alternated (baseline, portal, ...;
#    BENCH_ROUNDS rounds, default 3), median of the per-round ratios.  Both
#    statements look the customer's token up in the same table.
#    Target: >= 0.25.
#  - the same for customer_portal_html (no target; for information).
set -euo pipefail

N=${BENCH_PORTAL_CUSTOMERS:-1000}
T=${BENCH_SECONDS:-8}
ROUNDS=${BENCH_ROUNDS:-3}
ORG=00000000-0000-0000-0000-0000000be501
PRODUCT=00000000-0000-0000-0000-0000000be502
METER=00000000-0000-0000-0000-0000000be503
work=$(mktemp -d /tmp/benefits-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

sql() { psql -X -q -A -t -v ON_ERROR_STOP=1 -v org="$ORG" -v product="$PRODUCT" -v meter="$METER" -v n="$N" "$@"; }
. "$(dirname "$0")/common.sh"

sql <<'SQL'
-- Storage settings for the signer (superuser-only; per database).
SELECT format('ALTER DATABASE %I SET %s = %L', current_database(), k, v)
  FROM (VALUES ('benefits.s3_endpoint', 'https://storage.bench.example'), ('benefits.s3_region', 'eu-central-1'),
               ('benefits.s3_bucket', 'bench-files'), ('benefits.s3_access_key_id', 'AKIDBENCH'),
               ('benefits.s3_secret_access_key', 'bench-secret-access-key')) s(k, v) \gexec
SQL
sql <<'SQL'
INSERT INTO benefits.organizations (id, name) VALUES (:'org', 'Portal Bench Org');
INSERT INTO benefits.products (id, organization_id, name) VALUES (:'product', :'org', 'Everything');
INSERT INTO benefits.meters (id, organization_id, name) VALUES (:'meter', :'org', 'API calls');
CREATE TEMP TABLE f AS
SELECT n, (benefits.create_file(:'org', format('file %s.zip', n), 1048576 * n, 'application/zip')).id FROM generate_series(1, 4) n;
SELECT count(benefits.complete_file_upload(id)) FROM f \g /dev/null
CREATE TEMP TABLE b (position int, type text, description text, properties jsonb);
INSERT INTO b VALUES
  (1, 'license_keys', 'License A', '{"prefix": "A", "expires": null, "activations": {"limit": 5, "enable_customer_admin": true}, "limit_usage": 1000}'),
  (2, 'downloadable', 'Downloads A', jsonb_build_object('files', (SELECT jsonb_agg(id ORDER BY n) FROM f WHERE n <= 2), 'archived', '{}'::jsonb)),
  (3, 'custom', 'Welcome', '{"note": "Thanks for buying!"}'),
  (4, 'license_keys', 'License B', '{"prefix": "B", "expires": null, "activations": {"limit": 2, "enable_customer_admin": false}, "limit_usage": null}'),
  (5, 'meter_credits', 'Credits', jsonb_build_object('meter_id', :'meter', 'units', 1000, 'rollover', false)),
  (6, 'downloadable', 'Downloads B', jsonb_build_object('files', (SELECT jsonb_agg(id ORDER BY n) FROM f WHERE n > 2), 'archived', '{}'::jsonb)),
  (7, 'github_repository', 'Source', '{"repositories": [{"owner": "bench", "name": "app", "permission": "pull"}]}'),
  (8, 'discord', 'Community', '{"guild_id": "1", "roles": [{"role_id": "2", "name": "Member"}], "kick_member": false}'),
  (9, 'license_keys', 'License C', '{"prefix": null, "expires": null, "activations": null, "limit_usage": null}'),
  (10, 'custom', 'Support', '{"note": "Write to support@bench.example"}');
WITH ins AS (
    INSERT INTO benefits.benefits (organization_id, type, description, properties)
    SELECT :'org', type, description, properties FROM b ORDER BY position RETURNING id, description)
INSERT INTO benefits.product_benefits (product_id, benefit_id, position)
SELECT :'product', ins.id, b.position FROM ins JOIN b USING (description);
INSERT INTO benefits.customers (organization_id, external_id, email)
SELECT :'org', 'p' || n, 'p' || n || '@bench.example' FROM generate_series(1, :n) n;
INSERT INTO benefits.subscriptions (customer_id, product_id, status, current_period_end)
SELECT c.id, :'product', 'active', now() + interval '30 days' FROM benefits.customers c WHERE c.organization_id = :'org';
INSERT INTO benefits.license_key_activations (license_key_id, label)
SELECT k.id, 'device ' || d FROM benefits.license_keys k, generate_series(1, 2) d WHERE k.organization_id = :'org';
CREATE TABLE public.bench_portal_tokens (n int PRIMARY KEY, customer_id uuid NOT NULL, token text NOT NULL);
INSERT INTO public.bench_portal_tokens
SELECT row_number() OVER (ORDER BY c.external_id), c.id, benefits.create_customer_session(:'org', c.external_id)
  FROM benefits.customers c WHERE c.organization_id = :'org';
VACUUM ANALYZE;
CHECKPOINT;
SQL

# Every customer holds ten benefits; the portal shows them, with four signed URLs.
read -r grants benefits urls <<<"$(sql -F " " <<'SQL'
SELECT (SELECT count(*) FROM benefits.grants g JOIN public.bench_portal_tokens t USING (customer_id) WHERE t.n = 1),
       jsonb_array_length(p -> 'benefits'),
       jsonb_array_length(jsonb_path_query_array(p, '$.benefits[*].files[*].download_url'))
  FROM benefits.customer_portal((SELECT token FROM public.bench_portal_tokens WHERE n = 1)) p;
SQL
)"
echo "per customer: $grants grants, $benefits benefits in the portal, $urls download URLs signed per call ($N customers)"
[ "$grants" -eq 10 ] && [ "$benefits" -eq 10 ] && [ "$urls" -eq 4 ] || { echo "unexpected portal content" >&2; exit 1; }

cat >"$work/grants.sql" <<PGB
\set n random(1, $N)
SELECT * FROM benefits.grants WHERE customer_id = (SELECT customer_id FROM public.bench_portal_tokens WHERE n = :n);
PGB
cat >"$work/portal.sql" <<PGB
\set n random(1, $N)
SELECT benefits.customer_portal((SELECT token FROM public.bench_portal_tokens WHERE n = :n));
PGB
cat >"$work/html.sql" <<PGB
\set n random(1, $N)
SELECT benefits.customer_portal_html((SELECT token FROM public.bench_portal_tokens WHERE n = :n));
PGB

pgbench_tps grants 2 >/dev/null; pgbench_tps portal 2 >/dev/null   # warm-up
# Each run gives its tps and the server CPU per call (pgbench_cpu, common.sh:
# the backends' own time, which outside load moves far less than throughput).
grant_runs=(); portal_runs=(); ratios=(); grant_cpu=(); portal_cpu=(); cpu_ratios=()
for _ in $(seq "$ROUNDS"); do
    read -r g gc <<<"$(pgbench_cpu grants "$T")"
    read -r p pc <<<"$(pgbench_cpu portal "$T")"
    grant_runs+=("$g"); portal_runs+=("$p"); ratios+=("$(ratio "$p" "$g")")
    grant_cpu+=("$gc"); portal_cpu+=("$pc"); cpu_ratios+=("$(ratio "$gc" "$pc")")
done
h1=$(pgbench_tps html "$T")
echo "grant rows SELECT: ${grant_runs[*]} tps; customer_portal: ${portal_runs[*]} tps; customer_portal_html: $h1 tps (2 clients, prepared, ${T}s runs)"
echo "server CPU per call (us): grant rows SELECT ${grant_cpu[*]}; customer_portal ${portal_cpu[*]}"
echo "portal ratio (customer_portal calls/s / plain SELECT of the customer's grants), per round: ${ratios[*]}"
echo "portal ratio, median: $(median "${ratios[@]}")   (target >= 0.25)"
echo "portal ratio by server CPU per call (SELECT us / customer_portal us), per round: ${cpu_ratios[*]}"
echo "portal ratio by server CPU per call, median: $(median "${cpu_ratios[@]}")   (target >= 0.25)"
echo "page ratio (customer_portal_html calls/s / plain SELECT of the customer's grants, median round): $(ratio "$h1" "$(median "${grant_runs[@]}")")"
