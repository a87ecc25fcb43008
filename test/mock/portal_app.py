#!/usr/bin/env python3
"""A small shop application serving the customer portal, for the browser test
of account linking (test/t/081_account_linking_browser.pl).

Written as an application would write it: the customer's portal session
token is held by the application (here: read from --token-file, the one test
customer's) and sent to the database as a bind parameter, never spelled in
SQL (see test/demo_portal.py).  The connection comes from PGHOST, PGPORT,
PGUSER and PGDATABASE; each request runs in a transaction of its own
(autocommit), as an application's request handlers do.

One threaded HTTP/1.1 server on 127.0.0.1 with an ephemeral port (written to
--port-file).  Routes:

  GET  /portal          customer_portal_html(token, '/portal/actions',
                        'http://127.0.0.1:PORT/oauth/callback'), served as it is
  GET  /oauth/callback  the provider's redirect: ?code=...&state=... or
                        ?error=access_denied&state=...; calls
                        portal_link_callback(token, state, code) (code NULL on
                        error=...) and redirects (303) back to /portal; a state
                        the database refuses (SQLSTATE 28000) answers 400
  POST /portal/actions  action=portal_unlink_account&platform=...: calls
                        portal_unlink_account(token, platform) and redirects
                        (303) back to /portal
  anything else         404

Every request is appended as one JSON line to --log: method, path, the form
or query received (the code and the state: this is a test), the function's
result or the SQLSTATE it raised, and the status answered.
"""
import argparse
import json
import os
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg

lock = threading.Lock()
token = None
log_file = None
base_url = None


def db():
    return psycopg.connect("", autocommit=True)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def record(self, status, **extra):
        entry = {"t": time.time(), "method": self.command, "path": self.path, "status": status}
        entry.update(extra)
        with lock:
            log_file.write(json.dumps(entry) + "\n")
            log_file.flush()

    def send(self, status, body=b"", content_type="text/plain; charset=utf-8", location=None):
        self.send_response(status)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        # What the page's meta CSP cannot say (src/portal_html.c).
        self.send_header("Content-Security-Policy", "frame-ancestors 'none'")
        self.end_headers()
        self.wfile.write(body)
        return status

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/portal":
            with db() as conn:
                html = conn.execute("SELECT benefits.customer_portal_html(%s, %s, %s)",
                                    [token, "/portal/actions", base_url + "/oauth/callback"]).fetchone()[0]
            self.record(self.send(200, html.encode(), "text/html; charset=utf-8"))
            return
        if url.path == "/oauth/callback":
            q = dict(urllib.parse.parse_qsl(url.query))
            code = None if "error" in q else q.get("code")
            try:
                with db() as conn:
                    outcome = conn.execute("SELECT benefits.portal_link_callback(%s, %s, %s)",
                                           [token, q.get("state"), code]).fetchone()[0]
            except psycopg.Error as e:
                self.record(self.send(400 if e.sqlstate == "28000" else 500,
                                      f"{e.diag.message_primary}\n".encode()),
                            query=q, sqlstate=e.sqlstate)
                return
            self.record(self.send(303, location="/portal"), query=q, result=outcome)
            return
        self.record(self.send(404, b"not found\n"))

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
        if url.path == "/portal/actions" and form.get("action") == "portal_unlink_account":
            try:
                with db() as conn:
                    removed = conn.execute("SELECT benefits.portal_unlink_account(%s, %s)",
                                           [token, form.get("platform")]).fetchone()[0]
            except psycopg.Error as e:
                self.record(self.send(400, f"{e.diag.message_primary}\n".encode()), form=form, sqlstate=e.sqlstate)
                return
            self.record(self.send(303, location="/portal"), form=form, result=removed,
                        origin=self.headers.get("Origin"), sec_fetch_site=self.headers.get("Sec-Fetch-Site"),
                        content_type=self.headers.get("Content-Type"))
            return
        self.record(self.send(404, b"not found\n"), form=form)


def main():
    global token, log_file, base_url
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--token-file", required=True)
    args = ap.parse_args()
    with open(args.token_file) as f:
        token = f.read().strip()
    log_file = open(args.log, "a")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    base_url = f"http://127.0.0.1:{server.server_address[1]}"
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
