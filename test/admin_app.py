#!/usr/bin/python3
"""A small application serving the merchant's dashboard, for the tests.

    admin_app.py PORT_FILE ORGANIZATION_ID CSRF_TOKEN

Written as an application would write it (stdlib http.server and psycopg 3,
every value sent as a bind parameter).  It listens on 127.0.0.1 (a free
port, written to PORT_FILE) and serves:

  GET  /admin?section=S[&notice=N]  benefits.admin_page_html for the
                                    organization, forms posting to
                                    /admin/actions, uploads redirected to
                                    /admin/uploaded
  POST /admin/actions               checks csrf_token (and Origin), calls the SQL function
                                    the form's action names with its fields,
                                    and sends the browser back to the section
                                    (303) with what happened as the notice
  GET  /admin/uploaded?file_id=F&csrf_token=T   where storage sends the
                                    browser after an upload: checks the token,
                                    calls complete_file_upload
  GET  /portal?token=T              the customer portal page of a session

The connection comes from PGHOST, PGPORT, PGUSER and PGDATABASE; the
dashboard runs as benefits_admin (SET ROLE), as the application's admin
login would.  Stops after 10 minutes.
"""
import hmac
import http.server
import json
import os
import sys
import threading
import urllib.parse

import psycopg

PORT_FILE, ORG, CSRF = sys.argv[1], sys.argv[2], sys.argv[3]
LOCK = threading.Lock()
conn = psycopg.connect("", autocommit=True)
conn.execute("SET ROLE benefits_admin")


def property_updates(fields):
    """The properties an edit form changes: property.K as text, property_integer.K as integers."""
    changed = {}
    for name, values in fields.items():
        if name.startswith("property."):
            changed[name[len("property."):]] = values[0]
        elif name.startswith("property_integer."):
            changed[name[len("property_integer."):]] = int(values[0])
    return changed


def update_benefit(f):
    current = conn.execute("SELECT properties FROM benefits.benefits WHERE id = %s",
                           [f["benefit_id"][0]]).fetchone()[0]
    conn.execute("SELECT benefits.update_benefit(%s, %s, %s::jsonb)",
                 [f["benefit_id"][0], f["description"][0], json.dumps({**current, **property_updates(f)})])


# action -> (the call, the section to go back to)
ACTIONS = {
    "update_product_benefits": (lambda f: conn.execute(
        "SELECT benefits.update_product_benefits(%s, %s::uuid[])",
        [f["product_id"][0], f.get("benefit_ids", [])]), "products"),
    "update_benefit": (update_benefit, "benefits"),
    "retry_job": (lambda f: conn.execute("SELECT benefits.retry_job(%s::bigint)", [f["job_id"][0]]), "delivery"),
    "enable_webhook_endpoint": (lambda f: conn.execute(
        "SELECT benefits.enable_webhook_endpoint(%s)", [f["endpoint_id"][0]]), "delivery"),
    "complete_fulfillment": (lambda f: conn.execute(
        "SELECT benefits.complete_fulfillment(%s, %s)", [f["grant_id"][0], (f.get("note") or [None])[0]]),
        "delivery"),
}


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):
        sys.stderr.write("admin-app: " + (fmt % args) + "\n")

    def send(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def page(self, html):
        self.send(200, html.encode(), [("Content-Type", "text/html; charset=utf-8"),
                                       ("Content-Security-Policy", "frame-ancestors 'none'"),
                                       ("Cache-Control", "no-store")])

    def back(self, section, notice):
        self.send(303, headers=[("Location", "/admin?" + urllib.parse.urlencode(
            {"section": section, "notice": notice}))])

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(url.query)
        with LOCK:
            if url.path == "/admin":
                params = {"upload_redirect_url": "http://127.0.0.1:%d/admin/uploaded" % self.server.server_port}
                if "notice" in q:
                    params["notice"] = q["notice"][0]
                try:
                    html = conn.execute("SELECT benefits.admin_page_html(%s, %s, '/admin/actions', %s, %s::jsonb)",
                                        [ORG, q.get("section", ["overview"])[0], CSRF, json.dumps(params)]).fetchone()[0]
                except psycopg.Error as e:
                    return self.send(400, e.diag.message_primary.encode())
                return self.page(html)
            if url.path == "/admin/uploaded":
                if not hmac.compare_digest(q.get("csrf_token", [""])[0], CSRF):
                    return self.send(403, b"bad csrf token")
                conn.execute("SELECT benefits.complete_file_upload(%s)", [q["file_id"][0]])
                return self.back("files", "Uploaded.")
            if url.path == "/portal":
                conn.execute("RESET ROLE")
                try:
                    html = conn.execute("SELECT benefits.customer_portal_html(%s)", [q["token"][0]]).fetchone()[0]
                finally:
                    conn.execute("SET ROLE benefits_admin")
                return self.page(html)
        self.send(404)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        fields = urllib.parse.parse_qs(self.rfile.read(length).decode(), keep_blank_values=True)
        if urllib.parse.urlsplit(self.path).path != "/admin/actions":
            return self.send(404)
        if not hmac.compare_digest(fields.get("csrf_token", [""])[0], CSRF):
            return self.send(403, b"bad csrf token")
        if self.headers.get("Origin", "http://127.0.0.1:%d" % self.server.server_port) != \
                "http://127.0.0.1:%d" % self.server.server_port:
            return self.send(403, b"post from another origin")
        action = fields.get("action", [""])[0]
        if action not in ACTIONS:
            return self.send(400, b"unknown action")
        call, section = ACTIONS[action]
        with LOCK:
            try:
                call(fields)
            except psycopg.Error as e:
                return self.back(section, "Refused: " + e.diag.message_primary)
        self.back(section, "Done: " + action + ".")


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(PORT_FILE + ".tmp", "w") as f:
        f.write(str(server.server_port))
    os.rename(PORT_FILE + ".tmp", PORT_FILE)
    threading.Timer(600, server.shutdown).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
