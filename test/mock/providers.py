#!/usr/bin/env python3
"""Mock GitHub, Discord and webhook receiver for the worker's TAP tests.

One threaded HTTP/1.1 server on 127.0.0.1 with an ephemeral port (written to
--port-file).  Every request is appended as one JSON line to --log with the
answer given.  Routes:

  GitHub   PUT/DELETE /repos/{o}/{r}/collaborators/{u}, GET /repos/{o}/{r}/invitations,
           DELETE /repos/{o}/{r}/invitations/{id}   (PUT creates a pending invitation)
  Discord  PUT/DELETE /guilds/{g}/members/{u}, PUT/DELETE /guilds/{g}/members/{u}/roles/{r},
           POST /channels/{c}/messages (a nonce with enforce_nonce is answered with the
           message it created before, as Discord does; messages kept in /__state)
  OAuth    GitHub GET /login/oauth/authorize, POST /login/oauth/access_token, GET /user;
           Discord GET /oauth2/authorize, POST /oauth2/token (codes and refresh tokens),
           GET /users/@me.  The authorize pages redirect at once to redirect_uri with a
           code (or error=access_denied) and the state, as if the customer signed in as
           the identity oauth_users names and allowed access.  Codes and refresh tokens
           are single-use; Discord access tokens expire after discord_token_ttl, and
           a member PUT with an expired or unknown mock token is refused (403).
  Webhooks POST anything else: 204, after checking the Standard Webhooks
           signature against the receiver's copy of the secret (see /__control)

Control (not logged):
  POST /__control  JSON merged into the settings:
      fail_every     every Nth request fails (0: never)
      fail_modes     cycled through on failures: "500", "429" (Retry-After header and
                     body), "429body" (Discord's JSON retry_after only), "403reset"
                     (X-RateLimit-Remaining: 0 and X-RateLimit-Reset), "reset", "hang"
      retry_after    seconds sent in Retry-After / Discord's retry_after
      hang_seconds   how long "hang" holds the request before closing
      delay_ms       added to every answer
      delay_paths    {path: ms} added to the answers to that path (query ignored)
      status         {path: status} fixed answers (e.g. 410 for a webhook path)
      status_once    {path: status} answered once (with Retry-After: retry_after), then forgotten
                     (for POST: only to Discord's channel messages)
      raw            {path: text} a fixed 200 answer to GET path whose body is text
                     encoded as Latin-1 (so "\u00ff" sends the byte 0xff)
      accept_invitations  true: every pending GitHub invitation is accepted now
      invite         {"owner/repo": [login, ...]}: pending invitations made now, in order
      uninvite_after_first_page  {"owner/repo": n}: once, right after page 1 of that
                     repository's invitations is served, its n oldest invitations
                     are deleted (as other revokes running at the same time do)
      link_base      the URL the Link headers' links start with (default
                     http://mock; a long one makes a Link header over 512 bytes)
      link_rels      the relations the Link headers give (default prev, next, last, first)
      secrets        {path: "whsec_..."} the receiver's copies of the secrets
      oauth_users    {"github": {"id": n, "login": s}, "discord": {"id": s, "username": s}}:
                     who signs in at the next authorize
      oauth_clients  {"github": [client_id, secret], ...}: the token endpoints check them
      oauth_deny     true: the authorize pages answer error=access_denied
      oauth_fail     {path: [status, ...]}: answers given first, in order, to that path
      discord_token_ttl  expires_in of Discord access tokens (seconds)
      refuse_refresh true: Discord refuses every refresh token
      expire_tokens  true: every Discord access token issued so far expires now
  GET /__state     the providers' state: collaborators, invitations, members
"""
import argparse
import base64
import hashlib
import hmac
import json
import re
import secrets
import socket
import struct
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
CHANNEL_MESSAGES = re.compile(r"(?:/api/v\d+)?/channels/([^/]+)/messages")
settings = {"fail_every": 0, "fail_modes": ["500"], "retry_after": 1, "hang_seconds": 3,
            "delay_ms": 0, "delay_paths": {}, "status": {}, "status_once": {}, "raw": {}, "secrets": {},
            "oauth_users": {"github": {"id": 1001, "login": "octo-ada"},
                            "discord": {"id": "80351110224678912", "username": "ada"}},
            "oauth_clients": {}, "oauth_deny": False, "oauth_fail": {}, "discord_token_ttl": 604800,
            "refuse_refresh": False, "uninvite_after_first_page": {}, "link_base": "http://mock",
            "link_rels": ["prev", "next", "last", "first"]}
