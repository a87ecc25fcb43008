#!/usr/bin/env bash
# Delivery worker (issues 4 and 17), against a local nginx (Debian's
# nginx-light, its own configuration in a temporary directory, 127.0.0.1,
# answering 204 to everything):
#
#  - worker memory: RSS of the database's worker after its first
#    BENCH_RSS_FIRST (100,000) deliveries and after BENCH_RSS_TOTAL
#    (1,000,000), queued in chunks of BENCH_RSS_CHUNK while it delivers.
#    Target: the second within 10 % of the first.
#  - deliveries per second for BENCH_WEBHOOKS (20,000) queued webhooks (about
#    1 KB of JSON each, signed) with benefits.workers_per_database 1, 2 and 4,
#    each as a ratio of wrk POSTing the same body with the same number of
#    connections (benefits.http_max_host_connections) against the same nginx
#    just before it.  The webhooks are queued with delivery off, then
#    delivery is switched on; the time runs until the last one is recorded
#    done.  Also the workers' CPU time per delivery (user + system, from
#    /proc), which outside load on a shared machine disturbs far less than
#    the rate.  Targets: >= 10,000/s, ratio >= 0.2.
#  - commit-to-request latency for single grants: one GitHub grant per
#    transaction (grant_benefit -> outbox -> worker -> PUT collaborator), the
#    clock read just before COMMIT, the request time taken from nginx's
#    access log ($msec).  p50 and p99 of BENCH_GRANTS grants, idle (targets
#    3 ms and 20 ms), then again while pgbench queues BENCH_LOAD_RATE (2,000)
#    webhooks a second, whose delivery rate is printed too (target p99 50 ms).
set -euo pipefail

