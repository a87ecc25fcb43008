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
benefits.github_oauth_url = '$url'
benefits.github_oauth_client_id = 'demo-client'
benefits.github_oauth_client_secret = 'demo-client-secret'
benefits.discord_api_url = '$url'
benefits.discord_bot_token = 'demo-discord-token'
benefits.allow_private_network = on
benefits.smtp_url = 'smtp://127.0.0.1:$smtp_port'
benefits.validation_flush_interval = '200ms'"
BENEFITS_ROOT="$root" CLUSTER_STANDBY=1 "$root/test/cluster.sh" demo \
    psql -X -q -v ON_ERROR_STOP=1 -v mock="$url" -v secretfile="$work/secret" -P pager=off \
        -v licensefile="$work/license.txt" -v keysfile="$work/public_keys.json" \
        -d postgres -f "$root/test/demo.sql"

echo
echo "== 14. What the receivers saw (test/mock/providers.py's request log, the SMTP server's mailbox)"
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
        who = ("GitHub " if path.startswith("/repos/")
               else "Discord" if path.startswith(("/channels/", "/guilds/", "/api/")) else "OAuth  ")
        print(f"   {who}  {r['method']:6} {path}  -> {r['answer']}")
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


echo
echo "== 15. MyApp verifies the studio PC's license file offline (the README's Node code, Node's own crypto)"
# The README's verification code, as written there.
python3 - "$root/README.md" >"$work/verify-license.mjs" <<'PY'
import sys
lines = open(sys.argv[1]).read().split("\n")
start = lines.index("    // verify-license.mjs")
for line in lines[start:]:
    print(line[4:])
    if line == "    }":
        break
PY
(cd "$work" && node --input-type=module -e '
import { readFileSync } from "node:fs";
import { verifyLicense } from "./verify-license.mjs";
const file = readFileSync("license.txt", "utf8");
const keys = JSON.parse(readFileSync("public_keys.json", "utf8"));
const license = verifyLicense(file, keys);
console.log(`   valid: key ${license.license_key.display_key}, machine ${license.activation.label} (${license.activation.fingerprint}), features ${JSON.stringify(license.features)}, until ${license.expires_at}`);
const [begin, ...rest] = file.split("\n");
const body = Buffer.from(rest.filter((l) => l && !l.startsWith("-----")).join(""), "base64").toString();
const envelope = JSON.parse(body);
const payload = JSON.parse(Buffer.from(envelope.payload, "base64"));
payload.license_key.limit_activations = 99;
envelope.payload = Buffer.from(JSON.stringify(payload)).toString("base64");
const forged = `${begin}\n${Buffer.from(JSON.stringify(envelope)).toString("base64")}\n-----END BENEFITS LICENSE-----\n`;
try { verifyLicense(forged, keys); console.log("   forged file accepted?!"); process.exit(1); }
catch (e) { console.log(`   a copy raised to 99 activations: rejected (${e.message})`); }
try { verifyLicense(file, keys, new Date(Date.parse(license.expires_at) + 1000)); process.exit(1); }
catch (e) { console.log(`   the same file a second after its expires_at: rejected (${e.message})`); }
')