counter = {"n": 0, "failures": 0}
collaborators = {}   # "owner/repo" -> {login: permission}
invitations = {}     # "owner/repo" -> {login: {"id": n, "permission": p}}
members = {}         # guild -> {user: set(roles)}
messages = []        # Discord channel messages: {id, channel_id, nonce, content, allowed_mentions}
next_invitation = [1000]
oauth_codes = {}     # code -> {"platform", "user", "redirect_uri"}
oauth_tokens = {}    # access token -> {"platform", "user", "expires"}
oauth_refresh = {}   # refresh token -> {"user"}
log_file = None


def verify_signature(secret, msg_id, ts, body, header):
    if not secret or not secret.startswith("whsec_"):
        return None
    key = base64.b64decode(secret[len("whsec_"):])
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    expected = "v1," + base64.b64encode(mac).decode()
    return any(hmac.compare_digest(expected, s) for s in (header or "").split(" "))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body=None, headers=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)
        return status

    def record(self, body, answer, extra=None):
        entry = {"method": self.command, "path": self.path,
                 "headers": {k.lower(): v for k, v in self.headers.items()},
                 "body": body.decode("utf-8", "replace"), "answer": answer}
        if extra:
            entry.update(extra)
        with lock:
            entry["t"] = time.time()    # under the lock: the log is in time order
            log_file.write(json.dumps(entry) + "\n")
            log_file.flush()

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = urllib.parse.urlsplit(self.path).path
        if path == "/__control":
            with lock:
                update = json.loads(body or b"{}")
                if update.pop("expire_tokens", False):
                    for t in oauth_tokens.values():
                        if t["platform"] == "discord":
                            t["expires"] = 0
                if update.pop("accept_invitations", False):
                    for repo, invs in invitations.items():
                        for login, v in list(invs.items()):
                            collaborators.setdefault(repo, {})[login] = v["permission"]
                            del invs[login]
                for repo, logins in update.pop("invite", {}).items():
                    for login in logins:
                        next_invitation[0] += 1
                        invitations.setdefault(repo, {})[login] = {"id": next_invitation[0], "permission": "pull"}
                settings.update(update)
            self.answer(200, {"ok": True})
            return
        if path == "/__state":
            with lock:
                state = {"collaborators": collaborators, "invitations": invitations,
                         "members": {g: {u: sorted(r) for u, r in m.items()} for g, m in members.items()},
                         "messages": messages, "requests": counter["n"], "failures": counter["failures"],
                         "oauth_codes": len(oauth_codes), "oauth_tokens": len(oauth_tokens)}
                self.answer(200, state)
            return
        with lock:
            counter["n"] += 1
            n = counter["n"]
            fail_every = settings["fail_every"]
            mode = None
            if fail_every and n % fail_every == 0:
                modes = settings["fail_modes"]
                mode = modes[(n // fail_every) % len(modes)]
                counter["failures"] += 1
            delay = settings["delay_ms"] + settings["delay_paths"].get(path, 0)
        if delay:
            time.sleep(delay / 1000.0)
        if mode == "reset":
            self.record(body, "reset")
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        if mode == "hang":
            self.record(body, "hang")
            time.sleep(settings["hang_seconds"])
            self.close_connection = True
            return
        if mode == "500":
            self.record(body, self.answer(500, {"message": "mock failure"}))
            return
        if mode == "429":
            ra = settings["retry_after"]
            self.record(body, self.answer(429, {"message": "rate limited", "retry_after": ra, "global": False},
                                          {"Retry-After": ra}))
            return
        if mode == "429body":      # Discord: the delay only in the JSON body
            ra = settings["retry_after"]
            self.record(body, self.answer(429, {"message": "You are being rate limited.", "retry_after": ra,
                                                "global": False}))
            return
        if mode == "403reset":     # GitHub: primary rate limit exhausted
            reset = int(time.time() + settings["retry_after"] + 0.999)
            self.record(body, self.answer(403, {"message": "API rate limit exceeded"},
                                          {"X-RateLimit-Remaining": 0, "X-RateLimit-Reset": reset}))
            return
        with lock:
            once = (settings["status_once"].pop(path, None)
                    if self.command != "POST" or CHANNEL_MESSAGES.fullmatch(path) else None)
        if once:
            ra = settings["retry_after"]
            self.record(body, self.answer(once, {"message": "rate limited", "retry_after": ra, "global": False},
                                          {"Retry-After": ra}))
            return
        with lock:
            fixed = settings["status"].get(path) if self.command != "POST" else None
        if fixed:
            self.record(body, self.answer(fixed, {"message": "fixed answer"}))
            return
        with lock:
            raw = settings["raw"].get(path) if self.command == "GET" else None
        if raw is not None:
            data = raw.encode("latin-1")
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            self.record(body, 200)
            return
        with lock:
            queued = settings["oauth_fail"].get(path)
            failed = queued.pop(0) if queued else None
        if failed:
            ra = settings["retry_after"]
            self.record(body, self.answer(failed, {"message": "mock failure", "retry_after": ra},
                                          {"Retry-After": ra}))
            return
        status, extra = self.route(path, body)
        self.record(body, status, extra)

    def oauth_authorize(self, platform):
        q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
        target = q.get("redirect_uri", "")
        sep = "&" if "?" in target else "?"
        with lock:
            if settings["oauth_deny"]:
                params = {"error": "access_denied", "state": q.get("state", "")}
            else:
                code = secrets.token_hex(10)
                oauth_codes[code] = {"platform": platform, "user": dict(settings["oauth_users"][platform]),
                                     "redirect_uri": target}
                params = {"code": code, "state": q.get("state", "")}
        return self.answer(302, None, {"Location": target + sep + urllib.parse.urlencode(params)}), None

    def oauth_client_ok(self, platform, form):
        expected = settings["oauth_clients"].get(platform)
        return expected is None or [form.get("client_id"), form.get("client_secret")] == list(expected)

    def oauth_issue(self, platform, user):
        token = ("mockgh_" if platform == "github" else "mockdc_") + secrets.token_hex(12)
        oauth_tokens[token] = {"platform": platform, "user": user,
                               "expires": time.time() + settings["discord_token_ttl"]}
        answer = {"access_token": token, "token_type": "bearer" if platform == "github" else "Bearer"}
        if platform == "discord":
            rt = "mockrt_" + secrets.token_hex(12)
            oauth_refresh[rt] = {"user": user}
            answer.update({"expires_in": settings["discord_token_ttl"], "refresh_token": rt,
                           "scope": "identify guilds.join"})
        else:
            answer["scope"] = ""
        return answer

    def oauth_token(self, platform, body):
        form = dict(urllib.parse.parse_qsl(body.decode()))
        with lock:
            if not self.oauth_client_ok(platform, form):
                return self.answer(401 if platform == "discord" else 200,
                                   {"error": "invalid_client" if platform == "discord"
                                    else "incorrect_client_credentials"}), None
            grant = form.get("grant_type", "authorization_code")
            if grant == "refresh_token" and platform == "discord":
                entry = None if settings["refuse_refresh"] else oauth_refresh.pop(form.get("refresh_token"), None)
                if entry is None:
                    return self.answer(400, {"error": "invalid_grant"}), {"effect": "refresh_refused"}
                return self.answer(200, self.oauth_issue(platform, entry["user"])), {"effect": "refreshed"}
            entry = oauth_codes.pop(form.get("code"), None)
            if entry is None or entry["platform"] != platform or entry["redirect_uri"] != form.get("redirect_uri"):
                if platform == "github":
                    return self.answer(200, {"error": "bad_verification_code",
                                             "error_description": "The code passed is incorrect or expired."}), None
                return self.answer(400, {"error": "invalid_grant"}), None
            return self.answer(200, self.oauth_issue(platform, entry["user"])), {"effect": "exchanged"}

    def oauth_user(self, platform):
        auth = self.headers.get("Authorization") or ""
        token = auth.split(" ", 1)[1] if " " in auth else ""
        with lock:
            t = oauth_tokens.get(token)
            if t is None or t["platform"] != platform or t["expires"] < time.time():
                return self.answer(401, {"message": "401: Unauthorized"}), None
            return self.answer(200, t["user"]), None

    def route(self, path, body):
        path = re.sub(r"^/api/v\d+(?=/(guilds|oauth2|users)/)", "", path)   # Discord's versioned base URL
        routes = {("GET", "/login/oauth/authorize"): lambda: self.oauth_authorize("github"),
                  ("POST", "/login/oauth/access_token"): lambda: self.oauth_token("github", body),
                  ("GET", "/user"): lambda: self.oauth_user("github"),
                  ("GET", "/oauth2/authorize"): lambda: self.oauth_authorize("discord"),
                  ("POST", "/oauth2/token"): lambda: self.oauth_token("discord", body),
                  ("GET", "/users/@me"): lambda: self.oauth_user("discord")}
        if (self.command, path) in routes:
            return routes[(self.command, path)]()
        m = re.fullmatch(r"/repos/([^/]+)/([^/]+)/collaborators/([^/]+)", path)
        if m:
            repo, login = f"{m[1]}/{m[2]}", urllib.parse.unquote(m[3])
            with lock:
                if self.command == "PUT":
                    perm = json.loads(body or b"{}").get("permission", "pull")
                    if login in collaborators.get(repo, {}):
                        collaborators[repo][login] = perm
                        return self.answer(204), {"effect": f"collaborator:{login}:{perm}"}
                    inv = invitations.setdefault(repo, {})
                    if login in inv:
                        inv[login]["permission"] = perm
                        return self.answer(204), {"effect": f"invite:{login}:{perm}"}
                    next_invitation[0] += 1
                    inv[login] = {"id": next_invitation[0], "permission": perm}
                    return (self.answer(201, {"id": next_invitation[0], "invitee": {"login": login}}),
                            {"effect": f"invite:{login}:{perm}"})
                if self.command == "DELETE":
                    if collaborators.get(repo, {}).pop(login, None) is not None:
                        return self.answer(204), {"effect": f"remove:{login}"}
                    return self.answer(404, {"message": "Not Found"}), None
        m = re.fullmatch(r"/repos/([^/]+)/([^/]+)/invitations", path)
        if m and self.command == "GET":
            repo = f"{m[1]}/{m[2]}"
            q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            per_page, page = int(q.get("per_page", ["30"])[0]), int(q.get("page", ["1"])[0])
            with lock:
                items = [{"id": v["id"], "invitee": {"login": k}, "permissions": v["permission"]}
                         for k, v in sorted(invitations.get(repo, {}).items(), key=lambda kv: kv[1]["id"])]
                if page == 1 and repo in settings["uninvite_after_first_page"]:
                    for item in items[:settings["uninvite_after_first_page"].pop(repo)]:
                        del invitations[repo][item["invitee"]["login"]]
                base, rels = settings["link_base"], settings["link_rels"]
            chunk = items[(page - 1) * per_page:page * per_page]
            # GitHub's paging: next and last while there are more pages, prev
            # and first after the first
            last = max(1, -(-len(items) // per_page))
            links = []
            def link(n, rel):
                if rel in rels:
                    links.append(f'<{base}{path}?per_page={per_page}&page={n}>; rel="{rel}"')
            if page > 1:
                link(page - 1, "prev")
            if page < last:
                link(page + 1, "next")
                link(last, "last")
            if page > 1:
                link(1, "first")
            headers = {"Link": ", ".join(links)} if links else {}
            return self.answer(200, chunk, headers), None
        m = re.fullmatch(r"/repos/([^/]+)/([^/]+)/invitations/(\d+)", path)
        if m and self.command == "DELETE":
            repo, inv_id = f"{m[1]}/{m[2]}", int(m[3])
            with lock:
                for login, v in list(invitations.get(repo, {}).items()):
                    if v["id"] == inv_id:
                        del invitations[repo][login]
                        return self.answer(204), {"effect": f"uninvite:{login}"}
            return self.answer(404, {"message": "Not Found"}), None
        m = re.fullmatch(r"/guilds/([^/]+)/members/([^/]+)", path)
        if m:
            guild, user = m[1], m[2]
            with lock:
                g = members.setdefault(guild, {})
                if self.command == "PUT":
                    req = json.loads(body or b"{}")
                    if not req.get("access_token"):
                        return self.answer(400, {"message": "access_token required", "code": 50035}), None
                    token = oauth_tokens.get(req["access_token"])
                    if req["access_token"].startswith("mockdc_") and (token is None or token["expires"] < time.time()):
                        return self.answer(403, {"message": "Invalid OAuth2 access token", "code": 50025}), None
                    if user in g:
                        return self.answer(204), None
                    g[user] = set(req.get("roles") or [])
                    return (self.answer(201, {"user": {"id": user}, "roles": sorted(g[user])}),
                            {"effect": f"member:{user}"})
                if self.command == "DELETE":
                    if g.pop(user, None) is None:
                        return self.answer(404, {"message": "Unknown Member", "code": 10007}), None
                    return self.answer(204), {"effect": f"kick:{user}"}
        m = re.fullmatch(r"/guilds/([^/]+)/members/([^/]+)/roles/([^/]+)", path)
        if m:
            guild, user, role = m[1], m[2], m[3]
            with lock:
                g = members.setdefault(guild, {})
                if user not in g:
                    return self.answer(404, {"message": "Unknown Member", "code": 10007}), None
                if self.command == "PUT":
                    g[user].add(role)
                    return self.answer(204), {"effect": f"role+:{user}:{role}"}
                if self.command == "DELETE":
                    g[user].discard(role)
                    return self.answer(204), {"effect": f"role-:{user}:{role}"}
        m = CHANNEL_MESSAGES.fullmatch(path)
        if m and self.command == "POST":
            req = json.loads(body or b"{}")
            if not (self.headers.get("Authorization") or "").startswith("Bot "):
                return self.answer(401, {"message": "401: Unauthorized", "code": 0}), None
            with lock:
                if req.get("enforce_nonce") and req.get("nonce"):
                    for old in messages:
                        if old["channel_id"] == m[1] and old["nonce"] == req["nonce"]:
                            return self.answer(200, old), {"effect": f"message-again:{m[1]}"}
                msg = {"id": str(900000000000000000 + len(messages)), "channel_id": m[1],
                       "nonce": req.get("nonce"), "content": req.get("content"),
                       "allowed_mentions": req.get("allowed_mentions")}
                messages.append(msg)
            return self.answer(200, msg), {"effect": f"message:{m[1]}"}
        if self.command == "POST":
            with lock:
                status = settings["status"].get(path, 204)
                secret = settings["secrets"].get(path)
            valid = verify_signature(secret, self.headers.get("webhook-id"), self.headers.get("webhook-timestamp"),
                                     body, self.headers.get("webhook-signature"))
            return self.answer(status), {"signature_valid": valid}
        return self.answer(404, {"message": "no such mock route"}), None

    do_GET = do_PUT = do_DELETE = do_POST = handle_any


def main():
    global log_file
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    args = ap.parse_args()
    log_file = open(args.log, "a")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.request_queue_size = 256
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    import os
    os.rename(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
