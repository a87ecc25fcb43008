#!/usr/bin/python3
"""Random-input campaign against every public SQL function of schema benefits.

    /usr/bin/python3 test/fuzz/sql_fuzz.py --seed 1 --seconds 300 [--iterations N] [--minimize]
    test/fuzz/run.sh --seed 1 --seconds 300 --minimize       (a cluster with the ASan build)

Connects with the usual libpq environment (PGHOST, PGPORT, PGUSER; the role
must be a superuser), creates a scratch database (--database, dropped and
created again), installs the extension there and seeds a realistic dataset:
two organizations, products, meters, files, one benefit of each type made by
benefits.create_benefit, customers with subscriptions and an order, license
keys (granted and imported) with activations, linked accounts, a webhook
endpoint with dead jobs, customer session tokens and tables of the
application's own (tracked and not).  Every id is chosen by the driver, so a
reproducer replays on a fresh database; another dataset is added every
--reseed-every calls.

It then lists every function of schema benefits from pg_proc (trigger
functions skipped) and, until --iterations calls or --seconds have passed,
calls random ones: half the calls with every argument valid but one, some
with all valid, the rest with all random.  A random argument of its declared
type is NULL, an empty or huge (up to 1 MB) string, control characters, odd
Unicode, path and SQL metacharacters, an extreme integer, timestamp or
interval, a random uuid or one of the wrong kind, jsonb of every shape (1000
levels deep, huge arrays, 1e308, -0, strings for objects, unexpected keys),
benefit properties of every type mutated one field at a time, or an array
with NULLs, other bounds or dimensions.  Valid arguments are the dataset's
ids, keys, tokens and documents.  A few calls change subscriptions and
tracked tables instead, so the triggers see fuzzed state too.

Each call runs in its own transaction with statement_timeout set (a share of
the successful ones commit); an SQL error is fine.  After every call the
driver checks that the connection is alive and that SELECT 1 works.  A lost
connection is a crash: the call is written to --out as a psql reproducer with
the dataset and every committed call before it, and the driver reconnects
once the server has restarted.  With --minimize it first replays the call on
a fresh database with the extension alone, then with the dataset, and writes
the smallest form that still fails.  Sanitizer reports in the server log
(--server-log), text results that are not valid UTF-8 and calls that
statement_timeout cannot end are findings too.  The last line is a summary:
calls, outcomes by SQLSTATE class, findings by kind; the exit status is 1
when anything was found.

    --replay FILE    runs a reproducer on a fresh database and says whether it
                     still fails (exit status 1 if it does).

Only the standard library and psycopg 3 are used (Debian's python3-psycopg).
"""
import argparse
import collections
import copy
import json
import os
import random
import re
import sys
import threading
import time
import uuid

import psycopg
import psycopg.adapt
from psycopg import errors as pgerrors

SEPARATOR = "-- >8 --"
BYTEA_OIDS = (17, 1001)   # between statements of a reproducer (a psql comment)

INT4_MIN, INT4_MAX = -2**31, 2**31 - 1
INT8_MIN, INT8_MAX = -2**63, 2**63 - 1
INT2_MIN, INT2_MAX = -2**15, 2**15 - 1

BENEFIT_TYPES = ["license_keys", "github_repository", "discord", "downloadable", "meter_credits", "custom"]
TYPE_ALIASES = ["downloadables", "meter_credit", "LICENSE_KEYS", "license_keys ", "", "unknown", "custom\t"]

ODD_UNICODE = ["\u202e", "\ufeff", "\u200b", "\u200d", "\uffff", "\ufffe", "\U0010ffff", "e\u0301", "\U0001f600",
               "\u0130", "\u00df", "\u01c5", "\u2028", "\u2029", "\u00a0", "\u216b", "\U0001d518", "\ufb03",
               "\u0085", "\u0300" * 50, "\u4e2d\u6587", "\u0645\u0631\u062d\u0628\u0627", "\U000e0041", "\u180e",
               "\u3000", "\uff0e\uff0e\uff0f", "\u2024\u2024/", "\u2215", "\ufe52", "\U0001f1fa\U0001f1f8"]
CONTROL = [chr(i) for i in range(1, 32)] + ["\x7f"]
META = ["'", '"', "\\", ";", "--", "/*", "*/", "$$", "$1", "%s", "%n", "%x%x%x%x", "%", "_", "{", "}", "[", "]",
        "(", ")", ",", "=", "&", "<", ">", "?", "#", "`", "|", " OR 1=1", "' OR '1'='1", "\\x00", "\\u0000",
        "NULL", "null", "'); DROP TABLE benefits.grants; --", "<script>alert(1)</script>", "${jndi:x}", "\r\n\r\n",
        "%s%s%s%s%s%s%s%s%s%s%n", "{{7*7}}", "&#0;", "\\\\", "*", "..\\..\\"]
PATHS = ["..", "../", "../../etc/passwd", "/", "//", "%2e", "%2e%2e", "%2e%2e%2f", "%2F", "..%2f", ".", "./",
         "\\..\\", "%00", "%", "%%", "%zz", "~", "a/../b", "/./", "?x=1", "#frag", "%c0%ae%c0%ae/"]
NUMERIC_TEXT = ["0", "-1", "1", "2147483647", "2147483648", "-2147483649", "9223372036854775807",
                "9223372036854775808", "18446744073709551615", "18446744073709551616", "1e308", "1e309", "-0",
                "NaN", "Infinity", "-Infinity", "0x10", "1.5", " 1", "1 ", "+1", "00000000000000000001",
                "1" * 400]
URLS = ["https://example.com/hooks", "http://example.com/", "https://example.com:8443/a?b=c#d",
        "http://127.0.0.1/", "http://[::1]/", "http://[::ffff:127.0.0.1]/", "http://0x7f.1/", "http://2130706433/",
        "http://10.0.0.1/", "http://169.254.169.254/latest/meta-data/", "http://[64:ff9b::a00:1]/",
        "http://[2002:a00:1::]/", "https://user:pass@example.com/", "file:///etc/passwd", "gopher://x/",
        "ftp://example.com/", "https://\u4f8b\u3048.jp/", "//evil.example/", "/portal/deactivate", "/",
        "javascript:alert(1)", "https://", "https://[", "http://%zz/", "https://example.com:99999/",
        "https://example.com:-1/", "https:///path", "http://[fe80::1%25eth0]/", "HTTPS://EXAMPLE.COM/",
        "http://0/", "http://0.0.0.0/", "http://[::]/", "https://example.com/" + "a" * 3000,
        "https://exa mple.com/", "https://example.com/\u202e", "https://a" * 200, "data:text/html,x",
        "http://example.com/%2e%2e/%2e%2e/", "https://example.com\\@evil/", "http://[::1]:80/",
        "http://100.64.0.1/", "http://192.0.2.1/", "http://224.0.0.1/", "http://255.255.255.255/"]
TIMESTAMPS = ["'infinity'::timestamptz", "'-infinity'::timestamptz", "'epoch'::timestamptz", "now()",
              "now() + interval '1 second'", "now() - interval '1 second'", "now() + interval '100 years'",
              "'294276-12-31 23:59:59.999999+00'::timestamptz", "'4713-01-01 00:00:00+00 BC'::timestamptz",
              "'2000-02-29 12:00:00+14'::timestamptz", "'1970-01-01 00:00:00.000001+00'::timestamptz",
              "'2038-01-19 03:14:08+00'::timestamptz", "'9999-12-31 23:59:59+00'::timestamptz",
              "'0001-01-01 00:00:00+00'::timestamptz", "'2031-03-05 10:00:00+00'::timestamptz"]
INTERVALS = ["'0'::interval", "'1 microsecond'::interval", "'-1 second'::interval", "'1 second'::interval",
             "'1 hour'::interval", "'7 days'::interval", "'1 month'::interval", "'1 year'::interval",
             "'604800 seconds'::interval", "'604801 seconds'::interval", "'-1 year'::interval",
             "'178000000 years'::interval", "'-178000000 years'::interval", "'2147483647 days'::interval",
             "'-2147483648 days'::interval", "'2147483647 months'::interval", "'-2147483648 months'::interval",
             "'2147483647 months 2147483647 days 2562047788:00:54.775807'::interval",
             "'-2147483648 months -2147483648 days -2562047788:00:54.775808'::interval",
             "'1 month -30 days'::interval", "'1 day -86400 seconds'::interval", "'0.5 seconds'::interval",
             "'106751991 days'::interval", "'9223372036854 seconds'::interval"]
GITHUB_LOGINS = ["octocat", "a", "a" * 39, "a" * 40, "-abc", "abc-", "a--b", "A1", "x" * 100, "bad/name",
                 "..", "%2e%2e", "user name", "\u00fcser", ""]
DISCORD_IDS = ["333", "1", "0", "18446744073709551615", "18446744073709551616", "99999999999999999999",
               "01", "-1", "1e5", "123abc", "x" * 21, ""]
EVENT_TYPES_FALLBACK = ["benefit_grant.created", "benefit_grant.updated", "benefit_grant.revoked",
                        "benefit.created", "benefit.updated", "meter.low_balance", "webhook_endpoint.disabled"]
COLUMN_NAMES = ["id", "customer", "product", "status", "current_period_end", "cancel_at_period_end",
                "subscription", "billing_reason", "ctid", "xmin", "tableoid", "oid", "nonexistent", "ID", " id",
                '"id"', 'a"b', "id; DROP TABLE x", "", "x" * 64, "customer_id", "product_id", "status_map",
                "\u00e9t\u00e9", "1abc"]
STATUS_VALUES = ["incomplete", "incomplete_expired", "trialing", "active", "past_due", "unpaid", "canceled",
                 "revoked", "paid", "refunded", "partially_refunded", "disputed", "pending"]


def lit(s):
    """A standard SQL string literal (standard_conforming_strings is on)."""
    return "'" + s.replace("'", "''") + "'"


def jlit(obj):
    return lit(jdump(obj)) + "::jsonb"


def ulit(u):
    return lit(str(u)) + "::uuid"


