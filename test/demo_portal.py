#!/usr/bin/env python3
"""Step 7 of `make demo`, written as an application would write it.

The portal session token is sent as a bind parameter (psycopg 3 sends $1 and
its value apart from the statement text), never spelled inside the SQL: a
statement that fails is written to the server log with its text
(log_min_error_statement), and a literal token there would be a credential
in the log.  The connection comes from PGHOST, PGPORT, PGUSER and PGDATABASE.
"""
import os

import psycopg

token = os.environ["BENEFITS_TOKEN"]
with psycopg.connect("") as conn:
    doc = conn.execute("SELECT benefits.customer_portal(%s)", [token]).fetchone()[0]
    print(f"   {'type':<18} {'description':<22} what Ada sees")
    for b in doc["benefits"]:
        seen = (b.get("license_key") or {}).get("key") or b.get("note")
        if seen is None and b.get("meter"):
            meter = b["meter"]
            seen = f"{meter['balance']} credits left"
            if meter.get("expiring"):
                seen += f", {meter['expiring']} of them expire {meter['credits_expire_at'][:10]}"
            seen += f"; used this period: {meter['used_in_period']}"
        if seen is None and b.get("feature"):
            seen = f"the {b['feature']} feature"
        if seen is None and b.get("github"):
            seen = f"{b['github']['delivery']} to {b['github']['account']['username']}"
        print(f"   {b['type']:<18} {b['description']:<22} {seen}")
    html = conn.execute("SELECT benefits.customer_portal_html(%s)", [token]).fetchone()[0]
    title = html.split("<title>", 1)[1].split("</title>", 1)[0]
    charts, bars = html.count('<svg class="usage-chart"'), html.count("<rect ")
    print(f"   the HTML page: {len(html)} bytes, titled {title!r}, with {charts} usage chart ({bars} days with usage)")
    try:
        conn.execute("SELECT benefits.customer_portal(%s)", [token[:-4] + "xxxx"])
    except psycopg.Error as e:
        print(f"   a mistyped token: {e.diag.message_primary} (SQLSTATE {e.sqlstate});"
              " the log shows the statement with $1, not the token")