N=${BENCH_WEBHOOKS:-20000}
GRANTS=${BENCH_GRANTS:-300}
RSS_FIRST=${BENCH_RSS_FIRST:-100000}
RSS_TOTAL=${BENCH_RSS_TOTAL:-1000000}
RSS_CHUNK=${BENCH_RSS_CHUNK:-50000}
LOAD_RATE=${BENCH_LOAD_RATE:-2000}
WORKER_COUNTS=${BENCH_WORKER_COUNTS:-1 2 4}
ORG=00000000-0000-0000-0000-0000000be401
CONNS=$(psql -X -A -t -c 'SHOW benefits.http_max_host_connections')
work=$(mktemp -d /tmp/benefits-bench-worker.XXXXXX)
chmod 777 "$work"
nginx_pid=""
cleanup() {
    [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null || true
    psql -X -q -c 'ALTER SYSTEM RESET benefits.allow_private_network' \
         -c 'ALTER SYSTEM RESET benefits.github_api_url' \
         -c 'ALTER SYSTEM RESET benefits.workers_per_database' \
         -c 'ALTER SYSTEM RESET benefits.worker_delivery' -c 'SELECT pg_reload_conf()' >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

sql() { psql -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }
. "$(dirname "$0")/common.sh"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work;
    log_format timing '\$msec \$request_method \$request_uri';
    server {
        listen 127.0.0.1:$port;
        keepalive_requests 1000000;
        location /repos/ { access_log $work/grants.log timing; return 204; }
        location / { return 204; }
    }
}
CONF
/usr/sbin/nginx -p "$work" -c "$work/nginx.conf" &
nginx_pid=$!
for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && break
    sleep 0.05
done

sql >/dev/null <<SQL
ALTER SYSTEM SET benefits.allow_private_network = on;
ALTER SYSTEM SET benefits.github_api_url = 'http://127.0.0.1:$port';
SELECT pg_reload_conf();
SET benefits.allow_private_network = on;   -- this session, before the reload reaches it
INSERT INTO benefits.organizations (id, name) VALUES ('$ORG', 'Bench worker');
SELECT id FROM benefits.create_webhook_endpoint('$ORG',
    'http://127.0.0.1:$port/hook', ARRAY['benefit_grant.updated']) \gset ep_
-- about 1 KB of JSON, shaped like a benefit_grant.updated event
CREATE TABLE public.bench_body AS
SELECT jsonb_build_object('type', 'benefit_grant.updated', 'timestamp', '2026-01-01T00:00:00Z', 'api_version', 'v1',
         'data', jsonb_build_object('id', gen_random_uuid(), 'is_granted', true, 'is_revoked', false,
            'customer', jsonb_build_object('id', gen_random_uuid(), 'email', 'someone@example.com', 'name', 'Some One',
                                           'metadata', '{}'::jsonb, 'type', 'individual'),
            'benefit', jsonb_build_object('id', gen_random_uuid(), 'type', 'github_repository',
                                          'description', repeat('x', 300)),
            'properties', jsonb_build_object('repository_owner', 'acme', 'repository_name', 'engine',
                                             'permission', 'pull', 'note', repeat('y', 200)))) AS payload,
       :'ep_id'::uuid AS endpoint_id;
-- queue n webhooks whose message ids start with tag
CREATE FUNCTION public.bench_queue(tag text, n integer) RETURNS void LANGUAGE sql AS \$\$
INSERT INTO benefits.outbox (organization_id, kind, endpoint_id, event_type, message_id, action, payload)
SELECT '$ORG', 'webhook', b.endpoint_id, 'benefit_grant.updated', tag || g, 'deliver', b.payload
  FROM generate_series(1, n) g CROSS JOIN public.bench_body b
\$\$;
SQL
body_json=$(sql -c "SELECT payload::text FROM public.bench_body")
printf '%s' "$body_json" >"$work/body.json"
bodylen=$(wc -c <"$work/body.json")

set_conf() {   # set_conf NAME VALUE: ALTER SYSTEM and reload
    sql -c "ALTER SYSTEM SET $1 = '$2'" -c 'SELECT pg_reload_conf()' >/dev/null
}
worker_pids() {
    sql -c "SELECT string_agg(pid::text, ' ' ORDER BY pid) FROM pg_stat_activity
             WHERE backend_type = 'benefits worker' AND datname = current_database()"
}
wait_workers() {   # wait_workers N: until the database has N workers
    for _ in $(seq 200); do
        [ "$(sql -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'benefits worker'
                      AND datname = current_database()")" = "$1" ] && return 0
        sleep 0.1
    done
    echo "the database did not get $1 workers" >&2
    exit 1
}
cpu_of() {   # cpu_of PID...: their user + system clock ticks
    local t=0 f
    for p in "$@"; do
        f=$(cut -d')' -f2 "/proc/$p/stat")
        t=$((t + $(echo "$f" | awk '{print $12 + $13}')))
    done
    echo "$t"
}
# The worker's resident memory without the shared memory it has touched
# (VmRSS - RssShmem): shared_buffers pages count in VmRSS once the process
# has read them, so VmRSS grows with the table it scans, not with a leak.
rss_kb() { awk '/^VmRSS/ {rss = $2} /^RssShmem/ {shm = $2} END {print rss - shm}' "/proc/$1/status"; }
vmrss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
wait_done() {   # wait_done TAG: until no webhook of TAG is left to deliver
    while [ "$(sql -c "SELECT count(*) FROM benefits.outbox WHERE state IN ('pending', 'running')
                        AND message_id LIKE '$1%'")" != 0 ]; do
        sleep 0.2
    done
}
pct_pass() {   # pct_pass A B PERCENT: is A within PERCENT % of B?
    python3 -c "import sys; a, b, p = map(float, sys.argv[1:]); print('yes' if abs(a - b) <= b * p / 100 else 'no')" "$@"
}

# --- worker memory over 1,000,000 deliveries --------------------------------
wait_workers 1
pid=$(worker_pids)
queued=0
rss_first=""
previous=""
# the next chunk is queued while the worker delivers the one before
while [ "$queued" -lt "$RSS_TOTAL" ]; do
    chunk=$((RSS_TOTAL - queued < RSS_CHUNK ? RSS_TOTAL - queued : RSS_CHUNK))
    sql -c "SELECT public.bench_queue('msg_rss_${queued}_', $chunk)" >/dev/null
    [ -n "$previous" ] && wait_done "$previous"
    previous="msg_rss_${queued}_"
    queued=$((queued + chunk))
    if [ -z "$rss_first" ] && [ "$queued" -ge "$RSS_FIRST" ]; then
        wait_done "$previous"
        rss_first=$(rss_kb "$pid")
        vmrss_first=$(vmrss_kb "$pid")
        rss_first_at=$queued
    fi
done
wait_done msg_rss_
rss_last=$(rss_kb "$pid")
vmrss_last=$(vmrss_kb "$pid")
[ "$(worker_pids)" = "$pid" ] || { echo "the worker restarted during the memory run" >&2; exit 1; }
echo "worker RSS without shared memory: ${rss_first} kB after $rss_first_at deliveries, ${rss_last} kB after $queued" \
     "($(python3 -c "print('%+.1f' % (100.0 * ($rss_last - $rss_first) / $rss_first))") %; target within 10 %: $(pct_pass "$rss_last" "$rss_first" 10))"
echo "  (VmRSS, with the shared buffers it touched: ${vmrss_first} kB, then ${vmrss_last} kB)"
sql -c 'VACUUM ANALYZE benefits.outbox' >/dev/null

# --- throughput with 1, 2 and 4 workers --------------------------------------
cat >"$work/post.lua" <<'LUA'
local f = io.open(os.getenv("BODY_FILE"), "r")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["webhook-id"] = "msg_wrk"
wrk.headers["webhook-timestamp"] = "1700000000"
wrk.headers["webhook-signature"] = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
LUA
echo "webhook deliveries: $N queued, ${bodylen}-byte signed bodies, $CONNS connections per worker (targets: >= 10000/s, >= 0.2 of wrk)"
for w in $WORKER_COUNTS; do
    set_conf benefits.worker_delivery off
    set_conf benefits.workers_per_database "$w"
    wait_workers "$w"
    sql -c "SELECT public.bench_queue('msg_tp${w}_', $N)" >/dev/null
    sql -c 'VACUUM ANALYZE benefits.outbox' >/dev/null
    BODY_FILE="$work/body.json" wrk -t2 -c"$CONNS" -d3s -s "$work/post.lua" "http://127.0.0.1:$port/hook" >"$work/wrk.txt"
    wrk_rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.txt")
    pids=$(worker_pids)
    # shellcheck disable=SC2086
    cpu0=$(cpu_of $pids)
    start=$(sql -c "SELECT extract(epoch FROM clock_timestamp())")
    set_conf benefits.worker_delivery on
    wait_done "msg_tp${w}_"
    # shellcheck disable=SC2086
    cpu1=$(cpu_of $pids)
    elapsed=$(sql -c "SELECT extract(epoch FROM max(finished_at)) - $start FROM benefits.outbox WHERE message_id LIKE 'msg_tp${w}_%'")
    rate=$(python3 -c "print('%.0f' % ($N / $elapsed))")
    us=$(python3 -c "import os; print('%.0f' % (($cpu1 - $cpu0) / os.sysconf('SC_CLK_TCK') * 1e6 / $N))")
    echo "  $w worker(s): $rate deliveries/s, wrk $wrk_rps requests/s, ratio worker/wrk $(ratio "$rate" "$wrk_rps"), worker CPU $us us per delivery"
done
set_conf benefits.workers_per_database 1
wait_workers 1

# --- commit-to-request latency, idle and under load --------------------------
sql >/dev/null <<SQL
INSERT INTO benefits.customers (organization_id, external_id)
SELECT '$ORG', 'lat' || g FROM generate_series(1, $GRANTS * 2) g;
SELECT benefits.link_account(c.id, 'github', '9' || c.external_id, 'latuser' || substr(c.external_id, 4))
  FROM benefits.customers c WHERE c.organization_id = '$ORG';
SELECT id FROM benefits.create_benefit('github_repository', '$ORG', 'Bench repo',
    '{"repository_owner": "acme", "repository_name": "bench", "permission": "pull"}') \gset
\o $work/ids.txt
SELECT c.id, substr(c.external_id, 4) FROM benefits.customers c
 WHERE c.organization_id = '$ORG' AND c.external_id LIKE 'lat%' ORDER BY c.external_id::text COLLATE "C";
\o
SQL
benefit=$(sql -c "SELECT id FROM benefits.benefits WHERE description = 'Bench repo'")
grant_script() {   # grant_script FIRST LAST: the psql script granting customers FIRST..LAST of ids.txt
    sed -n "$1,$2p" "$work/ids.txt" | while IFS='|' read -r cid n; do
        [ -z "$cid" ] && continue
        echo "BEGIN;"
        echo "SELECT benefits.grant_benefit('$cid', '$benefit') \\g /dev/null"
        echo "SELECT 'latuser$n', extract(epoch FROM clock_timestamp());"
        echo "COMMIT;"
        echo "SELECT pg_sleep(0.01) \\g /dev/null"
    done
}
latency() {   # latency LABEL COMMITS: p50 and p99 from the commits and nginx's log
    python3 - "$2" "$work/grants.log" "$1" <<'PY'
import sys, re
commits = {}
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) == 2:
        commits[parts[0]] = float(parts[1])
lat = []
for line in open(sys.argv[2]):
    t, method, uri = line.split()
    m = re.search(r"/collaborators/(latuser\d+)$", uri)
    if method == "PUT" and m and m.group(1) in commits:
        lat.append((float(t) - commits.pop(m.group(1))) * 1000)
lat.sort()
def pct(p):
    return lat[min(len(lat) - 1, int(round(p / 100.0 * (len(lat) - 1))))]
print("%s: %d grants, p50 %.1f ms, p99 %.1f ms (max %.1f ms; nginx $msec has 1 ms resolution)"
      % (sys.argv[3], len(lat), pct(50), pct(99), lat[-1]))
if commits:
    print("  %d grants never reached nginx" % len(commits))
    sys.exit(1)
PY
}
grant_script 1 "$GRANTS" >"$work/grants_idle.sql"
grant_script $((GRANTS + 1)) $((GRANTS * 2)) >"$work/grants_load.sql"

