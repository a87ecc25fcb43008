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
# A real SMTP server for the customer email (Debian's python3-aiosmtpd).
smtp_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
echo '{}' >"$work/smtp_control.json"
/usr/bin/python3 "$root/test/mock/smtp_server.py" --port "$smtp_port" --log "$work/mail.jsonl" \
    --control "$work/smtp_control.json" >"$work/smtp.log" 2>&1 &
smtp=$!
trap 'kill $mock $smtp 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do [ -s "$work/port" ] && grep -q ready "$work/mail.jsonl" 2>/dev/null && break; sleep 0.05; done
url="http://127.0.0.1:$(cat "$work/port")"

export CLUSTER_CONF="benefits.database_names = 'postgres'
benefits.github_api_url = '$url'
benefits.github_token = 'demo-github-token'
benefits.discord_api_url = '$url'
benefits.discord_bot_token = 'demo-discord-token'
benefits.allow_private_network = on
benefits.smtp_url = 'smtp://127.0.0.1:$smtp_port'
benefits.validation_flush_interval = '200ms'"
BENEFITS_ROOT="$root" "$root/test/cluster.sh" demo \
    psql -X -q -v ON_ERROR_STOP=1 -v mock="$url" -v secretfile="$work/secret" -P pager=off \
        -d postgres -f "$root/test/demo.sql"

echo
echo "== 13. What the receivers saw (test/mock/providers.py's request log, the SMTP server's mailbox)"
python3 - "$work/requests.jsonl" "$work/secret" <<'PY'
import base64, hashlib, hmac, json, sys
secret = open(sys.argv[2]).read().strip()
key = base64.b64decode(secret[len("whsec_"):])
requests = [json.loads(line) for line in open(sys.argv[1])]
hooks = [r for r in requests if r["method"] == "POST" and "/channels/" not in r["path"]]
valid = 0
for r in hooks:
    h = r["headers"]
    mac = hmac.new(key, f"{h['webhook-id']}.{h['webhook-timestamp']}.{r['body']}".encode(), hashlib.sha256)
    valid += ("v1," + base64.b64encode(mac.digest()).decode()) in h["webhook-signature"].split()
for r in requests:
    if r["method"] != "POST" or "/channels/" in r["path"]:
        who = "GitHub " if r["path"].startswith("/repos/") else "Discord"
        print(f"   {who}  {r['method']:6} {r['path']}  -> {r['answer']}")
print(f"   Webhooks {len(hooks)} received, {valid} signatures verified with the receiver's copy of the secret")
first = json.loads(hooks[0]["body"])
data = first["data"]
print(f"   First event: {first['type']} for benefit {data['benefit']['type']!r}, "
      f"customer {data['customer']['email']}, properties {json.dumps(data['properties'])}")
PY
/usr/bin/python3 "$root/test/mock/smtp_server.py" --parse "$work/mail.jsonl" >"$work/mail.json"
python3 - "$work/mail.json" <<'PY'
import json, sys
mail = json.load(open(sys.argv[1]))
print(f"   Email    {len(mail)} messages received (multipart/alternative: plain text and HTML), among them:")
for m in mail:
    h = m["headers"]
    if "legacy" not in h["To"]:
        print(f"     {h['To']:<28} {h['Subject']}")
grace = [m for m in mail if "grace@" in m["headers"]["To"]]
text = next(p["text"] for p in grace[0]["parts"] if p["content_type"] == "text/plain")
print("   Grace's first one, as plain text:")
for line in text.strip().splitlines():
    if line.strip():
        print("     | " + line)
PY

