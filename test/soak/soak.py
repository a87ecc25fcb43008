#!/usr/bin/env python3
"""make soak: mixed load with chaos on one throwaway cluster, sampled and checked.

Run by test/soak/run.sh inside test/cluster.sh (PG* variables point at the
cluster, BENEFITS_SERVER_LOG at its log).  For SOAK_MINUTES (default 30) it
runs, at the same time:

  - license validation: pgbench, SOAK_CLIENTS clients (4) as a benefits_public
    login at SOAK_VALIDATION_RATE transactions/s (300);
  - subscription churn from a benefits_app login, SOAK_CHURN_RATE operations/s
    (20) over 2 connections: activations (new and returning customers),
    cancellations, renewals, product changes, one-time purchases and refunds;
    SOAK_ROLLBACK (0.1) of the transactions also create a marked customer
    ("rb-...": external id, email, GitHub login; Discord id 777...) and are
    rolled back on purpose;
  - portal calls from benefits_app (session, customer_portal, every 4th the HTML
    page, logout) at SOAK_PORTAL_RATE (5/s);
  - webhook deliveries at SOAK_RATE (2000/s): pgbench inserts signed-webhook
    outbox rows in batches (a real benefit.updated body, the message id carrying
    its insert time), 7/10 to nginx answering 204, 1/10 to nginx failing 10 %
    of requests (503), 1/10 to a second nginx that vanishes for a minute, 1/10
    to an endpoint that starts answering 410; one batch in 20 is inserted and
    rolled back ("msg_rollback_..."); the churn's own benefit_grant.* events go
    to test/mock/providers.py (every 10th request 500 or 429);
  - GitHub and Discord calls to a second providers.py (every 20th request 429,
    Discord's 429 body, GitHub's exhausted rate limit or 500), email to
    test/mock/smtp_server.py (every 10th DATA 451).

Chaos: the worker SIGKILLed every SOAK_KILL_EVERY seconds (240, shorter runs
scale it down), the server restarted once in immediate mode, the vanishing
receiver down for 60 s, the 410.  Every 10 s a sampler records RSS, outbox
depth, WAL; throughput and latency come from the receivers' and pgbench's own
logs.  After the load the outbox drains, the checks run (PASS/FAIL each, exit
status 1 on any FAIL) and gnuplot draws tmp_soak/soak.png.
"""
import glob
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from datetime import datetime, timezone

import psycopg

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.join(ROOT, "test", "soak")
WORK = os.path.join(ROOT, "tmp_soak")
ORG = "50a50000-0000-4000-8000-000000000001"
P_BASIC, P_PRO, P_PACK = ("50a50000-0000-4000-8000-0000000000b1", "50a50000-0000-4000-8000-0000000000b2",
                          "50a50000-0000-4000-8000-0000000000b3")
METER = "50a50000-0000-4000-8000-0000000000e1"
GUILD, ROLE = "100000000000000001", "200000000000000001"


def env_number(name, default):
    return type(default)(os.environ.get(name) or default)


MINUTES = env_number("SOAK_MINUTES", 30.0)
DURATION = MINUTES * 60
RATE = env_number("SOAK_RATE", 2000)
BATCH = env_number("SOAK_BATCH", 20)
VALIDATION_RATE = env_number("SOAK_VALIDATION_RATE", 300)
CLIENTS = env_number("SOAK_CLIENTS", 4)
CHURN_RATE = env_number("SOAK_CHURN_RATE", 20.0)
PORTAL_RATE = env_number("SOAK_PORTAL_RATE", 5.0)
ROLLBACK = env_number("SOAK_ROLLBACK", 0.1)
CUSTOMERS = env_number("SOAK_CUSTOMERS", 2000)
KILL_EVERY = env_number("SOAK_KILL_EVERY", min(240.0, max(40.0, DURATION / 4)))
DOWN_SECONDS = min(60.0, DURATION / 5)
DRAIN_SECONDS = env_number("SOAK_DRAIN_SECONDS", 300)
SAMPLE_SECONDS = 10
# the shortest crash-to-crash epoch whose memory is judged (see memory_growth)
MIN_JUDGED_EPOCH = 180
SERVER_LOG = os.environ["BENEFITS_SERVER_LOG"]

T0 = None            # wall clock of the load's start
stop_load = threading.Event()
stop_sampler = threading.Event()
events = []          # (t, kind, label)
events_lock = threading.Lock()


