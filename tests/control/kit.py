"""The control room under test: started in-process on a free port against a real broker, with a cookie-keeping
HTTP client and a publisher of exactly what edges publish (built by the edge's own payload code)."""

from __future__ import annotations

import http.client
import json
import os
import re
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt

from control.auth import hash_password
from control.config import parse_config
from control.server import ControlRoom
from edge import payloads
from edge.demo.broker import free_port
from edge.frames import Decoder, Reading, format_reading
from edge.policy import Alert
from tests.helpers import wait_until

USERS = {"olga": ("operator", "olga-operator-pw"), "victor": ("viewer", "victor-viewer-pw"),
         "omar": ("operator", "omar-operator-pw")}


def start(tmp_path: Path, broker, **sections) -> ControlRoom:
    """A started ControlRoom on a free port, SQLite under tmp_path, the users of USERS; `sections` merge into
    control.toml's (e.g. stale={"board_silent_s": 2})."""
    data: dict = {"web": {"port": free_port()}, "source": {"host": broker.host, "port": broker.port,
                                                           "client_id": f"cr-{os.getpid()}-{free_port()}"},
                  "store": {"path": str(tmp_path / "control.sqlite"), "fsync": False}}
    for name, values in sections.items():
        data.setdefault(name, {}).update(values) if isinstance(values, dict) else data.__setitem__(name, values)
    room = ControlRoom(parse_config(data))
    for name, (role, password) in USERS.items():
        room.store.add_user(name, role, hash_password(password), time.time())
    room.start()
    deadline = time.monotonic() + 60  # a JetStream source waits for the cluster's MQTT stream; a busy machine
    while not room.source.connected:
        assert time.monotonic() < deadline, "the control room did not connect to the broker"
        time.sleep(0.02)
    time.sleep(0.1)  # the SUBACK
    return room


@dataclass
class Web:
    """A browser-like HTTP client: keeps the session cookie, follows nothing by itself."""

    port: int
    cookies: dict[str, str] = field(default_factory=dict)

    def request(self, method: str, path: str, form: dict | None = None, headers: dict | None = None,
                raw_body: bytes | None = None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        hdrs = dict(headers or {})
        if self.cookies:
            hdrs["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = raw_body
        if form is not None:
            body = urllib.parse.urlencode(form).encode()
            hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded")
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        for value in resp.headers.get_all("Set-Cookie") or []:
            name, _, rest = value.partition("=")
            token = rest.split(";", 1)[0]
            if token:
                self.cookies[name] = token
            else:
                self.cookies.pop(name, None)
        conn.close()
        resp.text = data.decode("utf-8", "replace")
        return resp

    def get(self, path: str, **kw):
        return self.request("GET", path, **kw)

    def post(self, path: str, form: dict, **kw):
        return self.request("POST", path, form=form, **kw)

    def json(self, path: str):
        r = self.get(path)
        assert r.status == 200, (path, r.status, r.text[:300])
        return json.loads(r.text)

    def login(self, user: str, password: str | None = None):
        r = self.post("/login", {"user": user, "password": password or USERS[user][1], "next": "/"})
        assert r.status == 303, (r.status, r.text[:300])
        return self

    def csrf(self, path: str = "/") -> str:
        m = re.search(r'name="csrf" value="([^"]+)"', self.get(path).text)
        assert m, "no CSRF token on the page"
        return m.group(1)


class EdgeSim:
    """Publishes what an edge publishes, built by the edge's own code (edge.payloads, policy.Alert)."""

    def __init__(self, broker, site: str = "mine-a", edge: str = "pi-01", prefix: str = "firedamp"):
        self.site, self.edge, self.prefix = site, edge, prefix
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"edgesim-{edge}-{id(self)}")
        self.client.will_set(f"{prefix}/{site}/{edge}/status", b"offline", qos=1, retain=True)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.seq: dict[str, int] = {}
        self.publish(f"{prefix}/{site}/{edge}/status", b"online", retain=True)

    def publish(self, topic: str, payload, retain: bool = False) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.client.publish(topic, data, qos=1, retain=retain).wait_for_publish(5)

    def reading(self, device: str, ch4: float = 0.3, state: str = "NORMAL", relay: int = 1, flow: float = 900.0,
                faults: int = 0, flags: int = 0, t: float | None = None):
        seq = self.seq[device] = self.seq.get(device, 0) + 1
        sent = Reading(device, seq, seq * 1000, ch4, "VOL", flow, "L/min", seq * 15.0, state, relay, faults, flags)
        r = Decoder().decode(format_reading(sent))  # exactly what the edge would have parsed off the wire
        assert r == sent or r is None, (r, sent)  # None: an id no edge accepts, published as a hostile client would
        return sent, (time.time() if t is None else t)

    def telemetry(self, device: str, **kw) -> None:
        r, t = self.reading(device, **kw)
        self.publish(f"{self.prefix}/{self.site}/{device}/telemetry", payloads.telemetry(r, t, None))

    def state(self, device: str, link_up: bool = True, active: list[str] | None = None, aux=None, **kw) -> None:
        """`aux`: the board's last A frame and its arrival time (edge.frames.Aux, t), as the edge carries it."""
        r, t = self.reading(device, **kw)
        self.publish(f"{self.prefix}/{self.site}/{device}/state",
                     payloads.state(device, self.site, self.edge, t, r, link_up, active or [], aux), retain=True)

    def alert(self, device: str, kind: str = "alarm", state: str = "raised", message: str = "",
              severity: str = "critical", alert_id: str | None = None, t: float | None = None, **details) -> Alert:
        import uuid

        r, now = self.reading(device)
        a = Alert(alert_id or str(uuid.uuid4()), self.site, self.edge, device, kind, severity, state,
                  now if t is None else t, message or f"{device}: {kind} {state}", kind in ("anomaly", "forecast"),
                  None, dict(details))
        self.publish(f"{self.prefix}/{self.site}/{device}/alert", a.to_json())
        return a

    def offline(self) -> None:
        self.publish(f"{self.prefix}/{self.site}/{self.edge}/status", b"offline", retain=True)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def wait(pred, timeout: float = 10.0, interval: float = 0.05, what: str = "the condition"):
    """tests.helpers.wait_until with this kit's defaults: pred()'s first true value, or the test fails."""
    return wait_until(pred, timeout, what, interval)