class Dataset:
    """The ids of one seeded dataset (every id chosen by the driver)."""

    def __init__(self, rng, n):
        u = lambda: uuid.UUID(int=rng.getrandbits(128), version=4)
        self.n = n
        self.org, self.other_org = u(), u()
        self.products = [u() for _ in range(4)]          # 0: everything, 1: keys, 2: one-time, 3: other org
        self.meters = [u(), u()]
        self.files = [u() for _ in range(4)]
        self.benefits = {t: u() for t in BENEFIT_TYPES}
        self.benefit2 = u()                               # a second license_keys benefit (no customer admin)
        self.other_benefit = u()                          # in the other organization
        self.customers = [u() for _ in range(5)]         # 0..2 in org, 3 in other org, 4 in org holding nothing
        self.ext_ids = ["cust-%d-%d" % (n, i) for i in range(5)]
        self.subscriptions = [u() for _ in range(3)]
        self.orders = [u()]
        self.endpoint = u()
        self.license_key_ids = [u(), u(), u()]           # generated (c0, c1), imported (c2)
        self.imported_key = "FUZZ-%d-%08X" % (n, rng.getrandbits(32))
        self.activations = [u(), u()]
        self.tokens = ["bcs_fuzz%d%s" % (n, "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789")
                                                    for _ in range(40))) for _ in range(3)]
        self.tracked = "public.fuzz_subs_%d" % n
        self.tracked_orders = "public.fuzz_orders_%d" % n
        self.plain_tables = ["public.fuzz_plain_%d_a" % n, "public.fuzz_plain_%d_b" % n]   # not tracked
        self.docs = []                                    # portal documents, fetched after seeding

    def all_uuids(self):
        out = [self.org, self.other_org, self.endpoint, self.other_benefit, self.benefit2]
        for lst in (self.products, self.meters, self.files, self.customers, self.subscriptions, self.orders,
                    self.license_key_ids, self.activations):
            out.extend(lst)
        out.extend(self.benefits.values())
        return out

    def seed_sql(self):
        o, oo = ulit(self.org), ulit(self.other_org)
        p = [ulit(x) for x in self.products]
        m = [ulit(x) for x in self.meters]
        f = [ulit(x) for x in self.files]
        c = [ulit(x) for x in self.customers]
        s = []
        s.append("INSERT INTO benefits.organizations (id, name, grace_period) VALUES (%s, %s, '3 days'), (%s, %s, '0')"
                 % (o, lit("Acme <Tools> & Co %d" % self.n), oo, lit("Elsewhere %d" % self.n)))
        s.append("INSERT INTO benefits.products (id, organization_id, name, external_id) VALUES "
                 "(%s, %s, 'Pro', 'prod-pro-%d'), (%s, %s, 'Basic', 'prod-basic-%d'), "
                 "(%s, %s, 'Pack', 'prod-pack-%d'), (%s, %s, 'Other', 'prod-other-%d')"
                 % (p[0], o, self.n, p[1], o, self.n, p[2], o, self.n, p[3], oo, self.n))
        s.append("INSERT INTO benefits.meters (id, organization_id, name, allow_overage) VALUES "
                 "(%s, %s, 'API calls', false), (%s, %s, 'Overage', true)" % (m[0], o, m[1], o))
        s.append("INSERT INTO benefits.files (id, organization_id, name, size, mime_type, storage_key) VALUES "
                 "(%s, %s, 'Manual & Guide.pdf', 2048, 'application/pdf', %s), "
                 "(%s, %s, 'app \"v1\".zip', 10485760, 'application/zip', %s), "
                 "(%s, %s, '\u00e9t\u00e9 \u2014 notes.txt', 10, 'text/plain', %s), "
                 "(%s, %s, 'big.iso', 6442450944, 'application/octet-stream', %s)"
                 % (f[0], o, lit("%s/%s/Manual.pdf" % (self.org, self.files[0])),
                    f[1], o, lit("%s/%s/app.zip" % (self.org, self.files[1])),
                    f[2], o, lit("%s/%s/notes.txt" % (self.org, self.files[2])),
                    f[3], o, lit("%s/%s/big.iso" % (self.org, self.files[3]))))
        s.append("SELECT benefits.complete_file_upload(%s), benefits.complete_file_upload(%s), "
                 "benefits.complete_file_upload(%s)" % (f[0], f[1], f[2]))
        for t in BENEFIT_TYPES:
            props = valid_properties(t, self)
            s.append("SELECT benefits.create_benefit(%s, %s, %s, %s)" % (lit(t), o, lit("fuzz %s %d" % (t, self.n)),
                                                                       jlit(props)))
            s.append("UPDATE benefits.benefits SET id = %s WHERE description = %s"
                     % (ulit(self.benefits[t]), lit("fuzz %s %d" % (t, self.n))))
        s.append("SELECT benefits.create_benefit('license_keys', %s, %s, %s)"
                 % (o, lit("fuzz basic key %d" % self.n), jlit({"prefix": "BASIC", "expires": {"ttl": 1, "timeframe": "year"},
                                                                "activations": 1, "limit_usage": 5})))
        s.append("UPDATE benefits.benefits SET id = %s WHERE description = %s"
                 % (ulit(self.benefit2), lit("fuzz basic key %d" % self.n)))
        s.append("SELECT benefits.create_benefit('custom', %s, %s, '{\"note\": \"elsewhere\"}')"
                 % (oo, lit("fuzz other %d" % self.n)))
        s.append("UPDATE benefits.benefits SET id = %s WHERE description = %s"
                 % (ulit(self.other_benefit), lit("fuzz other %d" % self.n)))
        s.append("SELECT benefits.update_product_benefits(%s, ARRAY[%s]::uuid[])"
                 % (p[0], ", ".join(ulit(self.benefits[t]) for t in BENEFIT_TYPES)))
        s.append("SELECT benefits.update_product_benefits(%s, ARRAY[%s]::uuid[])" % (p[1], ulit(self.benefit2)))
        s.append("SELECT benefits.update_product_benefits(%s, ARRAY[%s, %s]::uuid[])"
                 % (p[2], ulit(self.benefits["custom"]), ulit(self.benefits["meter_credits"])))
        s.append("SELECT benefits.update_product_benefits(%s, ARRAY[%s]::uuid[])" % (p[3], ulit(self.other_benefit)))
        s.append("INSERT INTO benefits.customers (id, organization_id, external_id, email, name) VALUES "
                 "(%s, %s, %s, 'ada@example.com', 'Ada \"Countess\" <Lovelace>'), "
                 "(%s, %s, %s, 'bob@example.com', NULL), (%s, %s, %s, NULL, NULL), "
                 "(%s, %s, %s, 'other@elsewhere.test', 'Other'), (%s, %s, %s, 'new@example.com', 'New')"
                 % (c[0], o, lit(self.ext_ids[0]), c[1], o, lit(self.ext_ids[1]), c[2], o, lit(self.ext_ids[2]),
                    c[3], oo, lit(self.ext_ids[3]), c[4], o, lit(self.ext_ids[4])))
        s.append("SELECT benefits.link_account(%s, 'discord', '333', 'ada#1', 'oauth-token')" % c[0])
        s.append("SELECT benefits.link_account(%s, 'github', '12345', 'octocat')" % c[0])
        s.append("INSERT INTO benefits.subscriptions (id, customer_id, product_id, status, current_period_end) VALUES "
                 "(%s, %s, %s, 'active', now() + interval '30 days'), "
                 "(%s, %s, %s, 'active', now() + interval '30 days'), "
                 "(%s, %s, %s, 'trialing', now() + interval '3 days')"
                 % (ulit(self.subscriptions[0]), c[0], p[0], ulit(self.subscriptions[1]), c[1], p[1],
                    ulit(self.subscriptions[2]), c[3], p[3]))
        s.append("INSERT INTO benefits.orders (id, customer_id, product_id, billing_reason, status) VALUES "
                 "(%s, %s, %s, 'purchase', 'paid')" % (ulit(self.orders[0]), c[0], p[2]))
        s.append("SELECT benefits.grant_benefit(%s, %s)" % (c[2], ulit(self.benefits["custom"])))
        s.append("SELECT benefits.grant_benefit(%s, %s)" % (c[1], ulit(self.benefits["license_keys"])))
        s.append("UPDATE benefits.license_keys SET id = %s WHERE customer_id = %s AND benefit_id = %s"
                 % (ulit(self.license_key_ids[0]), c[0], ulit(self.benefits["license_keys"])))
        s.append("UPDATE benefits.license_keys SET id = %s WHERE customer_id = %s AND benefit_id = %s"
                 % (ulit(self.license_key_ids[1]), c[1], ulit(self.benefit2)))
        s.append("SELECT benefits.import_license_key(%s, %s, %s, limit_usage => 10, limit_activations => 2)"
                 % (c[2], ulit(self.benefits["license_keys"]), lit(self.imported_key)))
        s.append("UPDATE benefits.license_keys SET id = %s WHERE customer_id = %s AND benefit_id = %s"
                 % (ulit(self.license_key_ids[2]), c[2], ulit(self.benefits["license_keys"])))
        s.append("INSERT INTO benefits.license_key_activations (id, license_key_id, label, conditions, meta) VALUES "
                 "(%s, %s, 'Laptop <1>', '{\"machine\": \"m1\"}', '{\"os\": \"linux\"}'), "
                 "(%s, %s, 'Desktop', '{}', '{}')"
                 % (ulit(self.activations[0]), ulit(self.license_key_ids[0]), ulit(self.activations[1]),
                    ulit(self.license_key_ids[2])))
        s.append("SELECT benefits.record_usage(%s, %s, 3)" % (c[0], m[0]))
        s.append("SELECT benefits.create_webhook_endpoint(%s, 'https://example.com/hooks', "
                 "ARRAY['benefit_grant.created', 'benefit_grant.updated', 'benefit_grant.revoked'])" % o)
        s.append("UPDATE benefits.webhook_endpoints SET id = %s WHERE organization_id = %s" % (ulit(self.endpoint), o))
        s.append("UPDATE benefits.outbox SET state = 'dead', attempts = 12, last_status = 500, last_error = 'HTTP 500' "
                 "WHERE id IN (SELECT id FROM benefits.outbox WHERE organization_id = %s ORDER BY id LIMIT 3)" % o)
        s.append("SELECT benefits.create_customer_session(%s, %s)" % (o, lit(self.ext_ids[0])))
        for i, tok in enumerate(self.tokens):
            s.append("INSERT INTO benefits.customer_sessions (organization_id, customer_id, token_hash, expires_at, revoked_at) "
                     "VALUES (%s, %s, sha256(convert_to(%s, 'UTF8')), now() + interval '10 years', %s)"
                     % (o, c[i], lit(tok), "now()" if i == 2 else "NULL"))
        s.append("CREATE TABLE %s (id text PRIMARY KEY, customer text, product text, status text, "
                 "current_period_end timestamptz, cancel_at_period_end boolean)" % self.tracked)
        s.append("CREATE TABLE %s (id text PRIMARY KEY, customer text, product text, status text, "
                 "subscription text, billing_reason text)" % self.tracked_orders)
        for t in self.plain_tables:
            s.append("CREATE TABLE %s (id text PRIMARY KEY, customer text, product text, status text, "
                     "current_period_end timestamptz, cancel_at_period_end boolean, subscription text, "
                     "billing_reason text)" % t)
        s.append("SELECT benefits.track_subscriptions(%s, %s, current_period_end_column => 'current_period_end', "
                 "cancel_at_period_end_column => 'cancel_at_period_end', on_unknown => 'skip')"
                 % (lit(self.tracked), o))
        s.append("SELECT benefits.track_orders(%s, %s, subscription_column => 'subscription', "
                 "billing_reason_column => 'billing_reason')" % (lit(self.tracked_orders), o))
        s.append("INSERT INTO %s VALUES ('sub_1', %s, 'prod-pro-%d', 'active', now() + interval '30 days', false)"
                 % (self.tracked, lit(self.ext_ids[2]), self.n))
        s.append("INSERT INTO %s VALUES ('ord_1', %s, 'prod-pack-%d', 'paid', NULL, 'purchase')"
                 % (self.tracked_orders, lit(self.ext_ids[1]), self.n))
        return s