def say(msg):
    t = "" if T0 is None else "%6.0fs " % (time.time() - T0)
    print(f"soak {t}{msg}", flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def event(kind, label):
    with events_lock:
        events.append((time.time(), kind, label))
    say(f"chaos: {label}")


def connect(user="postgres", autocommit=True, wait=120, dbname="soak"):
    """A connection to the soak database, retried while the server restarts."""
    deadline = time.time() + wait
    while True:
        try:
            return psycopg.connect(dbname=dbname, user=user, autocommit=autocommit, connect_timeout=5)
        except psycopg.OperationalError:
            if time.time() > deadline:
                raise
            time.sleep(0.5)


def as_server(cmd):
    return (["runuser", "-u", "postgres", "--"] + cmd) if os.getuid() == 0 else cmd


# ---------------------------------------------------------------- receivers

class Nginx:
    """Debian's nginx with a configuration of its own under WORK (see test/bench/40_worker.sh)."""

    def __init__(self, name, locations):
        self.name, self.port = name, free_port()
        self.dir = os.path.join(WORK, name)
        os.makedirs(self.dir, exist_ok=True)
        self.log = os.path.join(WORK, f"{name}.log")
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(f"""worker_processes 1;
daemon off;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    client_body_temp_path {self.dir};
    log_format soak '$msec $status $http_webhook_id $uri';
    access_log {self.log} soak buffer=256k flush=1s;
    split_clients "${{request_id}}" $flaky {{ 10% 1; * ""; }}
    server {{
        listen 127.0.0.1:{self.port};
        keepalive_requests 1000000;
{locations}
        location / {{ return 204; }}
    }}
}}
""")
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(["/usr/sbin/nginx", "-p", self.dir, "-c", self.conf],
                                     stderr=open(os.path.join(self.dir, "stderr"), "a"))
        wait_port(self.port)

    def stop(self):
        """A graceful quit: the listener closes at once, the buffered log is written out."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            self.proc.wait()

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"


def wait_port(port, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


class ProviderMock:
    """test/mock/providers.py, with its JSON-lines request log under WORK."""

    def __init__(self, name, control):
        self.log = os.path.join(WORK, f"{name}.jsonl")
        port_file = os.path.join(WORK, f"{name}.port")
        self.proc = subprocess.Popen(["/usr/bin/python3", os.path.join(ROOT, "test/mock/providers.py"),
                                      "--port-file", port_file, "--log", self.log],
                                     stdout=subprocess.DEVNULL, stderr=open(self.log + ".stderr", "w"))
        for _ in range(200):
            if os.path.exists(port_file) and open(port_file).read().strip():
                break
            time.sleep(0.05)
        self.port = int(open(port_file).read())
        self.base = f"http://127.0.0.1:{self.port}"
        self.control(control)

    def control(self, settings):
        req = urllib.request.Request(self.base + "/__control", json.dumps(settings).encode(), method="POST")
        urllib.request.urlopen(req, timeout=10).read()

    def state(self):
        return json.loads(urllib.request.urlopen(self.base + "/__state", timeout=30).read())

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


class SmtpMock:
    """test/mock/smtp_server.py (aiosmtpd), every 10th DATA refused with 451."""

    def __init__(self):
        self.port = free_port()
        self.log = os.path.join(WORK, "smtp.jsonl")
        control = os.path.join(WORK, "smtp_control.json")
        with open(control, "w") as f:
            json.dump({"fail_every": {"DATA": [451, 10]}}, f)
        self.proc = subprocess.Popen(["/usr/bin/python3", os.path.join(ROOT, "test/mock/smtp_server.py"),
                                      "--port", str(self.port), "--log", self.log, "--control", control],
                                     stdout=subprocess.DEVNULL, stderr=open(self.log + ".stderr", "w"))
        wait_port(self.port)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


# ---------------------------------------------------------------- set-up

def setup(db, nginx, vanish, hooks, providers, smtp):
    """The catalog, the endpoints, the starting customers and the roles the load uses."""
    x = db.execute
    x(f"""ALTER SYSTEM SET benefits.github_api_url = '{providers.base}'""")
    x(f"""ALTER SYSTEM SET benefits.discord_api_url = '{providers.base}'""")
    x(f"""ALTER SYSTEM SET benefits.smtp_url = 'smtp://127.0.0.1:{smtp.port}'""")
    x("SELECT pg_reload_conf()")
    x("SET benefits.allow_private_network = on")
    x("CREATE EXTENSION benefits")
    # The worker serves the database once it has the extension (no failed connection before).
    x("ALTER SYSTEM SET benefits.database_names = 'soak'")
    x("SELECT pg_reload_conf()")
    x("CREATE ROLE soak_app LOGIN IN ROLE benefits_app")
    x("CREATE ROLE soak_public LOGIN IN ROLE benefits_public")
    x("CREATE SCHEMA soak")
    x("GRANT USAGE ON SCHEMA soak TO soak_public, soak_app")
    x(f"""INSERT INTO benefits.organizations (id, name, email_from, support_email, portal_url)
          VALUES ('{ORG}', 'Soak', 'shop@soak.test', 'help@soak.test', 'https://soak.test/account')""")
    x(f"""INSERT INTO benefits.products (id, organization_id, name, external_id) VALUES
          ('{P_BASIC}', '{ORG}', 'Basic', 'basic'), ('{P_PRO}', '{ORG}', 'Pro', 'pro'),
          ('{P_PACK}', '{ORG}', 'Credit pack', 'pack')""")
    x(f"INSERT INTO benefits.meters (id, organization_id, name) VALUES ('{METER}', '{ORG}', 'API calls')")

    def benefit(kind, description, properties, metadata=None):
        extra = ", metadata => %s::jsonb" if metadata else ""
        args = [json.dumps(properties)] + ([json.dumps(metadata)] if metadata else [])
        return str(x(f"SELECT id FROM benefits.create_benefit('{kind}', '{ORG}', '{description}', %s::jsonb{extra})",
                     args).fetchone()[0])
    key = benefit("license_keys", "Soak license", {"prefix": "SOAK", "expires": False, "activations": 3,
                                                   "limit_usage": False})
    note = benefit("custom", "Support", {"note": "Write to **help@soak.test**."})
    flag = benefit("feature_flag", "Export", {}, {"feature": "export"})
    repo = benefit("github_repository", "Source", {"repository_owner": "soak", "repository_name": "app",
                                                   "permission": "pull"})
    chat = benefit("discord", "Chat", {"guild_id": GUILD, "role_id": ROLE})
    credits = benefit("meter_credits", "Credits", {"meter_id": METER, "units": 100})
    pack_key = benefit("license_keys", "Pack key", {"prefix": "PACK", "expires": {"ttl": 1, "timeframe": "year"}})
    pack_credits = benefit("meter_credits", "Pack credits", {"meter_id": METER, "units": 500, "recurring": False})
    for product, ids in ((P_BASIC, [key, note, flag]), (P_PRO, [key, repo, chat, credits, flag]),
                         (P_PACK, [pack_key, pack_credits])):
        x("SELECT benefits.update_product_benefits(%s, %s::uuid[])", [product, ids])

    # The churn's grant events go to the logging mock; the load's benefit.updated
    # deliveries to the four nginx endpoints (no other event type reaches them).
    grant_events = ["benefit_grant.created", "benefit_grant.updated", "benefit_grant.cycled",
                    "benefit_grant.revoked"]
    events_ep, events_secret = x("SELECT id, secret FROM benefits.create_webhook_endpoint(%s, %s, %s)",
                                 [ORG, hooks.base + "/hooks/events", grant_events]).fetchone()
    hooks.control({"secrets": {"/hooks/events": events_secret}})
    x("CREATE TABLE soak.endpoints (name text PRIMARY KEY, endpoint_id uuid NOT NULL, path text NOT NULL)")
    x("INSERT INTO soak.endpoints VALUES ('events', %s, '/hooks/events')", [events_ep])
    for name, server in (("ok", nginx), ("flaky", nginx), ("vanish", vanish), ("gone", nginx)):
        ep = x("SELECT id FROM benefits.create_webhook_endpoint(%s, %s, ARRAY['benefit.updated'])",
               [ORG, server.url(f"/hook/{name}")]).fetchone()[0]
        x("INSERT INTO soak.endpoints VALUES (%s, %s, %s)", [name, ep, f"/hook/{name}"])
    # Which endpoint each row of a batch goes to: row number mod 10.
    x("""CREATE TABLE soak.feed_slots AS
         SELECT s AS slot, (SELECT endpoint_id FROM soak.endpoints
                             WHERE name = CASE s WHEN 7 THEN 'flaky' WHEN 8 THEN 'vanish' WHEN 9 THEN 'gone'
                                             ELSE 'ok' END) AS endpoint_id
           FROM generate_series(0, 9) s""")
    x("CREATE SEQUENCE soak.feed_seq")
    # A real benefit.updated body for the load's deliveries.
    x("SELECT benefits.update_benefit(%s, description => 'Support by email')", [note])
    x("""CREATE TABLE soak.payload AS
         SELECT payload FROM benefits.outbox WHERE event_type = 'benefit.updated' ORDER BY id LIMIT 1""")

    say(f"set-up: {CUSTOMERS} customers with linked GitHub and Discord accounts and a subscription each")
    x(f"""INSERT INTO benefits.customers (organization_id, external_id, email, name)
          SELECT '{ORG}', 'c' || (g % 2) || '-' || lpad(g::text, 12, '0'), 'c' || g || '@soak.test', 'Customer ' || g
            FROM generate_series(1, {CUSTOMERS}) g""")
    x("""SELECT benefits.link_account(id, 'github', (100000 + row_number() OVER ())::text, 'gh-' || external_id),
                benefits.link_account(id, 'discord', (100000000000000000 + row_number() OVER ())::text,
                                      'dc-' || external_id, 'soak-token')
           FROM benefits.customers""")
    x(f"""INSERT INTO benefits.subscriptions (organization_id, customer_id, product_id, status, current_period_end)
          SELECT organization_id, id, CASE WHEN random() < 0.5 THEN '{P_BASIC}' ELSE '{P_PRO}' END::uuid,
                 'active', now() + interval '30 days'
            FROM benefits.customers""")
    x("CREATE TABLE soak.keys AS SELECT row_number() OVER () AS i, key FROM benefits.license_keys")
    x("GRANT SELECT ON soak.keys TO soak_public")
    x("VACUUM ANALYZE")
    return db.execute("SELECT count(*) FROM soak.keys").fetchone()[0]


# ---------------------------------------------------------------- load

class PgbenchLoop(threading.Thread):
    """pgbench runs one after another until the load stops: a server crash ends a run, the next reconnects."""

    def __init__(self, name, args, files):
        super().__init__(daemon=True)
        self.name, self.args, self.files = name, args, files
        self.proc, self.runs = None, 0
        os.makedirs(os.path.join(WORK, "pgbench"), exist_ok=True)

    def run(self):
        while not stop_load.is_set():
            remaining = int(T0 + DURATION - time.time())
            if remaining < 2:
                break
            self.runs += 1
            prefix = os.path.join(WORK, "pgbench", f"{self.name}_{self.runs}")
            cmd = ["pgbench", "-n", "-T", str(remaining), "-l", "--log-prefix", prefix] + self.args
            for f in self.files:
                cmd += ["-f", f]
            cmd.append("soak")
            with open(prefix + ".out", "w") as out:
                self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
                self.proc.wait()
            if not stop_load.is_set():
                time.sleep(1)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)


def write_pgbench_scripts(nkeys):
    os.makedirs(os.path.join(WORK, "pgbench"), exist_ok=True)
    paths = {}
    scripts = {
        "validate": f"""\\set i random(1, {nkeys})
SELECT valid, code FROM benefits.validate_license((SELECT key FROM soak.keys WHERE i = :i), '{ORG}');
""",
        "feed": f"""INSERT INTO benefits.outbox (organization_id, kind, endpoint_id, event_type, message_id, action, payload)
SELECT '{ORG}', 'webhook', e.id, 'benefit.updated',
       'msg_soak_' || nextval('soak.feed_seq') || '_' || (extract(epoch FROM clock_timestamp()) * 1000)::bigint,
       'deliver', p.payload
  FROM generate_series(0, {BATCH - 1}) g
  JOIN soak.feed_slots s ON s.slot = g % 10
  JOIN benefits.webhook_endpoints e ON e.id = s.endpoint_id AND e.enabled
 CROSS JOIN soak.payload p;
""",
        "feed_rollback": f"""BEGIN;
INSERT INTO benefits.outbox (organization_id, kind, endpoint_id, event_type, message_id, action, payload)
SELECT '{ORG}', 'webhook', e.id, 'benefit.updated', 'msg_rollback_' || nextval('soak.feed_seq'), 'deliver', p.payload
  FROM generate_series(0, {BATCH - 1}) g
  JOIN soak.feed_slots s ON s.slot = g % 10
  JOIN benefits.webhook_endpoints e ON e.id = s.endpoint_id AND e.enabled
 CROSS JOIN soak.payload p;
ROLLBACK;
""",
    }
    for name, text in scripts.items():
        paths[name] = os.path.join(WORK, "pgbench", f"{name}.sql")
        with open(paths[name], "w") as f:
            f.write(text)
    return paths


class Churn(threading.Thread):
    """Subscription changes from the application role; one customer group per thread, so no two threads meet."""

    def __init__(self, group, rate):
        super().__init__(daemon=True)
        self.group, self.rate = group, rate
        self.counts, self.errors = {}, []
        self.rolled_back = 0
        self.conn = None

    def reconnect(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
        self.conn = connect("soak_app", autocommit=False, wait=300)
        self.conn.execute("SET application_name = 'soak churn'")
        self.conn.commit()
        self.reload()

    def reload(self):
        """What this group holds now, read back (after a crash the outcome of the last commit is unknown)."""
        like = f"c{self.group}-%"
        with self.conn.transaction():
            rows = self.conn.execute("""SELECT s.id, s.status, s.product_id::text, s.customer_id FROM benefits.subscriptions s
                                         JOIN benefits.customers c ON c.id = s.customer_id
                                        WHERE c.external_id LIKE %s""", [like]).fetchall()
            self.active = [(r[0], r[2], r[3]) for r in rows if r[1] == "active"]
            self.canceled = [(r[0], r[2], r[3]) for r in rows if r[1] == "canceled"]
            self.packs = [r[0] for r in self.conn.execute(
                """SELECT o.id FROM benefits.orders o JOIN benefits.customers c ON c.id = o.customer_id
                    WHERE c.external_id LIKE %s AND o.billing_reason = 'purchase' AND o.status = 'paid'""",
                [like]).fetchall()]

    def new_customer(self, marker):
        tag = uuid.uuid4().hex[:12]
        ext = f"rb-{tag}" if marker else f"c{self.group}-{tag}"
        discord_id = ("777" if marker else "1") + "".join(random.choice("0123456789") for _ in range(15 if marker else 17))
        cid = self.conn.execute("""INSERT INTO benefits.customers (organization_id, external_id, email, name)
                                   VALUES (%s, %s, %s, %s) RETURNING id""",
                                [ORG, ext, f"{ext}@soak.test", f"Customer {ext}"]).fetchone()[0]
        self.conn.execute("SELECT benefits.link_account(%s, 'github', %s, %s)",
                          [cid, str(random.randint(10 ** 6, 10 ** 9)), f"gh-{ext}"])
        self.conn.execute("SELECT benefits.link_account(%s, 'discord', %s, %s, 'soak-token')",
                          [cid, discord_id, f"dc-{ext}"])
        return cid

    def activate(self, marker=False):
        cid = self.new_customer(marker)
        product = random.choice([P_BASIC, P_PRO])
        sid = self.conn.execute("""INSERT INTO benefits.subscriptions (organization_id, customer_id, product_id, status,
                                                                       current_period_end)
                                   VALUES (%s, %s, %s, 'active', now() + interval '30 days') RETURNING id""",
                                [ORG, cid, product]).fetchone()[0]
        return lambda: self.active.append((sid, product, cid))

    def reactivate(self):
        if not self.canceled:
            return self.activate()
        sub = random.choice(self.canceled)
        n = self.conn.execute("""UPDATE benefits.subscriptions SET status = 'active', canceled_at = NULL, ended_at = NULL,
                                        current_period_start = now(), current_period_end = now() + interval '30 days'
                                  WHERE id = %s AND status = 'canceled'""", [sub[0]]).rowcount
        return lambda: (self.canceled.remove(sub), n and self.active.append(sub))

    def cancel(self):
        if not self.active:
            return self.activate()
        sub = random.choice(self.active)
        n = self.conn.execute("""UPDATE benefits.subscriptions SET status = 'canceled', canceled_at = now(), ended_at = now(),
                                        current_period_end = now() - interval '1 second'
                                  WHERE id = %s AND status = 'active'""",
                              [sub[0]]).rowcount
        return lambda: (self.active.remove(sub), n and self.canceled.append(sub))

    def renew(self):
        if not self.active:
            return self.activate()
        sid, product, cid = random.choice(self.active)
        self.conn.execute("""INSERT INTO benefits.orders (organization_id, customer_id, product_id, subscription_id,
                                                         billing_reason, status)
                             SELECT organization_id, customer_id, product_id, id, 'subscription_cycle', 'paid'
                               FROM benefits.subscriptions WHERE id = %s AND status = 'active'""", [sid])
        self.conn.execute("""UPDATE benefits.subscriptions SET current_period_start = now(),
                                    current_period_end = now() + interval '30 days' WHERE id = %s AND status = 'active'""",
                          [sid])
        return lambda: None

    def change_product(self):
        if not self.active:
            return self.activate()
        sub = random.choice(self.active)
        other = P_PRO if sub[1] == P_BASIC else P_BASIC
        n = self.conn.execute("UPDATE benefits.subscriptions SET product_id = %s WHERE id = %s AND status = 'active'",
                              [other, sub[0]]).rowcount
        return lambda: (self.active.remove(sub), n and self.active.append((sub[0], other, sub[2])))

    def purchase(self):
        if not self.active:
            return self.activate()
        cid = random.choice(self.active)[2]
        oid = self.conn.execute("""INSERT INTO benefits.orders (organization_id, customer_id, product_id, billing_reason,
                                                                status)
                                   VALUES (%s, %s, %s, 'purchase', 'paid') RETURNING id""",
                                [ORG, cid, P_PACK]).fetchone()[0]
        return lambda: self.packs.append(oid)

    def refund(self):
        if not self.packs:
            return self.purchase()
        oid = random.choice(self.packs)
        self.conn.execute("UPDATE benefits.orders SET status = 'refunded' WHERE id = %s AND status = 'paid'", [oid])
        return lambda: self.packs.remove(oid)

    OPERATIONS = (("activation", activate, 20), ("reactivation", reactivate, 8), ("cancellation", cancel, 20),
                  ("renewal", renew, 20), ("product change", change_product, 15), ("purchase", purchase, 10),
                  ("refund", refund, 7))

    def step(self):
        name, op, _ = random.choices(self.OPERATIONS, weights=[w for _, _, w in self.OPERATIONS])[0]
        roll_back = random.random() < ROLLBACK
        with self.conn.transaction() as tx:
            if roll_back:
                self.activate(marker=True)
            after = op(self)
            if roll_back:
                raise psycopg.Rollback(tx)
        if roll_back:
            self.rolled_back += 1
        else:
            after()
            self.counts[name] = self.counts.get(name, 0) + 1

    def run(self):
        self.reconnect()
        due = time.time()
        while not stop_load.is_set():
            due += 1.0 / self.rate
            try:
                self.step()
            except psycopg.OperationalError:
                self.reconnect()
                due = time.time()
            except psycopg.Error as e:
                self.errors.append((time.time(), str(e).splitlines()[0]))
                try:
                    self.conn.rollback()
                except psycopg.Error:
                    self.reconnect()
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)


class Portal(threading.Thread):
    """Customer portal calls from the application role: a session, the document, sometimes the page, logout."""

    def __init__(self, rate):
        super().__init__(daemon=True)
        self.rate, self.calls, self.errors = rate, 0, []

    def run(self):
        conn, customers, refreshed, due = None, [], 0, time.time()
        while not stop_load.is_set():
            due += 1.0 / self.rate
            try:
                if conn is None:
                    conn = connect("soak_app", wait=300)
                    conn.execute("SET application_name = 'soak portal'")
                if time.time() - refreshed > 30:
                    customers = [r[0] for r in conn.execute(
                        """SELECT c.external_id FROM benefits.customers c JOIN benefits.subscriptions s
                               ON s.customer_id = c.id AND s.status = 'active' ORDER BY random() LIMIT 500""")]
                    refreshed = time.time()
                if not customers:
                    time.sleep(1)
                    refreshed = 0
                    continue
                token = conn.execute("SELECT benefits.create_customer_session(%s, %s)",
                                     [ORG, random.choice(customers)]).fetchone()[0]
                doc = conn.execute("SELECT benefits.customer_portal(%s)", [token]).fetchone()[0]
                if "benefits" not in json.dumps(doc):
                    self.errors.append((time.time(), "portal document without benefits"))
                if self.calls % 4 == 0:
                    page = conn.execute("SELECT benefits.customer_portal_html(%s)", [token]).fetchone()[0]
                    if "<html" not in page:
                        self.errors.append((time.time(), "portal page is not HTML"))
                conn.execute("SELECT benefits.revoke_customer_session(%s)", [token])
                self.calls += 1
            except psycopg.OperationalError:
                conn = None
                due = time.time()
            except psycopg.Error as e:
                self.errors.append((time.time(), str(e).splitlines()[0]))
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)


# ---------------------------------------------------------------- sampling

def rss_anon_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class Sampler(threading.Thread):
    """Every 10 s: worker and backend private memory, outbox depth by state, WAL position.

    Private memory is read every second; a sample holds each process's median
    over its 10 s (drawn) and its least (judged by the memory check): the
    worker's memory follows the requests it has in flight, about 30 kB each
    (its heap in use swung between 7 and 14 MB with up to 230 in flight, read
    with gdb's mallinfo2 in a soak), while a leak stays when they are gone,
    so it raises the least reading too."""


    def __init__(self):
        super().__init__(daemon=True)
        self.rows, self.conn = [], None
        self.dead = 0
        self.readings = {}      # pid: private memory read each second since the last sample

    def read_memory(self, pid):
        """The process's median and least private memory over the last 10 s, this reading included."""
        now = rss_anon_kb(pid)
        values = self.readings.get(pid, []) + ([now] if now is not None else [])
        return (statistics.median(values), min(values)) if values else None

    def watch_memory(self, until):
        """Read the watched processes' private memory every second until `until`."""
        while not stop_sampler.is_set() and time.time() < until - 1:
            stop_sampler.wait(1)
            for pid, values in self.readings.items():
                kb = rss_anon_kb(pid)
                if kb is not None:
                    values.append(kb)

    def sample(self, n):
        row = {"t": time.time()}
        try:
            if self.conn is None:
                self.conn = connect(wait=1)
                self.conn.execute("SET application_name = 'soak sampler'")
            c = self.conn
            procs = c.execute("""SELECT pid, backend_type FROM pg_stat_activity
                                  WHERE backend_type IN ('benefits worker', 'client backend')
                                    AND pid <> pg_backend_pid()""").fetchall()
            workers = [p for p, kind in procs if kind == "benefits worker"]
            backends = [self.read_memory(p) for p, kind in procs if kind == "client backend"]
            backends = [b for b in backends if b is not None]
            if workers:
                memory = self.read_memory(workers[0])
                row["worker_pid"] = workers[0]
                if memory:
                    row["worker_rss_kb"], row["worker_rss_floor_kb"] = memory
            self.readings = {p: [] for p, _ in procs}
            if backends:
                row["backends"] = len(backends)
                row["backend_rss_median_kb"] = statistics.median(m for m, _ in backends)
                row["backend_rss_max_kb"] = max(m for m, _ in backends)
                row["backend_rss_floor_max_kb"] = max(f for _, f in backends)
            depth = c.execute("""SELECT count(*) FILTER (WHERE state = 'pending' AND run_after <= now()),
                                        count(*) FILTER (WHERE state = 'pending' AND run_after > now()),
                                        count(*) FILTER (WHERE state = 'running')
                                   FROM benefits.outbox WHERE state IN ('pending', 'running')""").fetchone()
            row["pending_due"], row["pending_retry"], row["running"] = depth
            if n % 6 == 0:     # a full scan: once a minute
                self.dead = c.execute("SELECT count(*) FROM benefits.outbox WHERE state = 'dead'").fetchone()[0]
            row["dead"] = self.dead
            row["wal_bytes"] = float(c.execute("SELECT pg_current_wal_lsn() - '0/0'").fetchone()[0])
        except psycopg.Error:
            self.conn = None
        return row

    def run(self):
        n = 0
        while not stop_sampler.is_set():
            row = self.sample(n)
            self.rows.append(row)
            if n % 3 == 0:
                say("worker %s KB, outbox pending %s (+%s waiting to retry), running %s, dead %s"
                    % (row.get("worker_rss_kb", "-"), row.get("pending_due", "-"), row.get("pending_retry", "-"),
                       row.get("running", "-"), row.get("dead", "-")))
            n += 1
            self.watch_memory(T0 + n * SAMPLE_SECONDS)
            stop_sampler.wait(T0 + n * SAMPLE_SECONDS - time.time())


# ---------------------------------------------------------------- chaos

def data_directory():
    with connect() as c:
        return c.execute("SHOW data_directory").fetchone()[0]


def kill_worker():
    with connect() as c:
        row = c.execute("SELECT pid FROM pg_stat_activity WHERE backend_type = 'benefits worker'").fetchone()
    if row is None:
        say("chaos: no worker to kill")
        return
    os.kill(row[0], signal.SIGKILL)
    event("crash", f"worker SIGKILL (pid {row[0]})")


def restart_immediate(datadir):
    event("crash", "server restart, immediate mode")
    subprocess.run(as_server([os.path.join(subprocess.check_output(["pg_config", "--bindir"], text=True).strip(),
                                           "pg_ctl"), "-D", datadir, "-m", "immediate", "-w", "-l", SERVER_LOG,
                              "restart"]), check=True, stdout=subprocess.DEVNULL)


def chaos_schedule(vanish, gone_flag, datadir):
    """(time offset, kind, action) for the run, the worker kills kept away from the other events."""
    plan = [(0.25 * DURATION, "receiver", lambda: (vanish.stop(), event("receiver", "receiver down"))),
            (0.25 * DURATION + DOWN_SECONDS, "receiver", lambda: (vanish.start(), event("receiver", "receiver back"))),
            (0.5 * DURATION, "crash", lambda: restart_immediate(datadir)),
            (0.65 * DURATION, "gone", lambda: (open(gone_flag, "w").close(), event("gone", "endpoint answers 410")))]
    t = KILL_EVERY / 2
    while t < DURATION - 20:
        if all(abs(t - p[0]) > 15 for p in plan if p[1] == "crash"):
            plan.append((t, "crash", kill_worker))
        t += KILL_EVERY
    return sorted(plan, key=lambda p: p[0])


# ---------------------------------------------------------------- analysis

def read_nginx(paths):
    """[(t, status, message id, uri)] from the nginx access logs."""
    out = []
    for path in paths:
        if os.path.exists(path):
            with open(path) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) == 4:
                        out.append((float(parts[0]), int(parts[1]), parts[2], parts[3]))
    return out


def read_jsonl(path):
    out = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
    return out


def percentile(values, p):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100.0 * (len(values) - 1))))]


