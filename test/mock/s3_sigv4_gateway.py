#!/usr/bin/env python3
"""A SigV4-verifying front for s3rver, for the TAP tests.

s3rver serves presigned URLs and enforces their expiry but does not check V4
signatures.  This gateway does: for every request it re-signs the request as
received with botocore's S3SigV4QueryAuth (clock set to the URL's X-Amz-Date,
the secret of the access key given) and refuses it with 403
SignatureDoesNotMatch unless the X-Amz-Signature matches, or with 403
AccessDenied once it has expired; then it forwards the request unchanged to
s3rver and relays the answer.

Browser uploads (a multipart/form-data POST to the bucket with a SigV4 POST
policy) are checked as S3 checks them, since s3rver ignores the policy: the
x-amz-signature must be the HMAC-SHA256 of the policy with the day's signing
key (derived here by the spec, not by the signer under test), the policy must
not have expired, every condition must hold (exact matches, starts-with, the
file's size within content-length-range: EntityTooLarge/EntityTooSmall
otherwise) and every form field but policy, x-amz-signature, file and
x-ignore-* must be named by a condition.

    s3_sigv4_gateway.py LISTEN_PORT UPSTREAM_PORT ACCESS_KEY_ID SECRET_ACCESS_KEY REGION

Stops by itself after 10 minutes.  Binds 127.0.0.1 only.
"""
import base64
import contextlib
import datetime
import email.parser
import email.policy
import hashlib
import hmac
import json
import http.client
import http.server
import sys
import threading
import types
from urllib.parse import parse_qsl, urlsplit

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

LISTEN, UPSTREAM, ACCESS_KEY, SECRET, REGION = (int(sys.argv[1]), int(sys.argv[2]),
                                                sys.argv[3], sys.argv[4], sys.argv[5])
LOCK = threading.Lock()


@contextlib.contextmanager
def fixed_clock(instant):
    """botocore's clock stopped at INSTANT (both old and new botocore)."""
    if hasattr(botocore.auth, "get_current_datetime"):
        saved = botocore.auth.get_current_datetime
        botocore.auth.get_current_datetime = lambda *a, **k: instant
        try:
            yield
        finally:
            botocore.auth.get_current_datetime = saved
        return

    class FixedDatetime(datetime.datetime):
        @classmethod
        def utcnow(cls):
            return instant.replace(tzinfo=None)

        @classmethod
        def now(cls, tz=None):
            return instant if tz is not None else instant.replace(tzinfo=None)

    shim = types.ModuleType("datetime")
    shim.__dict__.update(datetime.__dict__)
    shim.datetime = FixedDatetime
    saved = botocore.auth.datetime
    botocore.auth.datetime = shim
    try:
        yield
    finally:
        botocore.auth.datetime = saved


