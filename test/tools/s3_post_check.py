#!/usr/bin/env python3
"""Checks browser upload forms made by benefits.file_upload_form (and
s3_presigned_post) against botocore's generate_presigned_post.

Reads JSON lines on stdin, one case each:
  {"endpoint", "region", "bucket", "path_style", "access_key_id",
   "secret_access_key", "key", "size", "redirect_url", "expires", "form"}
where "form" is what the extension produced ({url, fields}).  For every case
botocore builds the form for the same bucket, key and redirect with the
conditions the extension promises (success_action_redirect, and
content-length-range fixed to the size), its clock stopped at the form's
x-amz-date; the case passes when the URL and every field (the policy and its
signature included) are equal.  Prints TAP lines and exits 1 on a mismatch.
"""
import datetime
import json
import os
import sys

import botocore.session
from botocore.config import Config

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from s3_botocore_check import fixed_clock  # noqa: E402


def botocore_form(case, signed_at):
    client = botocore.session.get_session().create_client(
        "s3", region_name=case["region"], endpoint_url=case["endpoint"] or None,
        aws_access_key_id=case["access_key_id"], aws_secret_access_key=case["secret_access_key"],
        config=Config(signature_version="s3v4",
                      s3={"addressing_style": "path" if case["path_style"] else "virtual"}))
    with fixed_clock(signed_at):
        return client.generate_presigned_post(
            case["bucket"], case["key"],
            Fields={"success_action_redirect": case["redirect_url"]},
            Conditions=[{"success_action_redirect": case["redirect_url"]},
                        ["content-length-range", case["size"], case["size"]]],
            ExpiresIn=case["expires"])


def main():
    failures = n = 0
    for line in sys.stdin:
        if not line.strip():
            continue
        case = json.loads(line)
        n += 1
        ours = case["form"]
        signed_at = datetime.datetime.strptime(ours["fields"]["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc)
        theirs = botocore_form(case, signed_at)
        label = "%r (%d bytes) at %s" % (case["key"], case["size"], case["endpoint"] or "AWS")
        if ours["url"].rstrip("/") == theirs["url"].rstrip("/") and ours["fields"] == theirs["fields"]:
            print("ok %d - botocore builds the same form: %s" % (n, label))
        else:
            failures += 1
            print("not ok %d - %s" % (n, label))
            print("# ours:     %s" % json.dumps(ours, ensure_ascii=False))
            print("# botocore: %s" % json.dumps(theirs, ensure_ascii=False))
    print("1..%d" % n)
    return 1 if failures or n == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