def validations():
    """Completion times of every validation pgbench ran (its per-transaction logs)."""
    times = []
    for path in glob.glob(os.path.join(WORK, "pgbench", "validate_*")):
        if path.endswith(".out"):
            continue
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 6 and parts[2] != "skipped":
                    times.append(int(parts[4]) + int(parts[5]) / 1e6)
    return times


def log_time(line):
    m = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) UTC", line)
    if not m:
        return None
    return datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=timezone.utc).timestamp()


def server_log_errors(start_offset):
    """ERROR/FATAL/PANIC lines of the run, split into those the chaos explains and the others."""
    lines = []
    with open(SERVER_LOG, errors="replace") as f:
        f.seek(start_offset)
        last = None
        for line in f:
            t = log_time(line)
            last = t if t is not None else last
            lines.append((last, line.rstrip("\n")))
    ready = [t for t, line in lines if "database system is ready to accept connections" in line]
    windows = []
    for t, kind, _ in events:
        if kind == "crash":
            back = min([r for r in ready if r >= t] or [t + 120])
            windows.append((t - 1, back + 15))
    explained, unexplained = [], []
    for t, line in lines:
        if not re.search(r"\b(ERROR|FATAL|PANIC):", line):
            continue
        if t is not None and any(a <= t <= b for a, b in windows):
            explained.append(line)
        elif t is not None and t < T0 and 'terminating background worker "benefits worker" due to administrator' in line:
            explained.append(line)      # the set-up's reload moved the worker to the soak database
        elif t is not None and t > STOP_TIME - 1 and "terminating connection" not in line and \
                ("pgbench" in line or "could not receive data" in line):
            explained.append(line)      # pgbench interrupted at the end of the load
        else:
            unexplained.append(line)
    return explained, unexplained


