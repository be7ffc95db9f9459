#!/usr/bin/env python3
"""Test support: drives headless Chromium (Debian's chromium) over the DevTools protocol so a
test can load a page, wait until its scripts have produced what it expects, read the rendered
DOM and keep a screenshot. Used through tests/browser.[ch]; any test that serves pages (the
dashboard, TLS, TURN) can reuse it.

It talks to the browser through --remote-debugging-pipe (commands on fd 3, answers on fd 4,
each message JSON ended by a NUL byte), so no port is opened. Commands come on stdin, one JSON
object per line, and each gets one JSON line on stdout:
  {"cmd":"goto","url":U}                       load U and wait for its load event
  {"cmd":"wait","expr":E,"timeout_ms":T}       poll the JavaScript expression E until truthy
  {"cmd":"eval","expr":E}                      the value of E (JSON-serialisable)
  {"cmd":"screenshot","path":P}                a PNG of the viewport
  {"cmd":"viewport","width":W,"height":H,"mobile":B}
Answers are {"ok":true,"value":V} or {"ok":false,"error":"..."}. The browser runs with a fresh
profile in a temporary folder, no network beyond what the page loads, and ends with stdin.
"""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

CHROMIUM = os.environ.get("DIG_CHROMIUM", "/usr/bin/chromium")


class Browser:
    def __init__(self):
        self.profile = tempfile.mkdtemp(prefix="dig-chromium-")
        to_r, to_w = os.pipe()      # our commands -> browser fd 3
        from_r, from_w = os.pipe()  # browser fd 4 -> our answers

        def child_fds():
            # Copy first: a pipe end may already be 3 or 4, and dup2 onto itself would leave it
            # close-on-exec.
            r, w = os.dup(to_r), os.dup(from_w)
            os.dup2(r, 3)
            os.dup2(w, 4)

        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions",
             "--remote-debugging-pipe", "--user-data-dir=" + self.profile,
             "--window-size=1280,900", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            close_fds=False, preexec_fn=child_fds)   # closing would undo the dup2 onto 3 and 4
        os.close(to_r)
        os.close(from_w)
        self.out = os.fdopen(to_w, "wb", buffering=0)
        self.inp = os.fdopen(from_r, "rb", buffering=0)
        self.buf = b""
        self.next_id = 0
        self.events = []
        targets = self.call("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.call("Target.attachToTarget",
                                 {"targetId": page["targetId"], "flatten": True})["sessionId"]
        self.call("Page.enable", session=True)
        self.call("Runtime.enable", session=True)

    def _read_message(self, deadline):
        while b"\0" not in self.buf:
            if time.monotonic() > deadline:
                raise TimeoutError("the browser did not answer")
            chunk = self.inp.read(65536)
            if not chunk:
                raise EOFError("the browser exited")
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method, params=None, session=False, timeout=30.0):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        self.out.write(json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(method + ": " + reply["error"].get("message", "error"))
                return reply.get("result", {})
            self.events.append(reply)

    def evaluate(self, expr):
        r = self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True,
                                           "awaitPromise": True}, session=True)
        if "exceptionDetails" in r:
            raise RuntimeError("exception in " + expr + ": " +
                               r["exceptionDetails"].get("exception", {}).get("description", ""))
        return r["result"].get("value")

    def goto(self, url, timeout=30.0):
        self.events = [e for e in self.events if e.get("method") != "Page.loadEventFired"]
        self.call("Page.navigate", {"url": url}, session=True)
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            self.events.append(self._read_message(deadline))
        return url

    def wait(self, expr, timeout_ms):
        deadline = time.monotonic() + timeout_ms / 1000.0
        while True:
            try:
                if self.evaluate(expr):
                    return True
            except RuntimeError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("still false after %d ms: %s" % (timeout_ms, expr))
            time.sleep(0.1)

    def screenshot(self, path):
        data = self.call("Page.captureScreenshot", {"format": "png"}, session=True)["data"]
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        return path

    def viewport(self, width, height, mobile):
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
                  session=True)
        return True

    def close(self):
        try:
            self.call("Browser.close", timeout=5.0)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


def main():
    if not os.access(CHROMIUM, os.X_OK):
        print(json.dumps({"ok": False, "error": "chromium not installed"}), flush=True)
        return 3
    try:
        b = Browser()
    except Exception as e:  # the browser could not start: say why, once
        print(json.dumps({"ok": False, "error": "chromium did not start: %s" % e}), flush=True)
        return 1
    print(json.dumps({"ok": True, "value": "ready"}), flush=True)
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                c = json.loads(line)
                cmd = c.get("cmd")
                if cmd == "goto":
                    value = b.goto(c["url"])
                elif cmd == "wait":
                    value = b.wait(c["expr"], int(c.get("timeout_ms", 10000)))
                elif cmd == "eval":
                    value = b.evaluate(c["expr"])
                elif cmd == "screenshot":
                    value = b.screenshot(c["path"])
                elif cmd == "viewport":
                    value = b.viewport(int(c["width"]), int(c["height"]), bool(c.get("mobile")))
                else:
                    raise ValueError("unknown command %r" % cmd)
                answer = {"ok": True, "value": value}
            except Exception as e:
                answer = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
            print(json.dumps(answer), flush=True)
    finally:
        b.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
