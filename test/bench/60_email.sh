#!/usr/bin/env bash
# Customer email benchmark (run by test/bench/run.sh against database "bench").
#
# 1. Activating N subscriptions (default 10,000) to a product with three
#    benefits in one UPDATE with email on (benefits.smtp_url set: one
#    message per activation written in the statement), against the same
#    statement with email off, alternated in the same run, each rolled back;
#    the figure is the median of the rounds' ratios.  Target: ratio <= 1.3.
# 2. Messages delivered per second by the worker to a local SMTP server
#    (test/mock/smtp_server.py, aiosmtpd) for M committed activations
#    (default 2,000), against Python's smtplib sending the same number of
#    messages of the same size to the same server over one connection.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$here/common.sh"
N=${BENCH_SUBSCRIPTIONS:-10000}
M=${BENCH_EMAILS:-2000}
ROUNDS=${BENCH_ROUNDS:-5}
psql=(psql -X -q -v ON_ERROR_STOP=1)
work=$(mktemp -d)
chmod 777 "$work"
smtp_pid=
cleanup() {
    [ -n "$smtp_pid" ] && kill "$smtp_pid" 2>/dev/null
    "${psql[@]}" -c "ALTER SYSTEM RESET benefits.smtp_url" -c "ALTER SYSTEM RESET benefits.allow_private_network" \
        -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
echo '{}' >"$work/control.json"
/usr/bin/python3 "$root/test/mock/smtp_server.py" --port "$port" --log "$work/messages.jsonl" \
    --control "$work/control.json" >"$work/smtp.out" 2>&1 &
smtp_pid=$!
for _ in $(seq 100); do grep -q ready "$work/messages.jsonl" 2>/dev/null && break; sleep 0.1; done

"${psql[@]}" -v n="$N" -v m="$M" <<'SQL'
DROP SCHEMA IF EXISTS email_bench CASCADE;
CREATE SCHEMA email_bench;
INSERT INTO benefits.organizations (id, name, email_from, support_email, portal_url)
VALUES ('0e000000-0000-0000-0000-00000000000a', 'Email bench', 'shop@example.com', 'help@example.com',
        'https://app.example.com/portal');
INSERT INTO benefits.meters (id, organization_id, name) VALUES
    ('0e000000-0000-0000-0000-0000000000a1', '0e000000-0000-0000-0000-00000000000a', 'calls');
INSERT INTO benefits.products (id, organization_id, name) VALUES
    ('0e000000-0000-0000-0000-0000000000b1', '0e000000-0000-0000-0000-00000000000a', 'Pro'),
    ('0e000000-0000-0000-0000-0000000000b2', '0e000000-0000-0000-0000-00000000000a', 'Sent');
SELECT benefits.update_product_benefits(p, ARRAY[
    (benefits.create_benefit('license_keys', '0e000000-0000-0000-0000-00000000000a', 'Key ' || p,
        '{"prefix": "BENCH", "expires": false, "activations": 3, "limit_usage": false}')).id,
    (benefits.create_benefit('custom', '0e000000-0000-0000-0000-00000000000a', 'Note ' || p, '{"note": "Thanks"}')).id,
    (benefits.create_benefit('meter_credits', '0e000000-0000-0000-0000-00000000000a', 'Credits ' || p,
        '{"meter_id": "0e000000-0000-0000-0000-0000000000a1", "units": 1000}')).id])
  FROM unnest(ARRAY['0e000000-0000-0000-0000-0000000000b1', '0e000000-0000-0000-0000-0000000000b2']::uuid[]) p;
INSERT INTO benefits.customers (organization_id, external_id, email, name)
SELECT '0e000000-0000-0000-0000-00000000000a', 'user-' || i, 'user' || i || '@example.com', 'User ' || i
  FROM generate_series(1, :n + :m) i;
INSERT INTO benefits.subscriptions (customer_id, product_id, status)
SELECT id, CASE WHEN external_id::text > 'user-' AND substr(external_id, 6)::int > :n
                THEN '0e000000-0000-0000-0000-0000000000b2' ELSE '0e000000-0000-0000-0000-0000000000b1' END::uuid,
       'incomplete'
  FROM benefits.customers WHERE organization_id = '0e000000-0000-0000-0000-00000000000a';
VACUUM ANALYZE;
SQL

cpu_ticks_sql email_bench | "${psql[@]}"

# Wall and CPU milliseconds of the activation, email on or off, rolled back,
# and the messages it wrote.
timed() {  # timed SMTP_URL -> "wall_ms cpu_ms messages"
    timed_rolled_back email_bench "SET LOCAL benefits.smtp_url = '$1'" \
        "UPDATE benefits.subscriptions SET status = 'active'
          WHERE product_id = '0e000000-0000-0000-0000-0000000000b1' AND status = 'incomplete'" \
        "SELECT count(*) FROM benefits.outbox WHERE kind = 'email' AND organization_id = '0e000000-0000-0000-0000-00000000000a'"
}
on_ms=(); off_ms=(); on_cpu=(); off_cpu=()
for _ in $(seq "$ROUNDS"); do
    read -r w c k < <(timed ''); off_ms+=("$w"); off_cpu+=("$c")
    read -r w c messages < <(timed "smtp://127.0.0.1:$port"); on_ms+=("$w"); on_cpu+=("$c")
    "${psql[@]}" -c 'VACUUM benefits.grants, benefits.outbox, benefits.subscriptions, benefits.license_keys, benefits.meter_credits, benefits.meter_balances'
done
e=$(median "${on_ms[@]}"); b=$(median "${off_ms[@]}")
ec=$(median "${on_cpu[@]}"); bc=$(median "${off_cpu[@]}")
# Each round runs both statements back to back: the ratio of each round
# cancels most of what other work on the machine adds, and their median is
# the figure.
wall_ratios=(); cpu_ratios=()
for i in "${!on_ms[@]}"; do
    wall_ratios+=("$(ratio "${on_ms[$i]}" "${off_ms[$i]}")")
    cpu_ratios+=("$(ratio "${on_cpu[$i]}" "${off_cpu[$i]}")")
done
echo "activate $N subscriptions x 3 benefits in one UPDATE: $messages messages written with email on"
echo "  email on:  ${e} ms wall, ${ec} ms CPU (runs: ${on_ms[*]} / ${on_cpu[*]})"
echo "  email off: ${b} ms wall, ${bc} ms CPU (runs: ${off_ms[*]} / ${off_cpu[*]})"
echo "  ratio on/off, median of the rounds: $(median "${wall_ratios[@]}") wall, $(median "${cpu_ratios[@]}") CPU (target <= 1.3; rounds: ${cpu_ratios[*]})"

# 2. Delivery: M activations committed with email on; the worker renders and
# sends every message.  Timed from the commit to the last message done.
# (The server is on loopback: the address guard must allow it.)
"${psql[@]}" -c "ALTER SYSTEM SET benefits.smtp_url = 'smtp://127.0.0.1:$port'" \
    -c "ALTER SYSTEM SET benefits.allow_private_network = on" -c "SELECT pg_reload_conf()" >/dev/null
sleep 1
start=$(date +%s.%N)
"${psql[@]}" -c "SET benefits.smtp_url = 'smtp://127.0.0.1:$port'" -c "UPDATE benefits.subscriptions SET status = 'active'
 WHERE product_id = '0e000000-0000-0000-0000-0000000000b2' AND status = 'incomplete'"
while [ "$("${psql[@]}" -A -t -c "SELECT count(*) FROM benefits.outbox WHERE kind = 'email'
        AND organization_id = '0e000000-0000-0000-0000-00000000000a' AND state IN ('pending', 'running')")" != 0 ]; do
    sleep 0.05
done
end=$(date +%s.%N)
done_n=$("${psql[@]}" -A -t -c "SELECT count(*) FROM benefits.outbox WHERE kind = 'email' AND state = 'done'
    AND organization_id = '0e000000-0000-0000-0000-00000000000a'")
received=$(grep -c '"data"' "$work/messages.jsonl" || true)
if [ "$received" -eq 0 ]; then
    "${psql[@]}" -c "SELECT state, last_error, count(*) FROM benefits.outbox WHERE kind = 'email' GROUP BY 1, 2" >&2
    cat "$work/smtp.out" >&2
    exit 1
fi
worker_rate=$(python3 -c "import sys; print('%.0f' % (int(sys.argv[1]) / (float(sys.argv[3]) - float(sys.argv[2]))))" "$done_n" "$start" "$end")

# The baseline: smtplib, one connection, the same number of messages of the
# size the worker sent.
direct_rate=$(/usr/bin/python3 - "$port" "$M" "$work/messages.jsonl" <<'PY'
import json, smtplib, sys, time
port, m, log = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
sample = next(json.loads(l)["data"] for l in open(log) if '"data"' in l)
s = smtplib.SMTP("127.0.0.1", port)
t0 = time.time()
for i in range(m):
    s.sendmail("shop@example.com", ["direct%d@example.com" % i], sample.encode())
t = time.time() - t0
s.quit()
print("%.0f" % (m / t))
PY
)
echo "deliver $M messages to a local SMTP server (aiosmtpd): $done_n done, $received received"
echo "  worker:  ${worker_rate} messages/s (rendered at claim, sent with curl multi)"
echo "  smtplib: ${direct_rate} messages/s (one connection, the same message)"
echo "  ratio worker/smtplib: $(ratio "$worker_rate" "$direct_rate")"

"${psql[@]}" <<'SQL'
DROP SCHEMA email_bench CASCADE;
DELETE FROM benefits.outbox WHERE organization_id = '0e000000-0000-0000-0000-00000000000a';
SQL
