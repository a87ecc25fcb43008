#!/usr/bin/env python3
"""Drives headless Chromium through a list of steps, over the DevTools
protocol on --remote-debugging-pipe (no port opened), for the browser tests.

    cdp_steps.py STEPS.json PROFILE_DIR

STEPS.json is a list; each step is an object with one of:

  {"goto": URL}                      load URL (waits for the load event)
  {"click": CSS}                     click the element (a form's button) and
                                     wait for the page it leads to (redirects
                                     followed)
  {"file": CSS, "path": PATH}        set a file input's file
  {"texts": CSS}                     the text of every matching element
  {"attrs": CSS, "name": ATTR}       attribute ATTR of every matching element
  {"url": true}                      the page's URL
  {"screenshot": PNG, "width": W, "height": H, "mobile": BOOL}
                                     a full-page screenshot at that viewport

and prints one JSON line per step: {"step": i, "value": ...} (or "error").
Clicks go through the page's own form submission, as a user's would: the
page needs no script, and the DevTools calls are not subject to its CSP.
"""
import base64
import json
import os
import subprocess
import sys
import time


class Browser:
    def __init__(self, profile):
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()

        def child_fds():
            # via fresh copies: a pipe may already sit on fd 3 or 4, where
            # dup2 onto itself would leave it close-on-exec
            read_end, write_end = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        self.proc = subprocess.Popen(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--hide-scrollbars", "--remote-debugging-pipe", "--user-data-dir=" + profile, "about:blank"],
            close_fds=False, preexec_fn=child_fds,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ, HOME=profile))
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.buffer = b""
        self.next_id = 0
        self.events = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.page("Page.enable")
        self.page("DOM.enable")

    def send(self, method, params, session):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.to_chrome, json.dumps(message).encode() + b"\0")
        return self.next_id

    def receive(self, timeout=60):
        deadline = time.time() + timeout
        while b"\0" not in self.buffer:
            if time.time() > deadline:
                raise TimeoutError("no answer from Chromium")
            chunk = os.read(self.from_chrome, 65536)
            if not chunk:
                raise EOFError("Chromium closed the pipe")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method, params=None, session=None):
        wanted = self.send(method, params, session)
        while True:
            message = self.receive()
            if message.get("id") == wanted:
                if "error" in message:
                    raise RuntimeError("%s: %s" % (method, message["error"].get("message")))
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def page(self, method, params=None):
        return self.call(method, params, self.session)

    def wait_event(self, method, timeout=60):
        deadline = time.time() + timeout
        while True:
            for i, e in enumerate(self.events):
                if e["method"] == method:
                    del self.events[:i + 1]
                    return e
            if time.time() > deadline:
                raise TimeoutError("no " + method)
            self.events.append(self.receive(max(1, deadline - time.time())))

    def evaluate(self, expression):
        answer = self.page("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in answer:
            raise RuntimeError(answer["exceptionDetails"].get("text", "exception"))
        return answer["result"].get("value")

    def run(self, step):
        if "goto" in step:
            self.events.clear()
            self.page("Page.navigate", {"url": step["goto"]})
            self.wait_event("Page.loadEventFired")
            return self.evaluate("location.href")
        if "click" in step:
            self.events.clear()
            found = self.evaluate("(() => { const e = document.querySelector(%s); if (!e) return false;"
                                  " e.click(); return true; })()" % json.dumps(step["click"]))
            if not found:
                raise LookupError("nothing matches " + step["click"])
            self.wait_event("Page.loadEventFired")
            return self.evaluate("location.href")
        if "file" in step:
            root = self.page("DOM.getDocument")["root"]["nodeId"]
            node = self.page("DOM.querySelector", {"nodeId": root, "selector": step["file"]})["nodeId"]
            if not node:
                raise LookupError("nothing matches " + step["file"])
            self.page("DOM.setFileInputFiles", {"nodeId": node, "files": [step["path"]]})
            return True
        if "texts" in step:
            return self.evaluate("[...document.querySelectorAll(%s)].map(e => e.textContent.trim())"
                                 % json.dumps(step["texts"]))
        if "attrs" in step:
            return self.evaluate("[...document.querySelectorAll(%s)].map(e => e.getAttribute(%s))"
                                 % (json.dumps(step["attrs"]), json.dumps(step["name"])))
        if "url" in step:
            return self.evaluate("location.href")
        if "screenshot" in step:
            self.page("Emulation.setDeviceMetricsOverride",
                      {"width": step["width"], "height": step["height"], "deviceScaleFactor": 1,
                       "mobile": bool(step.get("mobile"))})
            shot = self.page("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
            with open(step["screenshot"], "wb") as f:
                f.write(base64.b64decode(shot["data"]))
            return os.path.getsize(step["screenshot"])
        raise ValueError("unknown step %r" % step)

    def close(self):
        try:
            self.call("Browser.close")
        except (EOFError, OSError, RuntimeError, TimeoutError):
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def main():
    with open(sys.argv[1]) as f:
        steps = json.load(f)
    browser = Browser(sys.argv[2])
    try:
        for i, step in enumerate(steps):
            try:
                print(json.dumps({"step": i, "value": browser.run(step)}), flush=True)
            except (LookupError, RuntimeError, TimeoutError, ValueError) as e:
                print(json.dumps({"step": i, "error": str(e)}), flush=True)
    finally:
        browser.close()


if __name__ == "__main__":
    main()