def grant_inconsistencies(db):
    """The checker query: grants that disagree with their subscription or order, keys with their grant."""
    return db.execute("""
WITH expected AS (     -- every benefit a live subscription's product carries
    SELECT s.id AS subscription_id, s.customer_id, pb.benefit_id
      FROM benefits.subscriptions s JOIN benefits.product_benefits pb ON pb.product_id = s.product_id
     WHERE s.status IN ('active', 'trialing')
)
SELECT 'live subscription without an active grant' AS problem, e.subscription_id::text AS subject, e.benefit_id::text AS detail
  FROM expected e
 WHERE NOT EXISTS (SELECT FROM benefits.grants g WHERE g.subscription_id = e.subscription_id
                     AND g.benefit_id = e.benefit_id AND g.state = 'active')
UNION ALL
SELECT 'grant live without a live subscription carrying its benefit', g.id::text, g.state
  FROM benefits.grants g
 WHERE g.subscription_id IS NOT NULL AND g.state <> 'revoked'
   AND NOT EXISTS (SELECT FROM expected e WHERE e.subscription_id = g.subscription_id AND e.benefit_id = g.benefit_id)
UNION ALL
SELECT 'paid purchase without an active grant', o.id::text, pb.benefit_id::text
  FROM benefits.orders o JOIN benefits.product_benefits pb ON pb.product_id = o.product_id
 WHERE o.billing_reason = 'purchase' AND o.status = 'paid'
   AND NOT EXISTS (SELECT FROM benefits.grants g WHERE g.order_id = o.id AND g.benefit_id = pb.benefit_id
                     AND g.state = 'active')
UNION ALL
SELECT 'refunded purchase with a live grant', o.id::text, g.id::text
  FROM benefits.orders o JOIN benefits.grants g ON g.order_id = o.id
 WHERE o.status = 'refunded' AND g.state <> 'revoked'
UNION ALL
SELECT 'active license grant whose key is not granted', g.id::text, k.status
  FROM benefits.grants g JOIN benefits.license_keys k ON k.id = (g.properties->>'license_key_id')::uuid
 WHERE g.state = 'active' AND k.status <> 'granted'
UNION ALL
SELECT 'granted key without an active grant', k.id::text, k.status
  FROM benefits.license_keys k
 WHERE k.status = 'granted'
   AND NOT EXISTS (SELECT FROM benefits.grants g WHERE (g.properties->>'license_key_id')::uuid = k.id AND g.state = 'active')
UNION ALL
SELECT 'rolled-back customer exists', c.id::text, c.external_id
  FROM benefits.customers c WHERE c.external_id LIKE 'rb-%'
""").fetchall()


