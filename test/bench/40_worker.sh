#!/usr/bin/env bash
# Delivery worker (issue 4, section 5), against a local nginx (Debian's
# nginx-light, its own configuration in a temporary directory, 127.0.0.1,
# answering 204 to everything):
#
#  - deliveries per second for 20,000 queued webhooks (about 1 KB of JSON
#    each, signed), as a ratio of wrk POSTing the same body with the same
#    number of connections (benefits.http_max_host_connections) against the
#    same nginx in the same run.  The webhooks are queued with delivery off,
#    then delivery is switched on; the time runs until the last one is
#    recorded done in the outbox.
#  - commit-to-request latency for single grants: one GitHub grant per
#    transaction (grant_benefit -> outbox -> worker -> PUT collaborator), the
#    clock read just before COMMIT, the request time taken from nginx's
#    access log ($msec).  p50 and p99 of BENCH_GRANTS grants.
set -euo pipefail

N=${BENCH_WEBHOOKS:-20000}
GRANTS=${BENCH_GRANTS:-300}
CONNS=$(psql -X -A -t -c 'SHOW benefits.http_max_host_connections')
work=$(mktemp -d /tmp/benefits-bench-worker.XXXXXX)
chmod 777 "$work"
nginx_pid=""
cleanup() {
    [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null || true
    psql -X -q -c 'ALTER SYSTEM RESET benefits.allow_private_network' \
         -c 'ALTER SYSTEM RESET benefits.github_api_url' \
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
ALTER SYSTEM SET benefits.worker_delivery = off;
SELECT pg_reload_conf();
SET benefits.allow_private_network = on;   -- this session, before the reload reaches it
INSERT INTO benefits.organizations (id, name) VALUES ('00000000-0000-0000-0000-0000000be401', 'Bench worker');
SELECT id FROM benefits.create_webhook_endpoint('00000000-0000-0000-0000-0000000be401',
    'http://127.0.0.1:$port/hook', ARRAY['benefit_grant.updated']) \gset ep_
-- about 1 KB of JSON, shaped like a benefit_grant.updated event
CREATE TEMP TABLE body AS
SELECT jsonb_build_object('type', 'benefit_grant.updated', 'timestamp', '2026-01-01T00:00:00Z', 'api_version', 'v1',
         'data', jsonb_build_object('id', gen_random_uuid(), 'is_granted', true, 'is_revoked', false,
            'customer', jsonb_build_object('id', gen_random_uuid(), 'email', 'someone@example.com', 'name', 'Some One',
                                           'metadata', '{}'::jsonb, 'type', 'individual'),
            'benefit', jsonb_build_object('id', gen_random_uuid(), 'type', 'github_repository',
                                          'description', repeat('x', 300)),
            'properties', jsonb_build_object('repository_owner', 'acme', 'repository_name', 'engine',
                                             'permission', 'pull', 'note', repeat('y', 200)))) AS payload;
SELECT pg_sleep(0.5);
INSERT INTO benefits.outbox (organization_id, kind, endpoint_id, event_type, message_id, action, payload)
SELECT '00000000-0000-0000-0000-0000000be401', 'webhook', :'ep_id', 'benefit_grant.updated', 'msg_bench_' || g, 'deliver',
       b.payload
  FROM generate_series(1, $N) g CROSS JOIN body b;
SQL
bodylen=$(sql -c "SELECT octet_length(payload::text) FROM benefits.outbox WHERE message_id = 'msg_bench_1'")
sql -c "SELECT payload::text FROM benefits.outbox WHERE message_id = 'msg_bench_1'" >"$work/body.json"

# wrk: the same body, POSTed with as many connections as the worker uses.
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
BODY_FILE="$work/body.json" wrk -t2 -c"$CONNS" -d5s -s "$work/post.lua" "http://127.0.0.1:$port/hook" >"$work/wrk.txt"
wrk_rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.txt")

# The worker: switch delivery on, time until every webhook is recorded done.
start=$(sql -c "SELECT extract(epoch FROM clock_timestamp())")
sql -c 'ALTER SYSTEM SET benefits.worker_delivery = on' -c 'SELECT pg_reload_conf()' >/dev/null
while [ "$(sql -c "SELECT count(*) FROM benefits.outbox WHERE message_id LIKE 'msg_bench_%' AND state <> 'done'")" != 0 ]; do
    sleep 0.2
done
elapsed=$(sql -c "SELECT extract(epoch FROM max(finished_at)) - $start FROM benefits.outbox WHERE message_id LIKE 'msg_bench_%'")
rate=$(python3 -c "print('%.0f' % ($N / $elapsed))")
echo "webhook deliveries: $N queued, ${bodylen}-byte signed bodies, $CONNS connections"
echo "  worker: $rate deliveries/s   wrk (same nginx, same body, $CONNS connections): ${wrk_rps} requests/s"
echo "  ratio worker/wrk: $(ratio "$rate" "$wrk_rps")"

# Commit-to-request latency of single grants.
sql >/dev/null <<SQL
INSERT INTO benefits.customers (organization_id, external_id)
SELECT '00000000-0000-0000-0000-0000000be401', 'lat' || g FROM generate_series(1, $GRANTS) g;
SELECT benefits.link_account(c.id, 'github', '9' || c.external_id, 'latuser' || substr(c.external_id, 4))
  FROM benefits.customers c WHERE c.organization_id = '00000000-0000-0000-0000-0000000be401';
SELECT id FROM benefits.create_benefit('github_repository', '00000000-0000-0000-0000-0000000be401', 'Bench repo',
    '{"repository_owner": "acme", "repository_name": "bench", "permission": "pull"}') \gset
\o $work/ids.txt
SELECT c.id, substr(c.external_id, 4) FROM benefits.customers c
 WHERE c.organization_id = '00000000-0000-0000-0000-0000000be401' AND c.external_id LIKE 'lat%';
\o
SQL
benefit=$(sql -c "SELECT id FROM benefits.benefits WHERE description = 'Bench repo'")
{
    while IFS='|' read -r cid n; do
        [ -z "$cid" ] && continue
        echo "BEGIN;"
        echo "SELECT benefits.grant_benefit('$cid', '$benefit') \\g /dev/null"
        echo "SELECT 'latuser$n', extract(epoch FROM clock_timestamp());"
        echo "COMMIT;"
        echo "SELECT pg_sleep(0.01) \\g /dev/null"
    done <"$work/ids.txt"
} >"$work/grants.sql"
sql -F ' ' -f "$work/grants.sql" >"$work/commits.txt"
sleep 1
python3 - "$work/commits.txt" "$work/grants.log" <<'PY'
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
print("commit-to-request latency, single GitHub grants: %d grants, p50 %.1f ms, p99 %.1f ms (max %.1f ms; nginx $msec has 1 ms resolution)"
      % (len(lat), pct(50), pct(99), lat[-1]))
if commits:
    print("  %d grants never reached nginx" % len(commits))
    sys.exit(1)
PY