class First:
    """Stands in for a random generator: always the first choice (the seeded dataset's forms)."""

    @staticmethod
    def choice(seq):
        return seq[0]


def valid_properties(t, ds, rng=None):
    """A valid properties object of benefit type T for dataset DS (the first form without RNG)."""
    r = rng or First
    if t == "license_keys":
        return r.choice([
            {"prefix": "MYAPP", "expires": False, "activations": {"limit": 3, "enable_customer_admin": True},
             "limit_usage": False},
            {"prefix": "K", "expires": {"ttl": 30, "timeframe": "day"}, "activations": 2, "limit_usage": 100},
            {"prefix": None, "expires": None, "activations": None, "limit_usage": None},
            {"prefix": "SEAT", "expires": False, "key_per": "grant", "conditions_match": "subset",
             "activations": {"limit": 5, "enable_customer_admin": False, "heartbeat": "10 minutes"},
             "limit_usage": None},
            {"prefix": "HB", "key_per": "customer", "conditions_match": "exact",
             "activations": {"limit": 1, "heartbeat": "1 day"}},
        ])
    if t == "github_repository":
        return r.choice([
            {"repository_owner": "acme", "repository_name": "tools", "permission": "pull"},
            {"repositories": [{"owner": "acme", "name": "tools", "permission": "push"},
                              {"owner": "acme", "name": "docs", "permission": "triage"}]},
        ])
    if t == "discord":
        return r.choice([
            {"guild_id": "81384788765712384", "role_id": "81384788765712385"},
            {"guild_id": "81384788765712384", "roles": [{"role_id": "81384788765712386", "name": "Pro <members>"},
                                                        {"role_id": "18446744073709551615", "name": None}],
             "kick_member": True},
        ])
    if t == "downloadable":
        return r.choice([
            {"files": [str(ds.files[0]), str(ds.files[1]), str(ds.files[2])], "archived": {str(ds.files[2]): True}},
            {"files": [str(ds.files[1]), {"name": "extra.bin", "size": 4096, "mime_type": "application/x-bin"}]},
        ])
    if t == "meter_credits":
        return r.choice([
            {"meter_id": str(ds.meters[0]), "units": 500, "rollover": False, "low_balance_threshold": 10},
            {"meter_id": str(ds.meters[1]), "credits": 20, "rollover": True},
            {"meter_id": str(ds.meters[0]), "units": 50, "rollover": False, "recurring": False},
        ])
    return r.choice([{"note": "Thanks!\n<script>alert(1)</script>"}, {"note": None}, {}])


# Runs a batch of calls through one statement: each call in its own
# subtransaction (as ROLES[i] when not NULL); the SQLSTATE of each, NULL when
# it succeeded.  The result rows of a call are discarded.
BATCH_FUNCTION = """CREATE OR REPLACE FUNCTION public.fuzz_try(stmts text[], roles text[])
RETURNS TABLE (i int, state text) LANGUAGE plpgsql AS $fuzz$
BEGIN
    FOR k IN 1 .. coalesce(array_length(stmts, 1), 0) LOOP
        i := k;
        state := NULL;
        BEGIN
            IF roles[k] IS NOT NULL THEN
                PERFORM set_config('role', roles[k], true);
            END IF;
            EXECUTE stmts[k];
            PERFORM set_config('role', 'none', true);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE;
        END;
        RETURN NEXT;
    END LOOP;
END
$fuzz$"""


