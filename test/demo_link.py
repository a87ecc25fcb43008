#!/usr/bin/env python3
"""Step 5 of `make demo`: Ada connects her GitHub account from the portal.

What a browser and the application's redirect handler do, in a few lines:
ask for the authorize URL, follow it to the provider (the mock signs Ada in
and sends her back with a code and the state), and pass what came back to
portal_link_callback.  The worker does the rest after commit.  The token,
the state and the code are bind parameters, never spelled inside the SQL.
"""
import os
import urllib.error
import urllib.parse
import urllib.request

import psycopg


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


token = os.environ["BENEFITS_TOKEN"]
callback = "https://myapp.example/oauth/callback"
with psycopg.connect("", autocommit=True) as conn:
    url = conn.execute("SELECT benefits.portal_link_url(%s, 'github', %s)", [token, callback]).fetchone()[0]
    shown = url.split("&state=")[0]
    print(f"   the portal's Connect GitHub link: {shown}&state=…")
    try:
        urllib.request.build_opener(NoRedirect).open(url)
        raise SystemExit("the provider did not redirect")
    except urllib.error.HTTPError as answer:
        location = answer.headers["Location"]
    back = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
    print(f"   GitHub sent Ada back to {callback} with a code and the state")
    outcome = conn.execute("SELECT benefits.portal_link_callback(%s, %s, %s)",
                           [token, back["state"], back["code"]]).fetchone()[0]
    print(f"   portal_link_callback: {outcome} (the worker exchanges the code after commit)")
    try:
        conn.execute("SELECT benefits.portal_link_callback(%s, %s, %s)", [token, back["state"], back["code"]])
    except psycopg.Error as e:
        print(f"   the same state again: {e.diag.message_primary} (SQLSTATE {e.sqlstate})")
