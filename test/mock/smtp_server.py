#!/usr/bin/env python3
"""A real SMTP server for the email TAP tests (Debian's python3-aiosmtpd).

Serve:  smtp_server.py --port N --log FILE --control FILE
  Listens on 127.0.0.1:N (the port is given, so a test can stop the server
  and start it again on the same address) and appends every message it
  accepts to FILE as one JSON line {t, mail_from, rcpt_tos, data}.  FILE
  gets a line {"ready": port} once the server listens.
  The control file (JSON, read at every command) makes it refuse on demand:
      {"fail": {"MAIL": [421, 2], "DATA": [451, 1], "RCPT": [550, -1]}, "delay_ms": 0}
  answers the next 2 MAIL commands with 421, the next DATA with 451, every
  RCPT with 550 (-1: until the control changes); each refusal is counted in
  the control's "refused" file (FILE.refused, one line per refusal).
  delay_ms holds each DATA answer that long.  {"fail_every": {"DATA": [451, 10]}}
  answers every 10th DATA command with 451 (a rate limit that never ends; counted
  in FILE.refused too).

Parse:  smtp_server.py --parse FILE
  Prints the recorded messages as a JSON list, each parsed with Python's
  email package (policy.default: RFC 2047 words and base64 decoded):
  {mail_from, rcpt_tos, headers: {name: decoded value}, raw_headers: {name:
  raw value}, content_type, parts: [{content_type, charset, text}]}.
"""
import argparse
import asyncio
import email
import email.policy
import json
import os
import sys
import threading
import time

counts = {}
lock = threading.Lock()


def control(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


class Handler:
    def __init__(self, log, control_path):
        self.log = log
        self.control_path = control_path

    def refusal(self, command):
        """The code to answer command with now, or None."""
        settings = control(self.control_path)
        every = settings.get("fail_every", {}).get(command)
        if every:
            with lock:
                seen = counts.get(("every", command), 0) + 1
                counts[("every", command)] = seen
            if seen % every[1] == 0:
                with open(self.log + ".refused", "a") as f:
                    f.write(f"{command} {every[0]}\n")
                return every[0]
        rule = settings.get("fail", {}).get(command)
        if not rule:
            return None
        code, times = rule
        key = (command, json.dumps(rule))
        with lock:
            used = counts.get(key, 0)
            if times >= 0 and used >= times:
                return None
            counts[key] = used + 1
        with open(self.log + ".refused", "a") as f:
            f.write(f"{command} {code}\n")
        return code

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        code = self.refusal("MAIL")
        if code:
            return f"{code} {'4.3.2 try again later' if code < 500 else '5.7.1 sender refused'}"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        code = self.refusal("RCPT")
        if code:
            return f"{code} {'4.2.1 mailbox busy' if code < 500 else '5.1.1 no such user'}"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        delay = control(self.control_path).get("delay_ms", 0)
        if delay:
            await asyncio.sleep(delay / 1000)
        code = self.refusal("DATA")
        if code:
            return f"{code} {'4.3.0 temporary failure' if code < 500 else '5.6.0 message refused'}"
        entry = {"t": time.time(), "mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                 "data": envelope.original_content.decode("utf-8", "replace")}
        with lock, open(self.log, "a") as f:
            f.write(json.dumps(entry) + "\n")
        return "250 OK: queued"


def serve(args):
    from aiosmtpd.controller import Controller
    controller = Controller(Handler(args.log, args.control), hostname="127.0.0.1", port=args.port,
                            data_size_limit=10 * 1024 * 1024)
    controller.start()
    with open(args.log, "a") as f:
        f.write(json.dumps({"ready": args.port}) + "\n")
    try:
        threading.Event().wait()
    finally:
        controller.stop()


def parse(path):
    out = []
    with open(path) as f:
        for line in f:
            entry = json.loads(line)
            if "data" not in entry:
                continue
            raw = email.message_from_string(entry["data"], policy=email.policy.compat32)
            msg = email.message_from_string(entry["data"], policy=email.policy.default)
            parts = []
            for part in msg.walk():
                if part.is_multipart():
                    continue
                parts.append({"content_type": part.get_content_type(),
                              "charset": part.get_content_charset(),
                              "transfer_encoding": part.get("Content-Transfer-Encoding"),
                              "text": part.get_content()})
            out.append({"mail_from": entry["mail_from"], "rcpt_tos": entry["rcpt_tos"],
                        "headers": {k: str(v) for k, v in msg.items()},
                        "raw_headers": {k: v for k, v in raw.items()},
                        "defects": [str(d) for d in msg.defects],
                        "content_type": msg.get_content_type(), "parts": parts})
    json.dump(out, sys.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int)
    ap.add_argument("--log")
    ap.add_argument("--control")
    ap.add_argument("--parse")
    args = ap.parse_args()
    if args.parse:
        parse(args.parse)
    else:
        serve(args)


if __name__ == "__main__":
    main()