sql -F ' ' -f "$work/grants_idle.sql" >"$work/commits_idle.txt"
sleep 1
latency "commit-to-request latency, single GitHub grants, idle (targets p50 <= 3 ms, p99 <= 20 ms)" "$work/commits_idle.txt"

# the same while pgbench queues LOAD_RATE webhooks a second, 100 per transaction
echo "SELECT public.bench_queue('msg_load_' || :client_id || '_' || (random() * 1e9)::bigint || '_', 100);" >"$work/load.sql"
pgbench -n -R $((LOAD_RATE / 100)) -T 600 -c 1 -f "$work/load.sql" >"$work/load.out" 2>&1 &
load_pid=$!
sleep 2
t0=$(sql -c "SELECT extract(epoch FROM clock_timestamp())")
sql -F ' ' -f "$work/grants_load.sql" >"$work/commits_load.txt"
t1=$(sql -c "SELECT extract(epoch FROM clock_timestamp())")
kill -TERM "$load_pid" 2>/dev/null || true   # (SIGINT is ignored by background jobs of a script)
wait "$load_pid" 2>/dev/null || true
sleep 1
delivered=$(sql -c "SELECT count(*) FROM benefits.outbox WHERE message_id LIKE 'msg_load_%' AND state = 'done'
                     AND finished_at BETWEEN to_timestamp($t0) AND to_timestamp($t1)")
echo "under load: $LOAD_RATE webhooks/s queued, $(python3 -c "print('%.0f' % ($delivered / ($t1 - $t0)))") deliveries/s done while the grants ran" \
     "(below the rate queued, a backlog builds and the grants wait behind it)"
latency "commit-to-request latency, single GitHub grants, under load (target p99 <= 50 ms)" "$work/commits_load.txt"
wait_done msg_load_