class Fuzzer:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.datasets = []
        self.history = []          # statements that built the database's state, in order
        self.seed_history = []     # the roles and datasets alone
        self.stats = collections.Counter()
        self.errors = collections.Counter()
        self.internal = collections.Counter()   # XX000 messages, and errors without a SQLSTATE
        self.per_function = collections.defaultdict(collections.Counter)
        self.findings = []
        self.calls = 0
        self.states = collections.Counter()      # every SQLSTATE seen, for the summary
        self.batches_replayed = 0
        self.clean = False         # generating a valid argument (make_call)
        self.conn = None
        self.pid = None
        os.makedirs(args.out, exist_ok=True)
        self.log = LogWatch(args.server_log)

    # ---- connections -------------------------------------------------
    def connect(self, dbname, wait=120):
        deadline = time.time() + wait
        while True:
            try:
                conn = psycopg.connect(self.args.dsn, dbname=dbname, autocommit=True, connect_timeout=10)
                return conn
            except psycopg.OperationalError:
                if time.time() > deadline:
                    raise
                time.sleep(0.5)

    def session_setup(self):
        return ["SET benefits.s3_endpoint = 'https://files.example.com'", "SET benefits.s3_url_style = 'path'",
                "SET benefits.s3_region = 'eu-west-1'", "SET benefits.s3_bucket = 'fuzz'",
                "SET benefits.s3_access_key_id = 'AKIDFUZZ'", "SET benefits.s3_secret_access_key = 'fuzz-secret'",
                "SET benefits.github_oauth_client_id = 'fuzz-gh'", "SET benefits.github_oauth_client_secret = 'fuzz-gh-secret'",
                "SET benefits.discord_oauth_client_id = 'fuzz-dc'", "SET benefits.discord_oauth_client_secret = 'fuzz-dc-secret'",
                "SET client_min_messages = warning"]

    @staticmethod
    def text_results(cur):
        """Results stay text on the client: a value Python cannot hold (year 0, infinity) is no client error."""
        for t in ("timestamptz", "timestamp", "date", "time", "timetz", "interval", "numeric", "json", "jsonb",
                  "uuid", "bytea", "float4", "float8", "int2", "int4", "int8", "oid", "bool", "record",
                  "text", "varchar", "bpchar", "name", "text[]", "uuid[]", 0, 705):   # 0: any other type
            cur.adapters.register_loader(t, RawLoader)

    def open_fuzz_connection(self, after_crash=False):
        """Connects to the fuzz database; after a crash, once the restarted server keeps a connection."""
        deadline = time.time() + 180
        while True:
            try:
                if after_crash:
                    time.sleep(1)
                self.conn = self.connect(self.args.database)
                if after_crash:
                    time.sleep(1)
                for q in self.session_setup():
                    self.conn.execute(q)
                self.pid = self.conn.execute("SELECT pg_backend_pid()").fetchone()[0]
                return
            except psycopg.OperationalError:
                if time.time() > deadline:
                    raise

    def fresh_database(self, name):
        with self.connect("postgres") as admin:
            admin.execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)
            admin.execute("CREATE DATABASE %s" % name)
        conn = self.connect(name)
        conn.execute("CREATE EXTENSION benefits")
        return conn

    # ---- setup -------------------------------------------------------
    def setup(self):
        conn = self.fresh_database(self.args.database)
        conn.close()
        self.open_fuzz_connection()
        for q in ["DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'fuzz_public') THEN "
                  "CREATE ROLE fuzz_public IN ROLE benefits_public; END IF; "
                  "IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'fuzz_app') THEN "
                  "CREATE ROLE fuzz_app IN ROLE benefits_app; END IF; "
                  "IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'fuzz_admin') THEN "
                  "CREATE ROLE fuzz_admin IN ROLE benefits_admin; END IF; END $$"]:
            self.run_setup(q)
        self.run_setup(BATCH_FUNCTION)
        self.add_dataset()
        self.load_catalog()

    def run_setup(self, q):
        self.conn.execute(q)
        self.history.append(q)
        self.seed_history.append(q)

    def add_dataset(self):
        ds = Dataset(self.rng, len(self.datasets))
        for q in ds.seed_sql():
            try:
                self.run_setup(q)
            except psycopg.Error as e:
                sys.exit("seeding failed: %s\n%s" % (e, q))
        for cust in ds.customers:
            row = self.conn.execute("SELECT benefits.portal_document(%s)" % ulit(cust)).fetchone()
            if row and row[0] is not None:
                ds.docs.append(json.loads(row[0]) if isinstance(row[0], (bytes, str)) else row[0])
        self.datasets.append(ds)

    def load_catalog(self):
        rows = self.conn.execute("""
            SELECT p.proname, p.proretset, p.prokind,
                   coalesce(array(SELECT format_type(t, NULL) FROM unnest(p.proargtypes) WITH ORDINALITY a(t, i)
                                  ORDER BY i), '{}'),
                   p.proargnames, p.proargmodes, p.pronargdefaults, format_type(p.prorettype, NULL),
                   t.typtype
              FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
              JOIN pg_type t ON t.oid = p.prorettype
             WHERE n.nspname = 'benefits' AND p.prorettype <> 'trigger'::regtype
               AND p.prorettype <> 'event_trigger'::regtype AND p.prokind = 'f'
             ORDER BY p.proname, p.oid""").fetchall()
        self.functions = []
        for name, retset, kind, types, names, modes, ndefaults, rettype, rettyptype in rows:
            if names is None:
                in_names = [None] * len(types)
            elif modes is None:
                in_names = list(names[:len(types)])
            else:
                in_names = [n for n, m in zip(names, modes) if m in ("i", "b", "v")]
            nargs = len(types)
            params = [(in_names[i] or None, types[i], i >= nargs - ndefaults) for i in range(nargs)]
            self.functions.append({"name": name, "params": params, "retset": retset,
                                   "composite": rettyptype == "c" or rettype == "record"})
        if self.args.only:
            wanted = set(self.args.only.split(","))
            self.functions = [f for f in self.functions if f["name"] in wanted]
        self.event_types = [r[0] for r in self.conn.execute(
            "SELECT unnest(benefits.webhook_event_types())").fetchall()] or EVENT_TYPES_FALLBACK
        self.file_columns = self.conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = 'benefits.files'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum").fetchall()

    # ---- random values -------------------------------------------------
    def ds(self):
        if len(self.datasets) > 1 and self.rng.random() < 0.3:
            return self.rng.choice(self.datasets)
        return self.datasets[-1]

    def chance(self, p):
        return self.rng.random() < p

    def odd_text(self):
        r = self.rng
        k = r.randrange(10)
        if k == 0:
            return ""
        if k == 1:
            return "".join(r.choice(CONTROL) for _ in range(r.randint(1, 20)))
        if k == 2:
            return "".join(r.choice(ODD_UNICODE) for _ in range(r.randint(1, 8)))
        if k == 3:
            return "".join(r.choice(META) for _ in range(r.randint(1, 6)))
        if k == 4:
            return "".join(r.choice(PATHS) for _ in range(r.randint(1, 6)))
        if k == 5:
            return r.choice(NUMERIC_TEXT)
        if k == 6:
            return " " * r.randint(1, 5)
        if k == 7:
            return "".join(chr(r.choice([r.randint(1, 0x7f), r.randint(0x80, 0x7ff), r.randint(0x800, 0xd7ff),
                                         r.randint(0xe000, 0xffff), r.randint(0x10000, 0x10ffff)]))
                           for _ in range(r.randint(1, 40)))
        if k == 8:
            return r.choice(URLS)
        return "".join(r.choice("abcdefghijklmnopqrstuvwxyz0123456789-_.") for _ in range(r.randint(1, 30)))

    def huge_text_expr(self, unit=None):
        r = self.rng
        unit = unit if unit is not None else r.choice(["A", "a-", "\u00e9", "\U0001f600", "%", "'", "/..", "x" * 16,
                                                       "<&>", "\\", "\t", " "])
        if unit == "":
            unit = "A"
        n = r.choice([256, 1000, 4097, 8193, 65536, 262144, 1048576 // max(1, len(unit.encode()))])
        return "repeat(%s, %d)" % (lit(unit), n)

    def text_expr(self, base=None):
        """BASE (a Python string or None), often mutated, as an SQL text expression."""
        r = self.rng
        if self.clean:
            return lit(base if base is not None else "x")
        if base is None or self.chance(0.25):
            if self.chance(0.15):
                return self.huge_text_expr()
            return lit(self.odd_text())
        k = r.randrange(12)
        if k < 3:
            return lit(base)
        if k == 5:
            return lit(base + self.odd_text())
        if k == 6:
            return lit(self.odd_text() + base)
        if k in (3, 7) and base:
            i = r.randrange(len(base) + 1)
            return lit(base[:i] + self.odd_text() + base[i:])
        if k == 8:
            return lit(base.upper() if r.random() < 0.5 else base.lower())
        if k in (4, 9) and base:
            return lit(base[:r.randrange(len(base))])
        if k == 10:
            return "%s || %s" % (lit(base), self.huge_text_expr())
        return lit(" " + base + " ")

    def mutate_text_sql(self, expr):
        """Mutations of an SQL text expression whose value the driver does not know (a generated key)."""
        r = self.rng
        if self.clean or self.chance(0.2):
            return expr
        return r.choice([
            "upper(%s)", "lower(%s)", "replace(%s, '-', '')", "replace(%s, '-', ' ')", "(%s || 'A')",
            "substr(%s, 1, 12)", "(' ' || %s || ' ')", "repeat(%s, 3000)", "translate(%s, '01', 'OL')",
            "(%s || chr(8238))", "reverse(%s)", "(%s || repeat('-', 5000))", "overlay(%s placing 'Z' from 6 for 1)",
        ]) % expr

    def int_value(self, bits=32):
        r = self.rng
        lo, hi = {16: (INT2_MIN, INT2_MAX), 32: (INT4_MIN, INT4_MAX), 64: (INT8_MIN, INT8_MAX)}[bits]
        choices = [0, -1, 1, 2, hi, lo, hi - 1, lo + 1, r.randint(-1000, 1000), r.randint(lo, hi)]
        if bits == 64:
            choices += [INT4_MAX, INT4_MAX + 1, INT4_MIN, INT4_MIN - 1, 10737418240, 10737418241, 5368709120,
                        5368709121, 5242880, 5242879, 2**53, 2**62]
        return r.choice(choices)

    # per parameter name: (valid values, edge values)
    INT_VALUES = {
        "size": ([2048, 10485760, 1], [0, 5368709120, 5368709121, 10737418240, 10737418241, -1]),
        "part_size": ([5242880, 104857600], [5242879, 5368709120, 5368709121, 0, 1, -1, 1024]),
        "units": ([1, 10, 500], [-1, -500, 0, 1000000, INT8_MAX, INT8_MIN, INT8_MIN + 1]),
        "limit_usage": ([1, 5, 100], [0, -1]), "limit_activations": ([1, 2, 3], [0, -1]),
        "usage": ([0, 1, 5], [99, 100, -1]), "increment_usage": ([1, 2], [5, 100, 0, -1]),
        "timestamp": ([1700000000], [0, -1, 253402300800, 253402300799]),
        "page": ([1, 2], [100, 0, -1]), "disable_after": ([3, 100], [1, 0, -1]),
    }

    def int_expr(self, name, bits, ctx):
        r = self.rng
        cast = {16: "smallint", 32: "integer", 64: "bigint"}[bits]
        if name == "id" and (self.clean or self.chance(0.6)):
            return "(SELECT id FROM benefits.outbox ORDER BY id OFFSET %d LIMIT 1)" % r.randrange(6)
        valid, edge = self.INT_VALUES.get(name, ([1, 10], []))
        if self.clean:
            return "%d::%s" % (r.choice(valid), cast)
        if self.chance(0.08):
            return "NULL::%s" % cast
        if self.chance(0.5):
            return "%d::%s" % (r.choice(valid + edge), cast)
        return "(%d)::%s" % (self.int_value(bits), cast)

    def uuid_expr(self, name, ctx):
        r = self.rng
        d = self.ds()
        if not self.clean and self.chance(0.12):
            return "NULL::uuid"
        if self.clean or self.chance(0.6):
            pick = {
                "organization_id": [d.org] * 4 + [d.other_org],
                "customer_id": d.customers[:3] * 2 + d.customers[3:],
                "benefit_id": list(d.benefits.values()) + [d.benefit2, d.other_benefit],
                "file_id": d.files, "meter_id": d.meters, "product_id": d.products,
                "activation_id": d.activations, "license_key_id": d.license_key_ids,
                "endpoint_id": [d.endpoint],
            }.get(name)
            if name == "grant_id":
                return "(SELECT id FROM benefits.grants ORDER BY created_at, id OFFSET %d LIMIT 1)" % r.randrange(12)
            if name == "activation_id" and self.chance(0.3):
                return ("(SELECT id FROM benefits.license_key_activations ORDER BY created_at, id OFFSET %d LIMIT 1)"
                        % r.randrange(6))
            if pick:
                return ulit(r.choice(pick))
            return ulit(r.choice(d.all_uuids()))
        return ulit(r.choice([uuid.UUID(int=r.getrandbits(128), version=4), uuid.UUID(int=0),
                              uuid.UUID(int=2**128 - 1), r.choice(d.all_uuids())]))

    def uuid_array_expr(self, name, ctx):
        r = self.rng
        d = self.ds()
        pool = d.customers[:3] if name == "customer_ids" else list(d.benefits.values()) + [d.benefit2]
        if self.clean:
            return "ARRAY[%s]::uuid[]" % ", ".join(ulit(x) for x in r.sample(pool, r.randint(1, len(pool))))
        k = r.randrange(12)
        if k == 0:
            return "NULL::uuid[]"
        if k == 1:
            return "'{}'::uuid[]"
        if k == 2:
            return "ARRAY[NULL]::uuid[]"
        if k == 3:
            return "'{{%s,%s},{%s,%s}}'::uuid[]" % tuple(r.choice(pool) for _ in range(4))
        if k == 4:
            return "'[0:1]={%s,%s}'::uuid[]" % (r.choice(pool), r.choice(pool))
        if k == 5:
            return "(SELECT array_agg(gen_random_uuid()) FROM generate_series(1, %d))" % r.choice([1000, 20000])
        if k == 6:
            return "array_fill(%s, ARRAY[%d])" % (ulit(r.choice(pool)), r.choice([2, 1000, 50000]))
        items = []
        for _ in range(r.randint(1, 8)):
            if self.chance(0.15):
                items.append("NULL")
            elif self.chance(0.8):
                items.append(ulit(r.choice(pool)))
            else:
                items.append(ulit(r.choice(d.all_uuids())))
        return "ARRAY[%s]::uuid[]" % ", ".join(items)

    def text_array_expr(self, name, ctx):
        r = self.rng
        if name == "unset":
            valid = ["expires_at", "limit_usage", "limit_activations"]
            pool = valid + ["usage", "status", "key", "id", "", "EXPIRES_AT"]
        elif name == "events":
            valid = self.event_types
            pool = valid + ["*", "", "benefit_grant.*", "BENEFIT_GRANT.CREATED", "x" * 300]
        else:
            valid = pool = self.event_types
        if self.clean:
            return "ARRAY[%s]::text[]" % ", ".join(lit(x) for x in r.sample(valid, r.randint(1, len(valid)))) \
                if self.chance(0.8) else "'{}'::text[]"
        k = r.randrange(12)
        if k == 0:
            return "NULL::text[]"
        if k == 1:
            return "'{}'::text[]"
        if k == 2:
            return "ARRAY[NULL]::text[]"
        if k == 3:
            return "'{{%s,%s},{%s,%s}}'::text[]" % tuple(jdump(r.choice(pool)) for _ in range(4))
        if k == 4:
            return "'[5:6]={%s,%s}'::text[]" % (jdump(r.choice(pool)), jdump(r.choice(pool)))
        if k == 5:
            return "array_fill(%s::text, ARRAY[%d])" % (lit(r.choice(pool)), r.choice([2, 1000, 100000]))
        if k == 6:
            return "(SELECT array_agg(md5(g::text)) FROM generate_series(1, %d) g)" % r.choice([10, 5000])
        items = []
        for _ in range(r.randint(1, 6)):
            if self.chance(0.1):
                items.append("NULL")
            elif self.chance(0.75):
                items.append(lit(r.choice(pool)))
            else:
                items.append(self.text_expr(r.choice(pool)))
        return "ARRAY[%s]::text[]" % ", ".join(items)

    # jsonb ------------------------------------------------------------
    def rand_json(self, depth=0):
        r = self.rng
        k = r.randrange(14 if depth < 3 else 9)
        if k == 0:
            return None
        if k == 1:
            return r.choice([True, False])
        if k == 2:
            return r.choice([0, -1, 1, INT4_MAX, INT4_MIN, INT4_MAX + 1, INT8_MAX, INT8_MIN, INT8_MAX + 1,
                             10**30, 2**64, 0.5, 1e308, -1e308, 1e-308, 5e-324, 1.5, -0.0])
        if k == 3:
            return RawJson(r.choice(["1e308", "-0", "1e1000", "-1e1000", "1e-1000", "0.0000000000000000001",
                                     "123456789012345678901234567890", "1E+2", "-0.0", "1" * 300]))
        if k in (4, 5, 6):
            return self.odd_text() if self.chance(0.7) else r.choice(["", "true", "null", "{}", "[]", "1"])
        if k == 7:
            return str(uuid.UUID(int=r.getrandbits(128), version=4)) if self.chance(0.5) else \
                str(r.choice(self.ds().all_uuids()))
        if k == 8:
            return r.choice(["day", "month", "year", "pull", "admin", "granted", "active", "MYAPP", "81384788765712384"])
        if k in (9, 10, 11):
            return {self.rand_key(): self.rand_json(depth + 1) for _ in range(r.randint(0, 4))}
        return [self.rand_json(depth + 1) for _ in range(r.randint(0, 4))]

    def rand_key(self):
        r = self.rng
        return r.choice(["id", "type", "name", "note", "files", "roles", "limit", "ttl", "units", "", "x" * 300,
                         "\u202e", "key", "status", "meter_id", "guild_id", "owner", "permission", "archived",
                         "license_key", "activations", "benefits", "customer", "organization", "__proto__"]
                        + [self.odd_text()])

    def json_shape_expr(self):
        """jsonb of unusual shapes: deep, huge, extreme numbers, scalars."""
        r = self.rng
        k = r.randrange(12)
        if k == 0:
            n = r.choice([100, 1000, 5000])
            return "(repeat('[', %d) || repeat(']', %d))::jsonb" % (n, n)
        if k == 1:
            n = r.choice([100, 1000, 3000])
            return "(repeat('{\"a\":', %d) || '1' || repeat('}', %d))::jsonb" % (n, n)
        if k == 2:
            return "(SELECT jsonb_agg(g) FROM generate_series(1, %d) g)" % r.choice([1000, 100000, 300000])
        if k == 3:
            return "(SELECT jsonb_object_agg('k' || g, g) FROM generate_series(1, %d) g)" % r.choice([1000, 50000])
        if k == 4:
            return "jsonb_build_object('s', %s)" % self.huge_text_expr()
        if k == 5:
            return r.choice(["'null'::jsonb", "'true'::jsonb", "'1e308'::jsonb", "'-0'::jsonb", "'\"\"'::jsonb",
                             "'[]'::jsonb", "'{}'::jsonb", "'[null]'::jsonb", "'\"{}\"'::jsonb", "'1e-400'::jsonb",
                             "'[[[]]]'::jsonb", "'{\"\": null}'::jsonb", "'\"\\u0000\"'::jsonb"])
        if k == 6:
            return "NULL::jsonb"
        return jlit(self.rand_json())

    def mutate_obj(self, obj, ops=1):
        """OBJ with ONE field (by default) replaced, removed or added, at any depth."""
        obj = copy.deepcopy(obj)
        for _ in range(ops):
            paths = []

            def walk(x, path):
                paths.append(path)
                if isinstance(x, dict):
                    for kk, vv in x.items():
                        walk(vv, path + [kk])
                elif isinstance(x, list):
                    for i, vv in enumerate(x):
                        walk(vv, path + [i])
            walk(obj, [])
            path = self.rng.choice(paths)
            parent = obj
            for p in path[:-1]:
                parent = parent[p]
            op = self.rng.randrange(6)
            new = self.rand_json(1)
            if op == 5 and isinstance(new, str):
                new = self.rng.choice(["x" * 70000, "\u00e9" * 40000])
            if not path:
                if isinstance(obj, dict) and op < 3:
                    obj[self.rand_key()] = new
                    continue
                obj = new
                continue
            key = path[-1]
            if op == 0:
                parent[key] = new
            elif op == 1:
                if isinstance(parent, dict):
                    del parent[key]
                else:
                    parent.pop(key)
            elif op == 2 and isinstance(parent, dict):
                parent[self.rand_key()] = new
            elif op == 3:
                parent[key] = [parent[key]] if self.chance(0.5) else {"value": parent[key]}
            elif op == 4:
                parent[key] = str(parent[key]) if not isinstance(parent[key], str) else \
                    RawJson(self.rng.choice(["1", "-1", "0", "1e308", "true", "null", "2147483648", "-0"]))
            else:
                parent[key] = new
        return obj

    # values of this release's license and meter properties, the first valid
    PROPERTY_VALUES = {
        "key_per": ["customer", "grant", "Grant", "order", "", None, 1, ["grant"]],
        "conditions_match": ["exact", "subset", "superset", "EXACT", "", None, True],
        "heartbeat": ["10 minutes", "1 minute", "30 days", "59 seconds", "31 days", "1 day", "2 hours",
                      "0 minutes", "-1 hour", "1 fortnight", "1", "minutes", "99999999999999999999 seconds",
                      "1.5 hours", " 1 hour", "1 hour ", "1  hour", "1 hours", "2 hour", "\u0661 hour", None, 60],
        "recurring": [True, False, None, "false", 0],
    }

    def property_values(self, props):
        """Sets one of this release's properties (key_per, conditions_match, activations.heartbeat,
        recurring) to a random value of its own kind, valid or not."""
        r = self.rng
        if "prefix" in props or "key_per" in props:
            key = r.choice(["key_per", "conditions_match", "heartbeat"])
            value = r.choice(self.PROPERTY_VALUES[key])
            if key == "heartbeat":
                act = props.get("activations")
                props["activations"] = dict(act) if isinstance(act, dict) else {"limit": r.choice([1, 3, 0, -1])}
                props["activations"]["heartbeat"] = value
            else:
                props[key] = value
        elif "meter_id" in props:
            props["recurring"] = r.choice(self.PROPERTY_VALUES["recurring"])
        return props

    def properties_for(self, btype):
        d = self.ds()
        if btype not in BENEFIT_TYPES:
            btype = {"downloadables": "downloadable", "meter_credit": "meter_credits"}.get(btype) or \
                self.rng.choice(BENEFIT_TYPES)
        props = valid_properties(btype, d, self.rng)
        if not self.clean:
            if self.chance(0.3):
                props = self.property_values(copy.deepcopy(props))
            else:
                props = self.mutate_obj(props, ops=1 if self.chance(0.8) else self.rng.randint(2, 4))
        return props

    def jsonb_expr(self, name, ctx):
        r = self.rng
        if not self.clean and self.chance(0.15):
            return self.json_shape_expr()
        if name == "properties":
            t = ctx.get("type") or ctx.get("benefit_type")
            return jlit(self.properties_for(t or r.choice(BENEFIT_TYPES)))
        if name in ("conditions", "meta"):
            base = r.choice([{}, {"machine": "m1"}, {"os": "linux", "n": 1}, {"machine": "m1", "extra": [1, 2]}])
            if self.clean:
                return jlit(base)
            if self.chance(0.15):
                return "jsonb_build_object('machine', %s)" % self.huge_text_expr()
            return jlit(self.mutate_obj(base))
        if name == "params":
            base = r.choice([{}, {"uploadId": "abc", "partNumber": "1"}, {"response-content-type": "text/plain"},
                             {"x-id": "PutObject", "a b": "c/d"}])
            return jlit(base if self.clean else self.mutate_obj(base))
        if name == "status_map":
            base = {"active": "active", "trialing": "trialing", "canceled": "canceled", "unpaid": "past_due",
                    "paid": "paid"}
            return jlit(base if self.clean else self.mutate_obj(base))
        if name == "doc":
            d = self.ds()
            if d.docs and (self.clean or self.chance(0.85)):
                doc = r.choice(d.docs)
                return jlit(doc if self.clean else self.mutate_obj(doc, ops=1 if self.chance(0.7) else r.randint(2, 6)))
            return "benefits.portal_document(%s)" % ulit(r.choice(d.customers))
        if name == "previous_properties":
            return jlit(self.properties_for(r.choice(BENEFIT_TYPES))) if self.clean or self.chance(0.5) \
                else jlit(self.rand_json())
        return jlit({} if self.clean else self.rand_json())

    # text by parameter name -------------------------------------------
    def key_expr(self, fname):
        r = self.rng
        d = self.ds()
        if fname == "import_license_key" and (self.clean or self.chance(0.5)):
            return self.text_expr("IMPORTED-%d-%08x" % (d.n, r.getrandbits(32)))
        k = r.randrange(6)
        if k == 0:
            return self.text_expr(d.imported_key)
        if k in (1, 2) or self.clean:
            who, ben = r.choice([(d.customers[0], d.benefits["license_keys"]), (d.customers[1], d.benefit2),
                                 (d.customers[1], d.benefits["license_keys"])])
            e = ("(SELECT display_key FROM benefits.license_keys WHERE customer_id = %s AND benefit_id = %s)"
                 % (ulit(who), ulit(ben)))
            return self.mutate_text_sql(e)
        if k == 3:
            return self.mutate_text_sql("(SELECT key FROM benefits.license_keys ORDER BY id OFFSET %d LIMIT 1)"
                                        % r.randrange(6))
        if k == 4:
            return self.text_expr("MYAPP-ESHS-DEYA-330D-R3SS-AFC2-N5P7-QKRP")
        return self.text_expr(None)

    def token_expr(self):
        r = self.rng
        d = self.ds()
        if self.clean:
            return lit(r.choice(d.tokens[:2]))
        k = r.randrange(6)
        if k < 3:
            return self.text_expr(r.choice(d.tokens)) if self.chance(0.3) else lit(r.choice(d.tokens[:2]))
        if k == 3:
            return lit(d.tokens[2])                      # revoked
        if k == 4:
            return self.text_expr("bcs_" + "A" * r.choice([0, 15, 16, 40, 124, 125, 200]))
        return self.text_expr(None)

    COLUMNS = {"id_column": "id", "customer_column": "customer", "product_column": "product",
               "status_column": "status", "current_period_end_column": "current_period_end",
               "cancel_at_period_end_column": "cancel_at_period_end", "subscription_column": "subscription",
               "billing_reason_column": "billing_reason"}

    def text_for(self, fname, name, ctx):
        r = self.rng
        d = self.ds()
        if not self.clean and self.chance(0.08):
            return "NULL::text"
        if name == "key":
            if fname == "presign_s3_url":
                return self.text_expr(r.choice(["%s/%s/Manual.pdf" % (d.org, d.files[0]), "a/b c/\u00e9.txt",
                                                "..", "/", "a//b", "%2e%2e/x", "x?y=z#w"]))
            return self.key_expr(fname)
        if name == "token":
            return self.token_expr()
        if name == "type":
            v = r.choice(BENEFIT_TYPES) if self.clean else r.choice(BENEFIT_TYPES * 3 + TYPE_ALIASES)
            ctx["type"] = v
            return self.text_expr(v) if self.chance(0.2) else lit(v)
        if name == "body":
            if fname == "github_invitation_step":
                inv = [{"id": r.choice([1, 42, INT8_MAX, -1, 0]),
                        "invitee": {"login": r.choice(["octocat", "OctoCat", "x"])},
                        "repository": {"full_name": "acme/tools"}} for _ in range(r.randint(0, 3))]
                if not self.clean and self.chance(0.5):
                    inv = self.mutate_obj(inv)
                if not self.clean and self.chance(0.15):
                    n = r.choice([1000, 10000, 100000])
                    return "repeat('[', %d) || repeat(']', %d)" % (n, n)
                return self.text_expr(jdump(inv))
            return self.text_expr(r.choice(['{"type":"benefit_grant.created","data":{}}', ""]))
        if name == "secret":
            k = r.randrange(4)
            if k == 0 or self.clean:
                return "(SELECT secret FROM benefits.webhook_endpoints ORDER BY id LIMIT 1)"
            if k == 1:
                return "benefits.generate_webhook_secret()"
            return self.text_expr(r.choice(["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_", "whsec_!!!!",
                                            "whsec_" + "A" * 10000, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_=",
                                            "whsec_A", "whsec_AA=="]))
        if name == "username":
            if ctx.get("platform") == "'discord'":
                return self.text_expr(r.choice(["ada#1", "x" * 100, "x" * 101]))
            if fname == "github_invitation_step":
                return self.text_expr(r.choice(["octocat", "OctoCat", ""]))
            return self.text_expr(r.choice(GITHUB_LOGINS[:3] if self.clean else GITHUB_LOGINS))
        if name == "account_id":
            if ctx.get("platform") == "'github'":
                return self.text_expr(r.choice(["12345", "1"] if self.clean else ["12345", "x" * 100, "x" * 101, "1"]))
            return self.text_expr(r.choice(DISCORD_IDS[:4] if self.clean else DISCORD_IDS))
        if name == "state" and fname.startswith("portal_link") and (self.clean or self.chance(0.4)):
            # a state portal_link_url handed out (single use), as the provider sends it back
            e = ("substring(benefits.portal_link_url(%s, %s, 'https://app.example.com/linked') from 'state=([^&]+)')"
                 % (lit(d.tokens[0]), lit(r.choice(["github", "discord"]))))
            return e if self.clean else self.mutate_text_sql(e)
        if name in self.COLUMNS:
            return self.text_expr(self.COLUMNS[name] if self.clean or self.chance(0.5) else r.choice(COLUMN_NAMES))
        base = {       # the first value is a valid one
            "label": ["laptop", "Desktop <2>", "x" * 200, "x" * 201],
            "description": ["Pro key", "A benefit", "x" * 1000],
            "external_customer_id": d.ext_ids,
            "action_url": ["/portal/deactivate", "https://app.example.com/deactivate", "http://x/"],
            "url": URLS,
            "platform": ["github", "discord", "GitHub", "slack"],
            "access_token": ["oauth-token", "x" * 2048, "x" * 2049],
            "event_type": self.event_types,
            "name": ["Manual.pdf", "..", ".", "a/b.pdf", "\u00e9t\u00e9.txt", "x" * 255, "x" * 256, "a\"b.zip",
                     "new name.bin"],
            "mime_type": ["application/pdf", "text/html; charset=utf-8", "application/octet-stream", "x/y\r\nz: w"],
            "checksum_sha256": ["a" * 64, "A" * 64, "0" * 63, "g" * 64, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="],
            "storage_key": ["%s/%s/x-%d.bin" % (d.org, d.files[0], r.getrandbits(20)), "../x", "/abs", "a" * 1024,
                            "a" * 1025],
            "upload_id": ["2~abcdef", "abc", "a b&c=d", "x" * 1000],
            "status": ["granted", "disabled", "revoked", "active"],
            "method": ["GET", "PUT", "POST", "HEAD", "DELETE", "get", "G ET", "GET\n"],
            "msg_id": ["msg_1", "msg_" + "x" * 100, ""],
            "filename": ["Manual & Guide.pdf", "\u00e9t\u00e9.txt", "a\"b.txt", "..", "x" * 300, "a;b=c",
                         "\U0001f600.zip"],
            "disposition": ["attachment", "inline", "form-data", "attachment; x=y"],
            "value": ["<a href=\"x\">O'Neil & co</a>", "plain"],
            "reason": ["HTTP 500", "timeout", "refund of order 7", "x" * 1000, "x" * 10000],
            "fingerprint": ["machine-1", "sha256:" + "a" * 64, "", " ", "x" * 255, "x" * 256, "x" * 100000,
                            "\u202e", "machine-1 ", "MACHINE-1", "%s", "../"],
            "idempotency_key": ["adj-1", "adj-%d" % r.getrandbits(16), "", "x" * 255, "x" * 256, "x" * 100000],
            "redirect_uri": ["https://app.example.com/linked", "http://127.0.0.1:8080/cb", "http://localhost/cb",
                             "http://example.com/cb", "https://app.example.com/cb#frag", "https://app.example.com/a b",
                             "https://app.example.com/" + "a" * 2100, "javascript:alert(1)", "//evil.example/",
                             "https://user@evil.example/", "https://app.example.com/\u00e9", "https://[::1]/",
                             "https://app.example.com:0/", "https://app.example.com:65536/", ""],
            "redirect_url": ["https://app.example.com/uploaded", "http://127.0.0.1/done", "http://evil.example/",
                             "https://app.example.com/\u00e9", "https://app.example.com/" + "a" * 3000, "",
                             "https://app.example.com/${filename}", "https://app.example.com/?a=1&b=\"x\""],
            "state": ["st_" + "A" * 43, "", "x", "A" * 43, "A" * 44, "A" * 10000, "%00", "st_../../",
                      "eyJhbGciOiJub25lIn0.e30.", "\u00e9" * 22],
            "code": ["oauth-code-1", "", "x" * 4096, "x" * 100000, "a&b=c", "\r\nHost: evil"],
            "on_unknown": ["error", "skip", "ignore"],
        }
        b = base.get(name)
        if b:
            if self.clean:
                v = b[0] if name not in ("platform", "external_customer_id", "event_type", "status", "method",
                                         "on_unknown") else r.choice(b[:2] if name != "external_customer_id" else b)
            else:
                v = r.choice(b)
            e = self.text_expr(v)
            if name == "platform":
                ctx["platform"] = e
            return e
        return self.text_expr(r.choice([None, "x", "benefits", str(r.choice(d.all_uuids()))]))

    def regclass_expr(self):
        r = self.rng
        d = self.ds()
        if self.clean:
            return "%s::regclass" % lit(r.choice(d.plain_tables))
        k = r.randrange(10)
        if k == 0:
            return "NULL::regclass"
        if k == 1:
            return "(%d)::oid::regclass" % r.choice([0, 1, 99999999, 4294967295, 1259])
        names = [d.tracked, d.tracked_orders, "benefits.subscriptions", "benefits.orders", "benefits.grants",
                 "benefits.customers", "pg_class", "pg_catalog.pg_proc", "benefits.license_keys",
                 "benefits.grants_pkey", "benefits.dead_jobs", "benefits.outbox_id_seq", "information_schema.tables"]
        names += d.plain_tables * 3
        return "%s::regclass" % lit(r.choice(names))

    def files_row_expr(self):
        r = self.rng
        d = self.ds()
        k = r.randrange(5)
        if k == 0 and not self.clean:
            return "NULL::benefits.files"
        if k in (1, 2) or self.clean:
            return "(SELECT f FROM benefits.files f WHERE f.id = %s)" % ulit(r.choice(d.files))
        fields = []
        real = {"id": ulit(r.choice(d.files)), "organization_id": ulit(d.org), "name": lit("x.pdf"),
                "size": "10::bigint", "mime_type": lit("application/pdf"), "storage_key": lit("k/x"),
                "enabled": "true", "archived": "false", "uploaded_at": "now()"}
        for col, typ in self.file_columns:
            if self.chance(0.25):
                fields.append(self.value_expr("file_access_error", col, typ, {}))
            elif col in real and self.chance(0.8):
                fields.append("%s::%s" % (real[col], typ))
            else:
                fields.append("NULL::%s" % typ)
        return "ROW(%s)::benefits.files" % ", ".join(fields)

    def value_expr(self, fname, name, typ, ctx):
        r = self.rng
        if typ == "text":
            return self.text_for(fname, name, ctx)
        if typ == "uuid":
            e = self.uuid_expr(name, ctx)
            if name == "benefit_id":
                for t, bid in self.ds().benefits.items():
                    if ulit(bid) == e:
                        ctx["benefit_type"] = t
            return e
        if typ == "jsonb":
            return self.jsonb_expr(name, ctx)
        if typ in ("integer", "bigint", "smallint"):
            return self.int_expr(name, {"integer": 32, "bigint": 64, "smallint": 16}[typ], ctx)
        if typ == "boolean":
            return r.choice(["true", "false"] if self.clean else ["true", "false", "NULL::boolean"])
        if typ == "interval":
            if self.clean:
                return r.choice(["'1 hour'::interval", "'1 day'::interval", "'10 minutes'::interval"])
            return "NULL::interval" if self.chance(0.1) else r.choice(INTERVALS)
        if typ == "timestamp with time zone":
            if self.clean:
                return r.choice(["now()", "now() + interval '1 day'", "'2031-03-05 10:00:00+00'::timestamptz"])
            return "NULL::timestamptz" if self.chance(0.1) else r.choice(TIMESTAMPS)
        if typ == "text[]":
            return self.text_array_expr(name, ctx)
        if typ == "uuid[]":
            return self.uuid_array_expr(name, ctx)
        if typ == "regclass":
            return self.regclass_expr()
        if typ == "benefits.files":
            return self.files_row_expr()
        if typ == "bytea":
            return r.choice(["NULL::bytea", "'\\x'::bytea", "'\\x00ff'::bytea", "decode(repeat('ab', 40000), 'hex')"])
        return "NULL::%s" % typ

    # ---- calls -------------------------------------------------------
    def make_call(self, fn):
        """A call of FN: every argument valid but one (half the calls), all valid, or all random."""
        r = self.rng
        ctx = {}
        params = fn["params"]
        n = len(params)
        first_default = next((i for i, p in enumerate(params) if p[2]), n)
        # how many arguments: all, or stop somewhere among the defaulted ones
        count = n if first_default == n or self.chance(0.6) else r.randint(first_default, n)
        named = all(p[0] for p in params) and self.chance(0.3)
        if named:
            chosen = list(range(first_default)) + [i for i in range(first_default, n) if self.chance(0.6)]
        else:
            chosen = list(range(count))
        mode = r.random()
        target = r.choice(chosen) if chosen else None
        parts = []
        for i in chosen:
            pname, ptype, _ = params[i]
            self.clean = (mode < 0.5 and i != target) or 0.5 <= mode < 0.65
            v = self.value_expr(fn["name"], pname, ptype, ctx)
            parts.append("%s => %s" % (quote_ident(pname), v) if named else v)
        self.clean = False
        call = "benefits.%s(%s)" % (quote_ident(fn["name"]), ", ".join(parts))
        if (fn["retset"] or fn["composite"]) and self.chance(0.5):
            return "SELECT * FROM %s" % call
        return "SELECT %s" % call

    def dml_statement(self):
        """A change of subscriptions or of a tracked table, so the triggers see fuzzed state too."""
        r = self.rng
        d = self.ds()
        k = r.randrange(4)
        if k == 0:
            return ("UPDATE benefits.subscriptions SET status = %s, current_period_end = %s WHERE id = %s"
                    % (lit(r.choice(STATUS_VALUES[:8])), r.choice(TIMESTAMPS), ulit(r.choice(d.subscriptions))))
        if k == 1:
            return ("UPDATE benefits.subscriptions SET product_id = %s WHERE id = %s"
                    % (ulit(r.choice(d.products)), ulit(r.choice(d.subscriptions))))
        if k == 2:
            return ("INSERT INTO %s VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET status = excluded.status"
                    % (d.tracked, lit("sub_%d" % r.randrange(4)), self.text_expr(r.choice(d.ext_ids)),
                       self.text_expr("prod-pro-%d" % d.n), self.text_expr(r.choice(STATUS_VALUES)),
                       r.choice(TIMESTAMPS + ["NULL"]), r.choice(["true", "false", "NULL"])))
        return ("INSERT INTO %s VALUES (%s, %s, %s, %s, NULL, %s) ON CONFLICT (id) DO UPDATE SET status = excluded.status"
                % (d.tracked_orders, lit("ord_%d" % r.randrange(4)), self.text_expr(r.choice(d.ext_ids)),
                   self.text_expr("prod-pack-%d" % d.n), self.text_expr(r.choice(STATUS_VALUES)),
                   lit(r.choice(["purchase", "subscription_cycle", "x"]))))

    def transaction(self, stmt, role=None):
        pre = ["BEGIN", "SET LOCAL statement_timeout = %d" % self.args.statement_timeout]
        if role:
            pre.append("SET LOCAL ROLE %s" % role)
        return pre, stmt

    def execute_call(self, stmt, role):
        """Runs STMT in its own transaction: returns (outcome, sqlstate, message, committed)."""
        conn = self.conn
        pre, _ = self.transaction(stmt, role)
        hung = []
        grace = self.args.statement_timeout / 1000.0

        def cancel():        # statement_timeout did not end it: a loop that never checks for interrupts?
            hung.append("cancel")
            try:
                conn.cancel()
            except Exception:
                pass

        def terminate():
            hung.append("terminate")
            try:
                with self.connect("postgres", wait=5) as side:
                    side.execute("SELECT pg_terminate_backend(%d)" % self.pid)
            except Exception:
                pass

        def kill():
            hung.append("kill")
            try:
                os.kill(self.pid, 9)
            except OSError:
                pass

        timers = [threading.Timer(grace + 20, cancel), threading.Timer(grace + 50, terminate),
                  threading.Timer(grace + 90, kill)]
        try:
            for q in pre:
                conn.execute(q)
            for t in timers:
                t.start()
            cur = conn.cursor()
            self.text_results(cur)
            cur.execute(stmt)
            bad = None
            if cur.description is not None:
                for row in cur.fetchall():
                    for col, v in zip(cur.description, row):
                        if isinstance(v, bytes) and col.type_code not in BYTEA_OIDS:
                            try:
                                v.decode("utf-8")
                            except UnicodeDecodeError as e:
                                bad = "result column %s is not valid UTF-8 (%s)" % (col.name, e)
            for t in timers:
                t.cancel()
            commit = not hung and not bad and self.chance(self.args.commit_ratio)
            conn.execute("COMMIT" if commit else "ROLLBACK")
            if bad:
                return "invalid", None, bad, False
            return ("hang" if hung else "ok"), None, ",".join(hung) or None, commit
        except psycopg.Error as e:
            for t in timers:
                t.cancel()
            state = getattr(e, "sqlstate", None)
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            if hung:
                msg = "%s after %s" % (msg, ",".join(hung))
            if conn.broken or conn.closed:
                return ("hang" if hung else "lost"), state, msg, False
            try:
                conn.execute("ROLLBACK")
            except psycopg.Error:
                if conn.broken or conn.closed:
                    return ("hang" if hung else "lost"), state, msg, False
            return ("hang" if hung else "error"), state, msg, False

    def alive(self):
        try:
            return self.conn.execute("SELECT 1").fetchone()[0] == 1
        except psycopg.Error:
            return False

    def next_call(self):
        """A random call (function name, statement, role or None)."""
        if self.chance(0.04):
            fname, stmt = "(dml)", self.dml_statement()
        else:
            fn = self.rng.choice(self.functions)
            fname, stmt = fn["name"], self.make_call(fn)
        role = None
        if self.chance(self.args.role_ratio):
            role = self.rng.choice(["fuzz_public", "fuzz_app", "fuzz_admin"])
        return fname, stmt, role

    def count(self, fname, outcome, state):
        self.calls += 1
        self.stats[fname] += 1
        if outcome == "error" or (outcome == "hang" and state):
            self.errors[(state or "?????")[:2]] += 1
            self.per_function[fname][(state or "?????")[:2]] += 1
            self.states[state or "?????"] += 1
        else:
            self.errors[outcome] += 1
            self.per_function[fname][outcome] += 1

    def run(self):
        start = time.time()
        last_reseed = 0
        while self.calls < self.args.iterations and time.time() - start < self.args.seconds:
            if self.calls - last_reseed >= self.args.reseed_every:
                last_reseed = self.calls
                try:
                    self.add_dataset()
                except psycopg.Error as e:
                    print("reseeding failed: %s" % e, file=sys.stderr)
            n = min(self.args.batch, self.args.iterations - self.calls)
            if n <= 1 or self.chance(self.args.single_ratio):
                self.run_one(*self.next_call())
            else:
                self.run_batch([self.next_call() for _ in range(n)])
            if self.args.progress and self.calls // self.args.progress != (self.calls - n) // self.args.progress:
                print("progress: %d calls in %.0f s, %d findings" % (self.calls, time.time() - start,
                                                                    len(self.findings)), flush=True)
        self.elapsed = time.time() - start

    def run_batch(self, calls):
        """Runs CALLS in one statement (each in a subtransaction of public.fuzz_try); when anything
        is wrong (a lost connection, a timeout, an internal error, a sanitizer report) every call
        of the batch runs again on its own, so the single path finds and writes the culprit."""
        conn = self.conn
        results = None
        try:
            conn.execute("BEGIN")
            conn.execute("SET LOCAL statement_timeout = %d" % (self.args.statement_timeout * 4))
            results = conn.execute("SELECT state FROM public.fuzz_try(%s, %s) ORDER BY i",
                                   ([c[1] for c in calls], [c[2] for c in calls])).fetchall()
            commit = self.chance(self.args.commit_ratio)
            conn.execute("COMMIT" if commit else "ROLLBACK")
        except psycopg.Error:
            results = None
            commit = False
            if not (conn.broken or conn.closed):
                try:
                    conn.execute("ROLLBACK")
                except psycopg.Error:
                    pass
        report = self.log.new_reports()
        states = [r[0] for r in results] if results is not None and len(results) == len(calls) else None
        if states is None or report or not self.alive() or any(st in ("XX000", "") for st in states if st):
            if not self.alive():
                self.open_fuzz_connection(after_crash=True)
            self.batches_replayed += 1
            for c in calls:
                self.run_one(*c)
            return
        for (fname, stmt, role), state in zip(calls, states):
            self.count(fname, "error" if state else "ok", state)
            if commit and not state:
                pre, _ = self.transaction(stmt, role)
                self.history.append("\n".join(q + ";" for q in pre) + "\n" + stmt + ";\nCOMMIT")

    def run_one(self, fname, stmt, role):
        outcome, state, msg, committed = self.execute_call(stmt, role)
        if self.args.verbose:
            print("%6d %-28s %-6s %s | %s" % (self.calls, fname, outcome, state or "", stmt[:160]))
        self.count(fname, outcome, state)
        if outcome == "error" or (outcome == "hang" and state):
            if state in ("XX000", None, ""):
                self.internal[(fname, msg[:160])] += 1
                if outcome == "error" and not (self.conn.broken or self.conn.closed):
                    self.finding("internal error", fname, stmt, role, msg)
        if committed:
            pre, _ = self.transaction(stmt, role)
            self.history.append("\n".join(q + ";" for q in pre) + "\n" + stmt + ";\nCOMMIT")
        if outcome == "hang":
            self.finding("hang", fname, stmt, role, "statement_timeout did not end the call: %s" % msg)
        elif outcome == "invalid":
            self.finding("invalid result", fname, stmt, role, msg)
        lost = outcome == "lost" or not self.alive()
        report = self.log.new_reports()
        if lost:
            kind = "crash" if state in (None, "") else "lost connection (%s)" % state
            if outcome != "lost":
                self.errors["lost"] += 1
            self.finding(kind, fname, stmt, role, msg or "connection lost", report)
        elif report:
            self.finding("sanitizer report", fname, stmt, role, report[0].strip(), report)
        if not self.alive():
            self.open_fuzz_connection(after_crash=True)

    # ---- findings and reproducers ---------------------------------------
    def reproducer(self, stmt, role, with_history, header):
        lines = ["-- benefits sql_fuzz reproducer", *("-- " + h for h in header),
                 "-- Run on a database without the extension: psql -X -f FILE, or",
                 "--   /usr/bin/python3 test/fuzz/sql_fuzz.py --replay FILE",
                 "\\set ON_ERROR_STOP off", "CREATE EXTENSION IF NOT EXISTS benefits;"]
        body = list(self.session_setup())
        if with_history == "full":
            body += self.history
        elif with_history == "dataset":
            body += self.seed_history
        pre, _ = self.transaction(stmt, role)
        call = "\n".join(q + ";" for q in pre) + "\n" + stmt + ";\nROLLBACK"
        out = "\n".join(lines) + "\n"
        for q in body:
            out += SEPARATOR + "\n" + q + ";\n"
        out += SEPARATOR + "\n-- the call\n" + call + ";\n"
        return out

    def finding(self, kind, fname, stmt, role, detail, report=None):
        n = len(self.findings) + 1
        header = ["finding %d: %s in benefits.%s (seed %s, call %d)" % (n, kind, fname, self.args.seed, self.calls),
                  "detail: %s" % detail.replace("\n", " ")]
        if role:
            header.append("role: %s" % role)
        if report:
            header.append("sanitizer report in the server log:")
            header += ["  " + l for l in report[:60]]
        form = "full"
        n_same = len([f for f in self.findings if f[0] == kind and f[1] == fname])
        if self.args.minimize and kind != "hang" and n_same < self.args.max_per_function:
            for candidate in ("bare", "dataset"):
                text = self.reproducer(stmt, role, candidate, header)
                if replay_text(self, text) != "survived":
                    form = candidate
                    break
        self.log.pos = self.log.size()     # what the replays wrote is theirs
        header.append("form: %s" % {"bare": "the extension alone", "dataset": "the seeded dataset",
                                    "full": "the dataset and every committed call before"}[form])
        n_same = len([f for f in self.findings if f[0] == kind and f[1] == fname])
        if n_same >= self.args.max_per_function:
            self.findings.append((kind, fname, detail, None))
            print("FINDING %d: %s in benefits.%s again (no reproducer written)" % (n, kind, fname), flush=True)
            return
        text = self.reproducer(stmt, role, form, header)
        path = os.path.join(self.args.out, "seed%s-%03d-%s.sql" % (self.args.seed, n, re.sub(r"\W+", "_", fname)))
        with open(path, "w") as fh:
            fh.write(text)
        self.findings.append((kind, fname, detail, path))
        print("FINDING %d: %s in benefits.%s: %s -> %s" % (n, kind, fname, detail, path), flush=True)

    def summary(self):
        classes = ", ".join("%s=%d" % kv for kv in sorted(self.errors.items()))
        print()
        print("functions exercised: %d of %d" % (len([f for f in self.functions if self.stats[f["name"]]]),
                                                 len(self.functions)))
        if self.args.stats:
            for fname in sorted(self.per_function):
                print("  %-28s %s" % (fname, " ".join("%s=%d" % kv for kv in sorted(self.per_function[fname].items()))))
        for (fname, msg), cnt in sorted(self.internal.items()):
            print("internal error (XX000 or none) x%d in %s: %s" % (cnt, fname, msg))
        groups = collections.OrderedDict()
        for kind, fname, detail, path in self.findings:
            groups.setdefault((kind, fname), []).append(path)
        for (kind, fname), paths in groups.items():
            print("finding: %s in benefits.%s x%d, e.g. %s" % (kind, fname, len(paths),
                                                             ", ".join(p for p in paths if p)))
        kinds = collections.Counter("crash" if f[0].startswith(("crash", "lost")) else f[0] for f in self.findings)
        print("distinct SQLSTATEs: %d: %s" % (len(self.states), " ".join(
            "%s=%d" % kv for kv in sorted(self.states.items()))))
        print("batches run again call by call: %d" % self.batches_replayed)
        print("summary: seed %s, %d calls in %.0f s, outcomes by SQLSTATE class: %s; crashes found: %d; "
              "sanitizer reports: %d; invalid results: %d; hangs: %d; internal errors: %d"
              % (self.args.seed, self.calls, self.elapsed, classes, kinds["crash"], kinds["sanitizer report"],
                 kinds["invalid result"], kinds["hang"], kinds["internal error"]))
        return 1 if self.findings else 0


class LogWatch:
    """New sanitizer reports in the server log (where the server's stderr goes)."""
    REPORT = re.compile(r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error: |^\s+#\d+ 0x|"
                        r"^SUMMARY: \w+Sanitizer|^READ of size|^WRITE of size|^==\d+==")

    def __init__(self, path):
        self.path = path
        self.pos = self.size()

    def size(self):
        try:
            return os.path.getsize(self.path) if self.path else 0
        except OSError:
            return 0

    def new_reports(self):
        """The report lines written since the last call (a sanitizer prints them before it aborts)."""
        size = self.size()
        if size < self.pos:
            self.pos = 0
        if size == self.pos:
            return []
        with open(self.path, "rb") as fh:
            fh.seek(self.pos)
            data = fh.read(size - self.pos)
        self.pos = size
        lines = data.decode("utf-8", "replace").splitlines()
        if not any("Sanitizer" in l or "runtime error: " in l for l in lines):
            return []
        return [l for l in lines if self.REPORT.search(l)]


class RawLoader(psycopg.adapt.Loader):
    def load(self, data):
        return bytes(data)


class RawJson(str):
    """A JSON number spelt exactly as given (1e1000, -0)."""


def jdump(obj):
    """JSON text of OBJ, with RawJson numbers written verbatim and -0.0 kept."""
    if isinstance(obj, RawJson):
        return str(obj)
    if isinstance(obj, dict):
        return "{" + ", ".join(jdump(str(k)) + ": " + jdump(v) for k, v in obj.items()) + "}"
    if isinstance(obj, list):
        return "[" + ", ".join(jdump(v) for v in obj) + "]"
    if isinstance(obj, float) and obj == 0.0 and str(obj).startswith("-"):
        return "-0.0"
    return json.dumps(obj, ensure_ascii=False, allow_nan=False)


def quote_ident(s):
    return '"' + s.replace('"', '""') + '"'


def split_reproducer(text):
    """The statements of a reproducer, as the driver wrote them."""
    chunks = text.split("\n" + SEPARATOR + "\n")
    out = []
    for c in chunks[1:]:
        c = "\n".join(l for l in c.split("\n") if not l.startswith("-- the call"))
        c = c.strip()
        if c.endswith(";"):
            c = c[:-1]
        out.append(c)
    return out


def replay_text(fz, text, dbname="benefits_fuzz_replay"):
    """Runs a reproducer on a fresh database: 'crash' if the backend died, else 'survived'."""
    try:
        conn = fz.fresh_database(dbname)
    except psycopg.Error as e:
        print("replay: could not prepare %s: %s" % (dbname, e), file=sys.stderr)
        return "unknown"
    verdict = "survived"
    log = LogWatch(fz.args.server_log)
    try:
        for chunk in split_reproducer(text):
            for q in split_statements(chunk):
                try:
                    cur = conn.cursor()
                    Fuzzer.text_results(cur)
                    cur.execute(q)
                    if cur.description is not None:
                        for row in cur.fetchall():
                            for col, v in zip(cur.description, row):
                                if isinstance(v, bytes) and col.type_code not in BYTEA_OIDS:
                                    try:
                                        v.decode("utf-8")
                                    except UnicodeDecodeError:
                                        verdict = "invalid result"
                except psycopg.Error as e:
                    if conn.broken or conn.closed:
                        verdict = "crash" if not getattr(e, "sqlstate", None) else "lost"
                        return verdict
        try:
            conn.execute("SELECT 1")
        except psycopg.Error:
            verdict = "crash"
        if verdict == "survived" and log.new_reports():
            verdict = "sanitizer report"
    finally:
        try:
            conn.close()
        except Exception:
            pass
        # wait for the server to accept connections again after a crash
        fz.connect("postgres").close()
    return verdict


def split_statements(chunk):
    """The statements of one reproducer chunk: the driver's transaction lines end in ';\\n'."""
    out = []
    lines = chunk.split("\n")
    if lines and lines[0] == "BEGIN;":
        # BEGIN; SET LOCAL ...; [SET LOCAL ROLE ...;] <statement>; ROLLBACK|COMMIT
        i = 0
        while i < len(lines) and (lines[i] == "BEGIN;" or lines[i].startswith("SET LOCAL ")):
            out.append(lines[i][:-1])
            i += 1
        rest = "\n".join(lines[i:])
        m = re.search(r";\n(ROLLBACK|COMMIT)$", rest)
        if m:
            out.append(rest[:m.start()])
            out.append(m.group(1))
        else:
            out.append(rest)
        return out
    return [chunk]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dsn", default="", help="libpq connection string (default: the PG* environment)")
    ap.add_argument("--database", default="benefits_fuzz", help="scratch database (dropped and created again)")
    ap.add_argument("--iterations", type=int, default=1000000)
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--statement-timeout", type=int, default=3000, help="milliseconds")
    ap.add_argument("--commit-ratio", type=float, default=0.15, help="share of successful calls committed")
    ap.add_argument("--role-ratio", type=float, default=0.1, help="share of calls made as a benefits_* role")
    ap.add_argument("--reseed-every", type=int, default=1500, help="add a fresh dataset every N calls")
    ap.add_argument("--batch", type=int, default=50,
                    help="calls per round trip (public.fuzz_try); 1 runs every call on its own")
    ap.add_argument("--single-ratio", type=float, default=0.02,
                    help="share of calls run on their own even when batching (their results are checked)")
    ap.add_argument("--progress", type=int, default=0, help="print a progress line every N calls")
    ap.add_argument("--only", help="comma-separated function names to call (default: every function)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                                  "tmp_fuzz", "findings"))
    ap.add_argument("--server-log", default=os.environ.get("BENEFITS_SERVER_LOG"),
                    help="the server's log, watched for AddressSanitizer/UBSan reports")
    ap.add_argument("--max-per-function", type=int, default=3, help="reproducers written per function and kind")
    ap.add_argument("--minimize", action="store_true", help="replay each crash to find its smallest reproducer")
    ap.add_argument("--replay", metavar="FILE", help="run a reproducer on a fresh database and report")
    ap.add_argument("--stats", action="store_true", help="outcomes per function in the summary")
    ap.add_argument("--verbose", "-v", action="store_true")
    args = ap.parse_args()
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1, 10**6)
    args.out = os.path.normpath(args.out)

    fz = Fuzzer(args)
    if args.replay:
        with open(args.replay) as fh:
            verdict = replay_text(fz, fh.read())
        print("replay %s: %s" % (args.replay, verdict))
        return 0 if verdict == "survived" else 1
    fz.setup()
    print("seed %s: %d functions, dataset seeded (%d statements)" % (args.seed, len(fz.functions),
                                                                     len(fz.seed_history)), flush=True)
    try:
        fz.run()
    except KeyboardInterrupt:
        fz.elapsed = 0
    return fz.summary()


if __name__ == "__main__":
    sys.exit(main())
