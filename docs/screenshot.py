"""Make docs/control-room.png and docs/control-room-board.png: the control room over two edges and six
virtual boards (one runs the story into alarm and power-off), an operator's acknowledgement, one board
unplugged. Run: `.venv/bin/python docs/screenshot.py` (needs Mosquitto and chromium; about a minute).
"""

from __future__ import annotations

import http.client
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BOARDS = {"pi-north": [("face-1", "story"), ("face-2", "normal"), ("return-1", "normal")],
          "pi-south": [("heading-3", "normal"), ("drainage-1", "normal"), ("belt-4", "normal")]}
SPEED = 30


def main() -> None:
    from bench.common import mosquitto
    from control.auth import hash_password
    from control.config import parse_config
    from control.server import ControlRoom
    from edge.config import parse_config as edge_config
    from edge.demo.broker import free_port
    from edge.service import Service

    with tempfile.TemporaryDirectory() as tmp, mosquitto(Path(tmp)) as broker:
        procs, services = [], []
        room = ControlRoom(parse_config({"web": {"port": free_port()}, "source": {"host": broker.host,
                           "port": broker.port}, "store": {"path": f"{tmp}/control.sqlite"},
                           "stale": {"board_silent_s": 5}, "shifts": {"timezone": "Europe/Warsaw"}}))
        room.store.add_user("operator", "operator", hash_password("screenshot-pw"), time.time())
        room.start()
        try:
            for edge, boards in BOARDS.items():
                links = []
                for device, scenario in boards:
                    link = Path(tmp) / device
                    procs.append(subprocess.Popen([sys.executable, "-m", "edge.cli", "board", "--scenario", scenario,
                                                   "--link", str(link), "--device-id", device, "--speed", str(SPEED),
                                                   "--seed", str(len(procs)), "--exit-with-parent"], cwd=ROOT,
                                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                    links.append(link)
                while not all(p.is_symlink() for p in links):
                    time.sleep(0.1)
                svc = Service(edge_config({"edge_id": edge, "site": "mine-a", "data_dir": f"{tmp}/{edge}",
                                           "boards": [{"port": str(p)} for p in links],
                                           "mqtt": {"host": broker.host, "port": broker.port, "discovery": False},
                                           "outbox": {"fsync": False}}))
                services.append(svc.start())
            deadline = time.monotonic() + 120
            while not any(a["kind"] == "power_off" for a in room.store.alerts(active=True)):
                if time.monotonic() > deadline:
                    raise SystemExit("no power-off within 120 s")
                time.sleep(0.5)
            procs[4].terminate()  # drainage-1 unplugged: "no data"
            port = room.http.server_address[1]
            cookie = _login(port)
            alarm = next(a for a in room.store.alerts() if a["kind"] == "alarm")
            _ack(port, cookie, alarm["id"], "fan 2 tripped; men withdrawn from face 1, deputy informed")
            time.sleep(7)
            _shoot(room.url, ["", "board/mine-a/face-1?span=1h"],
                   [ROOT / "docs" / "control-room.png", ROOT / "docs" / "control-room-board.png"])
        finally:
            for svc in services:
                svc.stop()
            for p in procs:
                p.terminate()
            room.stop()


def _login(port: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    conn.request("POST", "/login", urllib.parse.urlencode({"user": "operator", "password": "screenshot-pw"}),
                 {"Content-Type": "application/x-www-form-urlencoded"})
    resp = conn.getresponse()
    resp.read()
    return resp.headers["Set-Cookie"].split(";", 1)[0]


def _ack(port: int, cookie: str, alert_id: str, note: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    conn.request("GET", "/", headers={"Cookie": cookie})
    csrf = re.search(r'name="csrf" value="([^"]+)"', conn.getresponse().read().decode()).group(1)
    conn.request("POST", f"/alerts/{alert_id}/ack", urllib.parse.urlencode({"csrf": csrf, "note": note}),
                 {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie})
    conn.getresponse().read()


def _shoot(url: str, paths: list[str], outs: list[Path]) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox", "--disable-gpu",
                              "--disable-background-networking", "--disable-component-update", "--no-first-run"])
        page = b.new_page(viewport={"width": 1400, "height": 900})
        page.goto(url + "login")
        page.fill("input[name=user]", "operator")
        page.fill("input[name=password]", "screenshot-pw")
        page.click("button[type=submit]")
        page.wait_for_selector("#live-status.live-on")
        for path, out in zip(paths, outs, strict=True):
            page.goto(url + path)
            page.wait_for_load_state("load")
            page.screenshot(path=str(out), full_page=True)
            print(f"wrote {out}")
        b.close()


if __name__ == "__main__":
    main()