def provider_inconsistencies(db, providers):
    """What the GitHub and Discord mocks hold against the active grants (access removed and added in order)."""
    state = providers.state()
    held_github = set()
    for repo, logins in list(state["collaborators"].items()) + list(state["invitations"].items()):
        held_github.update((repo, login.lower()) for login in logins)
    want_github = {("soak/app", r[0].lower()) for r in db.execute(
        """SELECT DISTINCT a.username FROM benefits.grants g JOIN benefits.benefits b ON b.id = g.benefit_id
             JOIN benefits.customer_accounts a ON a.customer_id = g.customer_id AND a.platform = 'github'
            WHERE b.type = 'github_repository' AND g.state = 'active'""")}
    held_discord = {(GUILD, user) for user, roles in state["members"].get(GUILD, {}).items() if ROLE in roles}
    want_discord = {(GUILD, r[0]) for r in db.execute(
        """SELECT DISTINCT a.account_id FROM benefits.grants g JOIN benefits.benefits b ON b.id = g.benefit_id
             JOIN benefits.customer_accounts a ON a.customer_id = g.customer_id AND a.platform = 'discord'
            WHERE b.type = 'discord' AND g.state = 'active'""")}
    return {"GitHub access without an active grant": held_github - want_github,
            "active GitHub grant without access": want_github - held_github,
            "Discord role without an active grant": held_discord - want_discord,
            "active Discord grant without the role": want_discord - held_discord}


