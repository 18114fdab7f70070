"""The demo's control room: `firedamp control-room` as its own process on the demo's broker, with two users.

Started as a program (not imported: the edge never imports the control room), exactly as a site runs it:
a control.toml in the run folder, `adduser` for an operator and a viewer with fresh random passwords, then
the server. The passwords are printed with the address and kept in `<run dir>/control-room-users.txt`.
"""

from __future__ import annotations

import http.client
import json
import secrets
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

from edge.demo.broker import die_with_parent, free_port
from edge.errors import FiredampError

ROOT = Path(__file__).resolve().parents[2]


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class ControlRoomProcess:
    def __init__(self, run_dir: Path, broker_host: str, broker_port: int, protocol: str, site_zone: str = "UTC",
                 web_port: int = 8080, silent_s: float = 10.0):
        self.run_dir = run_dir
        self.port = web_port if _free(web_port) else free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = run_dir / "control-room.log"
        self.config = run_dir / "control.toml"
        self.config.write_text(f"""# written by `firedamp demo`: `firedamp control-room --config {self.config}` serves the same page
default_profile = "coal_face"
[web]
host = "127.0.0.1"
port = {self.port}
[source]
host = "{broker_host}"
port = {broker_port}
protocol = "{protocol}"
client_id = "firedamp-demo-control-room"
[store]
path = "{(run_dir / 'control.sqlite').resolve()}"
fsync = false
[stale]
board_silent_s = {silent_s}
[shifts]
timezone = "{site_zone}"
""")
        self.users = {"operator": secrets.token_urlsafe(9), "viewer": secrets.token_urlsafe(9)}
        for name, password in self.users.items():
            done = subprocess.run([sys.executable, "-m", "edge.cli", "control-room", "adduser", name, "--role", name,
                                   "--password-stdin", "--config", str(self.config)], input=password + "\n",
                                  capture_output=True, text=True, cwd=ROOT, timeout=60)
            if done.returncode != 0:
                raise FiredampError(f"the demo could not add control-room user {name}: {done.stderr.strip()}")
        (run_dir / "control-room-users.txt").write_text(
            "".join(f"{name} {password}\n" for name, password in self.users.items()))
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "edge.cli", "control-room", "--config",
                                          str(self.config)], stdout=log, stderr=log, cwd=ROOT, start_new_session=True,
                                         preexec_fn=die_with_parent)
        deadline = time.monotonic() + 30
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise FiredampError(f"the control room did not start; see {self.log}:\n"
                                    + self.log.read_text()[-1500:])
            time.sleep(0.1)

    def _answers(self) -> bool:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
            conn.request("GET", "/-/health")
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except OSError:
            return False

    def summary(self) -> dict | None:
        """The page's own figures (/index.json), read as the viewer: what the control room stored."""
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            body = urllib.parse.urlencode({"user": "viewer", "password": self.users["viewer"]})
            conn.request("POST", "/login", body, {"Content-Type": "application/x-www-form-urlencoded"})
            resp = conn.getresponse()
            resp.read()
            cookie = (resp.headers.get("Set-Cookie") or "").split(";", 1)[0]
            conn.request("GET", "/alerts.json?span=1d", headers={"Cookie": cookie})
            alerts = json.loads(conn.getresponse().read())["alerts"]
            conn.close()
        except (OSError, ValueError, KeyError):
            return None
        own = sorted({a["kind"] for a in alerts if a["source"] == "control-room"})
        return {"from_edges": sum(a["source"] == "edge" for a in alerts), "own": len(alerts) - sum(
            a["source"] == "edge" for a in alerts), "own_kinds": own}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
