#!/usr/bin/env python3
"""Re-signs presigned URLs made by benefits.presign_s3_url with botocore.

Reads JSON lines on stdin, one case each:
  {"endpoint", "region", "bucket", "path_style", "access_key_id",
   "secret_access_key", "method", "key", "expires", "params", "url"}
where "url" is what the extension produced.  For every case botocore's
S3SigV4QueryAuth signs the same request at the same instant (its clock
patched to the URL's X-Amz-Date); the case passes when the URL's path is the
key URI-encoded as S3 expects and the X-Amz-Signature values are equal.
A case with "ruleset": true (signed with benefits.s3_url_style = 'auto')
must also address the bucket as AWS's S3 endpoint rules do (botocore's
EndpointProvider, ForcePathStyle false): in the host or in the path.
Prints TAP lines ("ok N - ..." / "not ok N - ...") and exits 1 on a mismatch.
"""
import contextlib
import datetime
import json
import sys
import types
from urllib.parse import parse_qsl, quote, urlsplit

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def expected_base(case):
    """The object URL, built independently of the extension."""
    endpoint = case["endpoint"] or (
        "https://s3.amazonaws.com" if case["region"] == "us-east-1"
        else "https://s3.%s.amazonaws.com" % case["region"])
    parts = urlsplit(endpoint)
    prefix = parts.path.rstrip("/")
    key = quote(case["key"], safe="/~")
    if case["path_style"]:
        return "%s://%s%s/%s/%s" % (parts.scheme, parts.netloc, prefix, case["bucket"], key)
    return "%s://%s.%s%s/%s" % (parts.scheme, case["bucket"], parts.netloc, prefix, key)


@contextlib.contextmanager
def fixed_clock(instant):
    """Stops botocore's clock at INSTANT (aware, UTC), for the signer
    (botocore.auth) and the presigned POST's expiration (botocore.signers).
    Newer botocore reads botocore.compat.get_current_datetime through those
    modules, older (Debian's) calls datetime.datetime.utcnow() on their
    datetime."""
    import botocore.signers

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
    saved = []
    for module in (botocore.auth, botocore.signers):
        name = "get_current_datetime" if hasattr(module, "get_current_datetime") else "datetime"
        saved.append((module, name, getattr(module, name)))
        setattr(module, name, (lambda *a, **k: instant) if name == "get_current_datetime" else shim)
    try:
        yield
    finally:
        for module, name, value in saved:
            setattr(module, name, value)


def ruleset_path_style(case):
    """Whether AWS's endpoint rules put the bucket in the path (None when
    this botocore has no endpoint rules)."""
    try:
        import botocore.session
        from botocore.endpoint_provider import EndpointProvider
    except ImportError:
        return None
    session = botocore.session.get_session()
    loader = session.get_component("data_loader")
    provider = EndpointProvider(loader.load_service_model("s3", "endpoint-rule-set-1"),
                                loader.load_data("partitions"))
    params = {"Bucket": case["bucket"], "Region": case["region"], "ForcePathStyle": False,
              "UseFIPS": False, "UseDualStack": False, "Accelerate": False}
    if case["endpoint"]:
        params["Endpoint"] = case["endpoint"]
    url = urlsplit(provider.resolve_endpoint(**params).url)
    return not url.hostname.startswith(case["bucket"] + ".")


def botocore_signature(case, signed_at):
    request = AWSRequest(method=case["method"], url=expected_base(case),
                         params=dict(case["params"]))
    credentials = Credentials(case["access_key_id"], case["secret_access_key"])
    signer = botocore.auth.S3SigV4QueryAuth(credentials, "s3", case["region"],
                                            expires=case["expires"])
    with fixed_clock(signed_at):
        signer.add_auth(request)
    query = dict(parse_qsl(urlsplit(request.url).query, keep_blank_values=True))
    return query["X-Amz-Signature"]


def main():
    failures = 0
    n = 0
    for line in sys.stdin:
        if not line.strip():
            continue
        case = json.loads(line)
        n += 1
        ours = urlsplit(case["url"])
        query = dict(parse_qsl(ours.query, keep_blank_values=True))
        signed_at = datetime.datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc)
        theirs = botocore_signature(case, signed_at)
        base_ok = case["url"].split("?", 1)[0] == expected_base(case)
        sig_ok = query.get("X-Amz-Signature") == theirs
        if case.get("ruleset"):
            rules = ruleset_path_style(case)
            if rules is not None and rules != case["path_style"]:
                base_ok = False
                print("# AWS's endpoint rules put %s in the %s" % (case["bucket"], "path" if rules else "host"))
        label = "%s %r %s" % (case["method"], case["key"], json.dumps(case["params"], ensure_ascii=False))
        if case.get("ruleset"):
            label += " at %s (bucket %s)" % (case["endpoint"] or "AWS", case["bucket"])
        if base_ok and sig_ok:
            print("ok %d - botocore agrees: %s" % (n, label))
        else:
            failures += 1
            print("not ok %d - %s" % (n, label))
            print("# ours:     %s" % case["url"])
            print("# expected base %s, botocore signature %s" % (expected_base(case), theirs))
    print("1..%d" % n)
    return 1 if failures or n == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