def delivery_check(db, nginx_rows, hook_rows):
    """Every webhook row against the receivers' logs: done ones logged with a 2xx, nothing else missing."""
    delivered = {}
    for t, status, msg, uri in nginx_rows:
        if 200 <= status < 300:
            delivered.setdefault(uri, set()).add(msg)
    for r in hook_rows:
        if isinstance(r.get("answer"), int) and 200 <= r["answer"] < 300 and "webhook-id" in r["headers"]:
            delivered.setdefault(r["path"].split("?")[0], set()).add(r["headers"]["webhook-id"])
    problems, counts = [], {}
    gone_disabled = db.execute("""SELECT NOT e.enabled FROM benefits.webhook_endpoints e JOIN soak.endpoints s
                                   ON s.endpoint_id = e.id WHERE s.name = 'gone'""").fetchone()[0]
    committed = set()
    with db.transaction():
        cur = db.cursor(name="webhooks")
        cur.itersize = 50000
        cur.execute("""SELECT s.name, s.path, o.message_id, o.state FROM benefits.outbox o
                         JOIN soak.endpoints s ON s.endpoint_id = o.endpoint_id WHERE o.kind = 'webhook'""")
        rows = list(cur)
        cur.close()
    for name, path, msg, state in rows:
        committed.add(msg)
        c = counts.setdefault(name, {"committed": 0, "done": 0, "received": 0, "dead": 0})
        c["committed"] += 1
        if state == "done":
            c["done"] += 1
            if msg in delivered.get(path, ()):
                c["received"] += 1
            elif len(problems) < 20:
                problems.append(f"{name}: {msg} done but not in the receiver's log")
        elif state == "dead" and name == "gone" and gone_disabled:
            c["dead"] += 1
        elif len(problems) < 20:
            problems.append(f"{name}: {msg} left {state}")
    received = set().union(*delivered.values()) if delivered else set()
    stray = [m for m in received if m not in committed]
    return counts, problems, stray


def job_check(db, provider_rows, smtp_rows):
    """Provider and email jobs: none dead or left over, each done one matched by requests or messages received."""
    states = dict(db.execute("""SELECT kind || ' ' || state, count(*) FROM benefits.outbox
                                 WHERE kind IN ('github', 'discord', 'email') GROUP BY 1""").fetchall())
    ok_requests = {}
    for r in provider_rows:
        if isinstance(r.get("answer"), int) and (200 <= r["answer"] < 300 or r["answer"] == 404) and r["method"] != "GET":
            path = r["path"].split("?")[0]
            m = re.match(r"/repos/([^/]+)/([^/]+)/(?:collaborators/([^/]+)|invitations/\d+)", path)
            if m:
                key = "github:" + f"{m[1]}/{m[2]}/".lower() + (m[3] or "").lower()
            else:
                m = re.match(r"(?:/api/v\d+)?/guilds/([^/]+)/members/([^/]+)", path)
                key = f"discord:{m[1]}/{m[2]}" if m else path
            ok_requests[key] = ok_requests.get(key, 0) + 1
    short = []
    for chain, done in db.execute("""SELECT chain_key, count(*) FROM benefits.outbox
                                      WHERE kind IN ('github', 'discord') AND state = 'done'
                                        AND action NOT IN ('remove_collaborator') GROUP BY 1"""):
        if ok_requests.get(chain, 0) < done:
            short.append(f"{chain}: {done} done, {ok_requests.get(chain, 0)} answered")
    received = set()
    for r in smtp_rows:
        m = re.search(r"^Message-ID: <([^@>]+)@", r.get("data", ""), re.M | re.I)
        if m:
            received.add(m.group(1))
    emails = [r[0] for r in db.execute("SELECT message_id FROM benefits.outbox WHERE kind = 'email' AND state = 'done'")]
    missing_mail = [m for m in emails if m not in received]
    dead = db.execute("""SELECT kind, action, last_status, left(last_error, 160), count(*) FROM benefits.outbox
                          WHERE kind IN ('github', 'discord', 'email', 'oauth') AND state = 'dead'
                          GROUP BY 1, 2, 3, 4 ORDER BY 5 DESC LIMIT 5""").fetchall()
    short[:0] = [f"dead: {n} x {kind} {action} {status} {error}" for kind, action, status, error, n in dead]
    return states, short, len(emails), missing_mail


def rollback_leaks(nginx_rows, hook_rows, provider_rows, smtp_rows):
    """Anything of a rolled-back transaction that reached a receiver."""
    leaks = [f"nginx {msg}" for _, _, msg, _ in nginx_rows if msg.startswith("msg_rollback_")]
    for r in hook_rows:
        try:
            customer = json.loads(r.get("body") or "{}").get("data", {}).get("customer") or {}
        except ValueError:
            customer = {}
        if str(customer.get("external_id", "")).startswith("rb-"):
            leaks.append("webhook event for a rolled-back customer " + r["headers"].get("webhook-id", ""))
    for r in provider_rows:
        if re.search(r"/collaborators/gh-rb-|/members/777", r["path"]):
            leaks.append(f"provider call {r['method']} {r['path']}")
    for r in smtp_rows:
        if any("rb-" in a for a in r.get("rcpt_tos", [])):
            leaks.append(f"email to {r['rcpt_tos']}")
    return leaks


def memory_growth(rows, field):
    """Growth of a memory figure per crash-to-crash epoch (each restarts every process), in the run's last two thirds.

    A process warms up first: its caches fill and its heap reaches the size
    its load needs, which took the worker 1 to 2.5 minutes after a restart in
    the runs sampled.  So each epoch is judged on its own last two thirds,
    and only epochs of at least MIN_JUDGED_EPOCH seconds are judged (a kill
    soon after the restart leaves one too short to tell warming up from
    growing).  The worker's memory follows its load (requests in flight), so
    samples swing either way; an epoch's growth is that of its least-squares
    line: the line's value at the epoch's last sample over its value at the
    first, less one."""
    start = T0 + DURATION / 3
    bounds = sorted([t for t, kind, _ in events if kind == "crash"] + [T0 + DURATION + 1e9])
    epochs, begin = [], T0
    for b in bounds:
        end = min(b, STOP_TIME)
        warm = begin + (end - begin) / 3
        sample = [(r["t"], r[field]) for r in rows if warm <= r["t"] < end and r["t"] >= start and r.get(field)]
        if end - begin >= MIN_JUDGED_EPOCH and len(sample) >= 6:
            n = len(sample)
            mt = sum(t for t, _ in sample) / n
            mv = sum(v for _, v in sample) / n
            slope = (sum((t - mt) * (v - mv) for t, v in sample) / sum((t - mt) ** 2 for t, _ in sample))
            first = mv + slope * (sample[0][0] - mt)
            last = mv + slope * (sample[-1][0] - mt)
            epochs.append((begin, n, first, last, last / first - 1))
        begin = b
    return epochs