def check(method, host, target):
    """None when the presigned request is genuine and current, else (code, message)."""
    parts = urlsplit(target)
    query = parse_qsl(parts.query, keep_blank_values=True)
    auth = {k: v for k, v in query if k.startswith("X-Amz-")}
    others = [(k, v) for k, v in query if not k.startswith("X-Amz-")]
    needed = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
              "X-Amz-SignedHeaders", "X-Amz-Signature")
    if any(k not in auth for k in needed):
        return ("AccessDenied", "presigned query parameters missing")
    if auth["X-Amz-Credential"].split("/")[0] != ACCESS_KEY:
        return ("InvalidAccessKeyId", "unknown access key")
    try:
        signed_at = datetime.datetime.strptime(auth["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc)
        expires = int(auth["X-Amz-Expires"])
    except ValueError:
        return ("AuthorizationQueryParametersError", "bad X-Amz-Date or X-Amz-Expires")
    request = AWSRequest(method=method, url="http://%s%s" % (host, parts.path), params=dict(others))
    signer = botocore.auth.S3SigV4QueryAuth(Credentials(ACCESS_KEY, SECRET), "s3", REGION, expires=expires)
    with LOCK, fixed_clock(signed_at):
        signer.add_auth(request)
    expected = dict(parse_qsl(urlsplit(request.url).query, keep_blank_values=True))["X-Amz-Signature"]
    if not hmac.compare_digest(expected, auth["X-Amz-Signature"]):
        return ("SignatureDoesNotMatch", "The request signature we calculated does not match")
    if datetime.datetime.now(datetime.timezone.utc) > signed_at + datetime.timedelta(seconds=expires):
        return ("AccessDenied", "Request has expired")
    return None


def form_fields(content_type, body):
    """The fields of a multipart/form-data body, in order: [(name, bytes)]."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    fields = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        fields.append((name, part.get_payload(decode=True) or b""))
    return fields


def signing_key(date, region):
    """SigV4's signing key of a date (YYYYMMDD), by the spec."""
    key = ("AWS4" + SECRET).encode()
    for part in (date, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def check_post(bucket, content_type, body):
    """None when a browser upload's POST policy admits it, else (status, code, message)."""
    fields = form_fields(content_type, body)
    names = [n for n, _ in fields]
    if names.count("file") != 1 or names[-1] != "file":
        return (400, "InvalidArgument", "POST requires exactly one file field, the last")
    form = {n.lower(): v.decode("utf-8") for n, v in fields if n != "file"}
    size = len(fields[-1][1])
    needed = ("policy", "x-amz-signature", "x-amz-algorithm", "x-amz-credential", "x-amz-date")
    if any(k not in form for k in needed):
        return (403, "AccessDenied", "POST policy fields missing")
    credential = form["x-amz-credential"].split("/")
    if len(credential) != 5 or credential[0] != ACCESS_KEY or credential[2] != REGION:
        return (403, "InvalidAccessKeyId", "unknown access key or region")
    expected = hmac.new(signing_key(credential[1], REGION), form["policy"].encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, form["x-amz-signature"]):
        return (403, "SignatureDoesNotMatch", "The request signature we calculated does not match")
    policy = json.loads(base64.b64decode(form["policy"]))
    expiration = datetime.datetime.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc)
    if datetime.datetime.now(datetime.timezone.utc) > expiration:
        return (403, "AccessDenied", "Invalid according to Policy: Policy expired.")
    values = dict(form, bucket=bucket)
    covered = {"policy", "x-amz-signature", "file"}
    for cond in policy["conditions"]:
        if isinstance(cond, dict):
            (name, want), = cond.items()
            op, name = "eq", name.lower()
        elif cond[0] == "content-length-range":
            if size > int(cond[2]):
                return (400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
            if size < int(cond[1]):
                return (400, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size")
            continue
        else:
            op, name, want = cond[0], cond[1].lstrip("$").lower(), cond[2]
        covered.add(name)
        have = values.get(name)
        if have is None or (op == "eq" and have != want) or (op == "starts-with" and not have.startswith(want)):
            return (403, "AccessDenied", "Invalid according to Policy: Policy Condition failed: %s" % name)
    extra = [n for n in form if n not in covered and not n.startswith("x-ignore-")]
    if extra:
        return (403, "AccessDenied", "Invalid according to Policy: Extra input fields: %s" % extra[0])
    return None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("s3-gateway: " + (fmt % args) + "\n")

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        content_type = self.headers.get("Content-Type", "")
        path = urlsplit(self.path).path
        if self.command == "POST" and content_type.startswith("multipart/form-data") and path.count("/") == 1:
            refused = check_post(path[1:], content_type, body)
        else:
            refused = check(self.command, self.headers.get("Host", ""), self.path)
            refused = refused and (403,) + refused
        if refused:
            payload = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code>"
                       "<Message>%s</Message></Error>" % refused[1:]).encode()
            self.send_response(refused[0])
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
            return
        upstream = http.client.HTTPConnection("127.0.0.1", UPSTREAM, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "expect")}
        upstream.request(self.command, self.path, body=body if body or self.command in ("PUT", "POST") else None,
                         headers=headers)
        response = upstream.getresponse()
        data = response.read()
        self.send_response(response.status, response.reason)
        for k, v in response.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        upstream.close()

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = handle_any


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", LISTEN), Handler)
    threading.Timer(600, server.shutdown).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
