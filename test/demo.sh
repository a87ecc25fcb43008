#!/usr/bin/env bash
# make demo: the main job on a throwaway cluster, narrated.
#
# Starts local mock GitHub/Discord/webhook servers (test/mock/providers.py),
# a cluster whose worker calls them, and runs test/demo.sql.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/benefits-demo.XXXXXX)
python3 "$root/test/mock/providers.py" --port-file "$work/port" --log "$work/requests.jsonl" \
    >"$work/mock.log" 2>&1 &
mock=$!
trap 'kill $mock 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.05; done
url="http://127.0.0.1:$(cat "$work/port")"

export CLUSTER_CONF="benefits.database_names = 'postgres'
benefits.github_api_url = '$url'
benefits.github_token = 'demo-github-token'
benefits.github_oauth_url = '$url'
benefits.github_oauth_client_id = 'demo-client'
benefits.github_oauth_client_secret = 'demo-client-secret'
benefits.discord_api_url = '$url'
benefits.discord_bot_token = 'demo-discord-token'
benefits.allow_private_network = on
benefits.validation_flush_interval = '200ms'"
BENEFITS_ROOT="$root" "$root/test/cluster.sh" demo \
    psql -X -q -v ON_ERROR_STOP=1 -v mock="$url" -v secretfile="$work/secret" -P pager=off \
        -d postgres -f "$root/test/demo.sql"

echo
echo "== 13. What the receivers saw (test/mock/providers.py's request log)"
python3 - "$work/requests.jsonl" "$work/secret" <<'PY'
import base64, hashlib, hmac, json, sys
secret = open(sys.argv[2]).read().strip()
key = base64.b64decode(secret[len("whsec_"):])
requests = [json.loads(line) for line in open(sys.argv[1])]
hooks = [r for r in requests if r["method"] == "POST" and "webhook-id" in r["headers"]]
valid = 0
for r in hooks:
    h = r["headers"]
    mac = hmac.new(key, f"{h['webhook-id']}.{h['webhook-timestamp']}.{r['body']}".encode(), hashlib.sha256)
    valid += ("v1," + base64.b64encode(mac.digest()).decode()) in h["webhook-signature"].split()
for r in requests:
    if r not in hooks:
        path = r["path"].split("?")[0]
        who = "GitHub" if path.startswith("/repos/") else "OAuth "
        print(f"   {who}   {r['method']:6} {path}  -> {r['answer']}")
print(f"   Webhooks {len(hooks)} received, {valid} signatures verified with the receiver's copy of the secret")
first = json.loads(hooks[0]["body"])
data = first["data"]
print(f"   First event: {first['type']} for benefit {data['benefit']['type']!r}, "
      f"customer {data['customer']['email']}, properties {json.dumps(data['properties'])}")
PY