def bucketize(rows, nginx_rows, hook_rows, validation_times):
    """Per sample: deliveries/s, failed attempts/s, first-request latency, validations/s, WAL/s."""
    first_seen = {}
    for t, status, msg, uri in nginx_rows:
        if uri == "/hook/ok" and msg.startswith("msg_soak_") and msg not in first_seen:
            first_seen[msg] = t
    nb = len(rows)

    def index(t):
        return int((t - T0) // SAMPLE_SECONDS)
    ok = [0] * nb
    failed = [0] * nb
    lat = [[] for _ in range(nb)]
    val = [0] * nb
    for t, status, msg, uri in nginx_rows:
        i = index(t)
        if 0 <= i < nb:
            if 200 <= status < 300:
                ok[i] += 1
            else:
                failed[i] += 1
    for r in hook_rows:
        i = index(r["t"])
        if 0 <= i < nb:
            if isinstance(r.get("answer"), int) and 200 <= r["answer"] < 300:
                ok[i] += 1
            else:
                failed[i] += 1
    for msg, t in first_seen.items():
        i = index(t)
        if 0 <= i < nb:
            lat[i].append((t - int(msg.rsplit("_", 1)[1]) / 1000.0) * 1000)
    for t in validation_times:
        i = index(t)
        if 0 <= i < nb:
            val[i] += 1
    out = []
    for i, r in enumerate(rows):
        wal = None
        if i and r.get("wal_bytes") is not None and rows[i - 1].get("wal_bytes") is not None:
            wal = (r["wal_bytes"] - rows[i - 1]["wal_bytes"]) / (r["t"] - rows[i - 1]["t"]) / 1e6
        out.append({"minute": (r["t"] - T0) / 60, "delivered_per_s": ok[i] / SAMPLE_SECONDS,
                    "failed_per_s": failed[i] / SAMPLE_SECONDS, "validations_per_s": val[i] / SAMPLE_SECONDS,
                    "latency_p50_ms": percentile(lat[i], 50), "latency_p99_ms": percentile(lat[i], 99),
                    "wal_mb_per_s": wal, **r})
    all_lat = [x for bucket in lat for x in bucket]
    return out, all_lat


def write_samples(buckets):
    cols = ["minute", "delivered_per_s", "failed_per_s", "validations_per_s", "latency_p50_ms", "latency_p99_ms",
            "pending_due", "pending_retry", "running", "dead", "worker_rss_kb", "backend_rss_median_kb",
            "backend_rss_max_kb", "wal_mb_per_s", "backends", "worker_pid", "worker_rss_floor_kb",
            "backend_rss_floor_max_kb"]
    with open(os.path.join(WORK, "samples.tsv"), "w") as f:
        f.write("# " + "\t".join(cols) + "\n")
        for b in buckets:
            f.write("\t".join("NaN" if b.get(c) is None else ("%.3f" % b[c] if isinstance(b[c], float) else str(b[c]))
                              for c in cols) + "\n")
    with open(os.path.join(WORK, "events.tsv"), "w") as f:
        for t, kind, label in events:
            f.write("%.3f\t%s\t%s\n" % ((t - T0) / 60, kind, label))


def plot(title):
    """gnuplot draws tmp_soak/soak.png from samples.tsv, the chaos events as vertical lines."""
    colors = {"crash": "#c0392b", "receiver": "#2874a6", "gone": "#7d3c98", "load": "#555555"}
    marks = []
    for i, (t, kind, label) in enumerate(events):
        x = (t - T0) / 60
        marks.append(f'set arrow from {x:.3f}, graph 0 to {x:.3f}, graph 1 nohead lw 1 dt 2 lc rgb "{colors[kind]}"')
    labels = []
    short = {"crash": "K", "receiver": "R", "gone": "410", "load": "end"}
    for t, kind, label in events:
        x = (t - T0) / 60
        text = "restart" if "restart" in label else short[kind]
        labels.append(f'set label "{text}" at {x:.3f}, graph 1.05 center font ",7" tc rgb "{colors[kind]}"')
    with open(os.path.join(WORK, "events_lines.gp"), "w") as f:
        f.write("\n".join(marks) + "\n")
    with open(os.path.join(WORK, "events_labels.gp"), "w") as f:
        f.write("\n".join(labels) + "\n")
    xmax = (max(t for t, _, _ in events) - T0) / 60 if events else MINUTES
    with open(os.path.join(WORK, "samples.tsv")) as f:
        rows = [line.split("\t", 1)[0] for line in f if not line.startswith("#")]
    xmax = max([xmax] + [float(r) for r in rows])
    subprocess.run(["gnuplot", "-e", f"work='{WORK}'; title='{title}'; xmax={xmax:.3f}",
                    os.path.join(HERE, "plot.gp")], check=True)
    # 64 colours instead of cairo's truecolour: a third of the size, small
    # enough for the README
    png = os.path.join(WORK, "soak.png")
    subprocess.run(["pngquant", "--force", "--speed", "1", "--output", png, "64", png], check=True)


# ---------------------------------------------------------------- main

STOP_TIME = None


def main():
    global T0, STOP_TIME
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    if os.getuid() == 0:
        os.chmod(WORK, 0o777)
    log_offset = os.path.getsize(SERVER_LOG)
    nginx = Nginx("nginx", f"""        location = /hook/flaky {{ if ($flaky) {{ return 503; }} return 204; }}
        location = /hook/gone {{ if (-f {WORK}/gone) {{ return 410; }} return 204; }}""")
    vanish = Nginx("vanish", "")
    hooks = ProviderMock("hooks", {"fail_every": 10, "fail_modes": ["500", "429"], "retry_after": 1})
    providers = ProviderMock("providers", {"fail_every": 20, "fail_modes": ["429", "429body", "403reset", "500"],
                                           "retry_after": 1})
    smtp = SmtpMock()
    receivers = [nginx, vanish, hooks, providers, smtp]
    try:
        return run(nginx, vanish, hooks, providers, smtp, log_offset)
    finally:
        for r in receivers:
            try:
                r.stop()
            except Exception:
                pass


def run(nginx, vanish, hooks, providers, smtp, log_offset):
    global T0, STOP_TIME
    db = connect(dbname="postgres")
    db.execute("CREATE DATABASE soak")
    db.close()
    db = connect()
    nkeys = setup(db, nginx, vanish, hooks, providers, smtp)
    say("set-up: waiting for the worker to deliver what the set-up queued")
    deadline = time.time() + 600
    while time.time() < deadline and db.execute(
            "SELECT count(*) FROM benefits.outbox WHERE state IN ('pending', 'running')").fetchone()[0]:
        time.sleep(2)
    db.close()
    datadir = data_directory()
    scripts = write_pgbench_scripts(nkeys)
    say(f"load for {MINUTES:g} min: webhooks {RATE}/s in batches of {BATCH}, validations {VALIDATION_RATE}/s "
        f"from {CLIENTS} clients, churn {CHURN_RATE:g}/s, portal {PORTAL_RATE:g}/s; worker killed every "
        f"{KILL_EVERY:.0f} s")
    T0 = time.time()
    validate = PgbenchLoop("validate", ["-M", "prepared", "-U", "soak_public", "-c", str(CLIENTS), "-j", "2",
                                        "-R", str(VALIDATION_RATE)], [scripts["validate"]])
    feed = PgbenchLoop("feed", ["-M", "prepared", "-c", "2", "-j", "1", "-R", "%.2f" % (RATE / BATCH / 0.95)],
                       [scripts["feed"] + "@19", scripts["feed_rollback"] + "@1"])
    churn = [Churn(g, CHURN_RATE / 2) for g in (0, 1)]
    portal = Portal(PORTAL_RATE)
    sampler = Sampler()
    load = [validate, feed, portal] + churn
    for th in load + [sampler]:
        th.start()
    plan = chaos_schedule(vanish, os.path.join(WORK, "gone"), datadir)
    for offset, kind, action in plan:
        delay = T0 + offset - time.time()
        if delay > 0:
            time.sleep(delay)
        try:
            action()
        except Exception as e:   # a chaos step that fails is reported, the run goes on
            say(f"chaos step failed: {e}")
    time.sleep(max(0, T0 + DURATION - time.time()))
    STOP_TIME = time.time()
    stop_load.set()
    event("load", "load stopped")
    for th in (validate, feed):
        th.stop()
    for th in load:
        th.join(timeout=30)

    say("draining the outbox")
    drained = False
    deadline = time.time() + DRAIN_SECONDS
    while time.time() < deadline:
        try:
            with connect() as c:
                left = c.execute("""SELECT count(*) FROM benefits.outbox WHERE state IN ('pending', 'running')""").fetchone()[0]
        except psycopg.Error:
            left = None
        if left == 0:
            drained = True
            break
        time.sleep(2)
    drain_seconds = time.time() - STOP_TIME
    time.sleep(3)                      # the worker records its last answers, nginx flushes its log
    stop_sampler.set()
    sampler.join()
    nginx.stop()
    vanish.stop()

    say("checking")
    db = connect()
    nginx_rows = read_nginx([nginx.log, vanish.log])
    hook_rows = [r for r in read_jsonl(hooks.log) if r.get("method") == "POST"]
    provider_rows = read_jsonl(providers.log)
    smtp_rows = [r for r in read_jsonl(smtp.log) if "data" in r]
    results = []

    def check(name, ok, detail):
        results.append((name, ok))
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}", flush=True)

    counts, problems, stray = delivery_check(db, nginx_rows, hook_rows)
    states, short, emails, missing_mail = job_check(db, provider_rows, smtp_rows)
    summary = "; ".join(f"{n} {c['received']}/{c['done']} done received of {c['committed']} committed"
                        + (f", {c['dead']} dead after its 410" if c["dead"] else "") for n, c in sorted(counts.items()))
    check("drained", drained, f"outbox empty {drain_seconds:.0f} s after the load stopped" if drained
          else f"jobs still queued {DRAIN_SECONDS} s after the load stopped")
    check("every committed webhook delivered", not problems and drained, summary +
          ("" if not problems else "; " + "; ".join(problems[:5])))
    bad_jobs = {k: v for k, v in states.items() if not k.endswith(" done")}
    check("every provider call and email delivered", not bad_jobs and not short and not missing_mail,
          f"jobs by state {dict(sorted(states.items()))}; {emails - len(missing_mail)}/{emails} sent emails "
          f"in the SMTP log" + ("; " + "; ".join(short[:5]) if short else "") +
          (f"; not received: {missing_mail[:3]}" if missing_mail else ""))
    leaks = rollback_leaks(nginx_rows, hook_rows, provider_rows, smtp_rows)
    rolled = sum(c.rolled_back for c in churn)
    rb_batches = sum(1 for p in glob.glob(os.path.join(WORK, "pgbench", "feed_*")) if not p.endswith(".out")
                     for line in open(p) if line.split()[3:4] == ["1"])
    check("nothing rolled back was sent", not leaks and not stray,
          f"{rolled} churn transactions and {rb_batches} webhook batches rolled back, "
          f"{len(leaks)} of their markers and {len(stray)} uncommitted webhook ids at the receivers"
          + (f"; {leaks[:3]} {stray[:3]}" if leaks or stray else ""))
    bad = grant_inconsistencies(db)
    provider_bad = provider_inconsistencies(db, providers)
    n_provider_bad = sum(len(v) for v in provider_bad.values())
    grants = db.execute("SELECT state, count(*) FROM benefits.grants GROUP BY 1 ORDER BY 1").fetchall()
    check("grants consistent with subscriptions, orders, keys and provider state", not bad and not n_provider_bad,
          f"grants {dict(grants)}; {len(bad)} inconsistent rows, {n_provider_bad} provider mismatches"
          + ("; " + "; ".join(f"{p} {s} {d}" for p, s, d in bad[:5]) if bad else "")
          + ("; " + "; ".join(f"{k}: {sorted(v)[:3]}" for k, v in provider_bad.items() if v) if n_provider_bad else ""))
    explained, unexplained = server_log_errors(log_offset)
    client_errors = [e for th in churn + [portal] for e in th.errors if not any(
        a - 1 <= e[0] <= a + 60 for a, kind, _ in events if kind == "crash")]
    check("no server log error the chaos did not cause", not unexplained and not client_errors,
          f"{len(explained)} ERROR/FATAL lines during crash recovery, {len(unexplained)} others, "
          f"{len(client_errors)} client errors outside it"
          + ("".join("\n      " + line[:300] for line in unexplained[:10]) if unexplained else "")
          + ("".join("\n      " + e[1][:300] for e in client_errors[:10]) if client_errors else ""))

    buckets, all_lat = bucketize(sampler.rows, nginx_rows, hook_rows, validations())
    write_samples(buckets)
    mem_ok, mem_detail = True, []
    for field, label in (("worker_rss_floor_kb", "worker"), ("backend_rss_floor_max_kb", "largest backend")):
        epochs = memory_growth(sampler.rows, field)
        growth = [g for *_, g in epochs]
        if not epochs:
            mem_ok = False
            mem_detail.append(f"{label}: no epoch of {MIN_JUDGED_EPOCH} s or more in the last two thirds to judge")
            continue
        worst = max(growth)
        mem_ok &= worst < 0.05
        mem_detail.append(f"{label} {epochs[0][2] / 1024:.1f}-{max(e[3] for e in epochs) / 1024:.1f} MB private "
                          f"(least per 10 s), largest growth within an epoch {worst * 100:+.1f} % "
                          f"({len(epochs)} epochs)")
    check("memory flat after warm-up (growth < 5 % over the last two thirds)", mem_ok, "; ".join(mem_detail))

    load_buckets = [b for b in buckets if b["t"] <= STOP_TIME and b["t"] >= T0 + 60]
    rate = statistics.median([b["delivered_per_s"] for b in load_buckets]) if load_buckets else 0
    vals = statistics.median([b["validations_per_s"] for b in load_buckets]) if load_buckets else 0
    total = sum(c["committed"] for c in counts.values())
    print(f"figures: webhook deliveries median {rate:.0f}/s over 10 s samples (target {RATE}/s, "
          f"ratio {rate / RATE:.2f}), {total} webhooks committed; validations median {vals:.0f}/s "
          f"(target {VALIDATION_RATE}/s, ratio {vals / VALIDATION_RATE:.2f}); "
          f"commit-to-request latency (always-up endpoint) p50 {percentile(all_lat, 50) or 0:.0f} ms, p99 {percentile(all_lat, 99) or 0:.0f} ms; "
          f"churn {sum(sum(c.counts.values()) for c in churn)} transactions "
          f"({', '.join(f'{k} {v}' for k, v in sorted(merge_counts(churn).items()))}), portal calls {portal.calls}; "
          f"{len([e for e in events if e[1] == 'crash'])} crashes", flush=True)
    plot(f"make soak: {MINUTES:g} min on {os.cpu_count()} shared cores, target {RATE} webhooks/s")
    say(f"samples in {WORK}/samples.tsv, picture {WORK}/soak.png")
    failed = [n for n, ok in results if not ok]
    print("soak: " + ("PASS" if not failed else "FAIL (" + ", ".join(failed) + ")"), flush=True)
    return 1 if failed else 0


def merge_counts(churn):
    out = {}
    for c in churn:
        for k, v in c.counts.items():
            out[k] = out.get(k, 0) + v
    return out


if __name__ == "__main__":
    sys.exit(main())
