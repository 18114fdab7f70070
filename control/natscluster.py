"""A private NATS cluster on this machine: N nats-server processes on loopback, JetStream and MQTT on every node.

Used by `firedamp fleet` (control/fleet.py) and by the test fixture `nats_cluster` (tests/nats.py). Debian's
nats-server 2.9.10 (`apt-get install nats-server`). Every port is a free loopback port; each node runs from its
own config file under `base`. Typical use:

    c = NatsCluster(base).start()       # started, routes up, a meta leader, MQTT streams made, probed
    c.servers                           # ["nats://127.0.0.1:P1", ...] for nats-py
    c.nodes[0].host, c.nodes[0].port    # an MQTT endpoint (MQTT 3.1.1 only) - what paho and edges use
    c.nodes[1].kill()                   # SIGKILL: no shutdown, no goodbye to the routes
    c.nodes[1].start(); c.wait_ready()  # the same node (same store dir) back, caught up

Readiness is waited for, never slept for: routes to both peers, a JetStream meta leader, then on every node an
MQTT client whose SUBACK arrived receives its own QoS 1 probe (TOOLCHAIN.md: the internal MQTT streams take ~5 s
after the cluster forms, and a client subscribing before then may get nothing).

`detached=True` (the fleet): each node in a session of its own (a Ctrl-C reaches the fleet, which stops the
nodes last) that Linux stops when its parent dies, even by SIGKILL.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from edge.demo.broker import die_with_parent

NATS_SERVER = shutil.which("nats-server") or ("/usr/sbin/nats-server" if os.path.exists("/usr/sbin/nats-server")
                                              else None)
MISSING = "nats-server is not installed (sudo apt-get install nats-server)"


def _free_ports(n: int) -> list[int]:
    """n distinct free loopback ports (never 1883). All n sockets are held bound while the ports are picked:
    one at a time, the kernel may hand the same port out twice, and a cluster of 12 ports then had two nodes
    bind one ("address already in use": seen in a test run)."""
    import socket

    held: list[socket.socket] = []
    try:
        while len(held) < n:
            s = socket.socket()
            held.append(s)
            s.bind(("127.0.0.1", 0))
            if s.getsockname()[1] == 1883:  # kept bound (so not picked again) but not used
                n += 1
        return [p for p in (s.getsockname()[1] for s in held) if p != 1883]
    finally:
        for s in held:
            s.close()


@dataclass
class NatsNode:
    """One nats-server process; `port` is its MQTT listener (what an edge connects to), `client_port` NATS."""

    name: str
    dir: Path
    client_port: int
    cluster_port: int
    port: int  # MQTT
    http_port: int  # monitoring: /varz /routez /jsz /healthz
    routes: list[str] = field(default_factory=list)
    host: str = "127.0.0.1"
    detached: bool = False
    max_file_store: str = ""  # e.g. "3MB": JetStream's file storage limit on this node (default: 75 % of the disk)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.client_port}"

    @property
    def log_file(self) -> Path:
        return self.dir / "nats.log"

    def write_config(self) -> Path:
        store = self.dir / "jetstream"
        store.mkdir(parents=True, exist_ok=True)
        conf = self.dir / "nats.conf"
        conf.write_text("\n".join([
            f"server_name: {self.name}",
            f"listen: {self.host}:{self.client_port}",
            f"http: {self.host}:{self.http_port}",
            f'jetstream {{ store_dir: "{store}"' + (f"; max_file_store: {self.max_file_store}"
                                                      if self.max_file_store else "") + " }",
            f"cluster {{ name: fd; listen: {self.host}:{self.cluster_port}; "
            f"routes: [{', '.join(self.routes)}] }}",
            # the MQTT layer's own streams ($MQTT_msgs holds every QoS 1 publish until it is delivered) on
            # all three nodes, said outright: left to itself, a node that creates them while the cluster is
            # still forming may make them with fewer replicas, and a PUBACK then means less
            f"mqtt {{ listen: {self.host}:{self.port}; stream_replicas: 3 }}",
            "",
        ]))
        return conf

    def start(self, timeout: float = 10.0) -> NatsNode:
        if self.running:
            return self
        conf = self.write_config()
        with open(self.log_file, "ab") as log:
            if not NATS_SERVER:
                raise RuntimeError(MISSING)
            extra = {"start_new_session": True, "preexec_fn": die_with_parent} if self.detached else {}
            self.proc = subprocess.Popen([NATS_SERVER, "-c", str(conf)], stdout=log, stderr=log, **extra)
        deadline = time.monotonic() + timeout
        while not self._http("/varz"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nats-server {self.name} did not start:\n{self.log()[-3000:]}")
            time.sleep(0.02)
        return self

    def kill(self) -> None:
        """SIGKILL: the process dies at once, nothing flushed, no route closed cleanly."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def freeze(self) -> None:
        """SIGSTOP: alive to the kernel (its sockets stay open), deaf to everyone - a hung node."""
        if self.proc:
            self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        if self.proc:
            self.proc.send_signal(signal.SIGCONT)

    @property
    def running(self) -> bool:
        return bool(self.proc and self.proc.poll() is None)

    def _http(self, path: str) -> dict | None:
        try:
            with urllib.request.urlopen(f"http://{self.host}:{self.http_port}{path}", timeout=1) as r:
                return json.loads(r.read())
        except (OSError, ValueError):
            return None

    def monitor(self, path: str) -> dict:
        """A monitoring endpoint's JSON ({} when the node does not answer)."""
        return self._http(path) or {}

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""


class NatsCluster:
    def __init__(self, base: Path, size: int = 3, detached: bool = False):
        free = _free_ports(4 * size)
        ports = [tuple(free[4 * i:4 * i + 4]) for i in range(size)]
        routes = [f"nats://127.0.0.1:{p[1]}" for p in ports]
        self.nodes = [NatsNode(f"n{i + 1}", base / f"n{i + 1}", *p, routes=routes, detached=detached)
                      for i, p in enumerate(ports)]

    @property
    def servers(self) -> list[str]:
        return [n.url for n in self.nodes]

    def start(self) -> NatsCluster:
        for n in self.nodes:
            n.start()
        return self.wait_ready()

    def stop(self) -> None:
        for n in self.nodes:
            n.thaw()
            n.stop()

    def up(self) -> list[NatsNode]:
        return [n for n in self.nodes if n.running]

    def wait_ready(self, timeout: float = 60.0, mqtt: bool = True) -> NatsCluster:
        """Every running node routed to every other running node, one meta leader, and (mqtt) an MQTT round
        trip through each running node. (Not /healthz: after a restart it reports the MQTT layer's idle internal
        consumers as "not current" for minutes.)"""
        deadline = time.monotonic() + timeout
        up = self.up()

        def formed() -> bool:
            for n in up:
                routez = n.monitor("/routez")
                peers = {r.get("remote_id") for r in routez.get("routes", [])}
                if len(peers) < len(up) - 1:
                    return False
                meta = n.monitor("/jsz").get("meta_cluster") or {}
                if not meta.get("leader"):
                    return False
            return True

        while not formed():
            if time.monotonic() > deadline:
                raise TimeoutError("NATS cluster did not form:\n" + "\n".join(f"--- {n.name}\n{n.log()[-1500:]}"
                                                                                for n in self.nodes))
            time.sleep(0.1)
        if mqtt:
            for n in up:
                mqtt_probe(n, deadline)
        return self

    def meta_leader(self) -> str:
        for n in self.up():
            leader = (n.monitor("/jsz").get("meta_cluster") or {}).get("leader")
            if leader:
                return leader
        return ""

    def stream_info(self, stream: str) -> dict:
        """The stream's cluster view, as its leader sees it ({'leader': 'n2', 'replicas': [...]}) from any node that knows it."""
        seen = {}
        for n in self.up():
            jsz = n.monitor("/jsz?streams=true")
            for acc in jsz.get("account_details") or []:
                for s in acc.get("stream_detail") or []:
                    if s.get("name") == stream and (s.get("cluster") or {}).get("leader"):
                        if s["cluster"]["leader"] == n.name:
                            return s  # only the leader's view of its followers is current
                        seen = seen or s
        return seen

    def wait_stream_current(self, stream: str, timeout: float = 30.0) -> dict:
        """Until the stream has a leader and every replica on a running node is current; its info."""
        deadline = time.monotonic() + timeout
        names = {n.name for n in self.up()}
        while True:
            info = self.stream_info(stream)
            cl = info.get("cluster") or {}
            peers = [r for r in cl.get("replicas") or [] if r.get("name") in names]
            if cl.get("leader") in names and len(peers) == len(names) - 1 and all(r.get("current") for r in peers):
                return info
            if time.monotonic() > deadline:
                raise TimeoutError(f"stream {stream} not current on {sorted(names)}: {cl}")
            time.sleep(0.1)

    def node(self, name: str) -> NatsNode:
        return next(n for n in self.nodes if n.name == name)


def mqtt_probe(node: NatsNode, deadline: float) -> None:
    """Subscribe (QoS 1, wait for the SUBACK), publish one QoS 1 probe, wait until it comes back; retried with a
    fresh client until `deadline` (the node's MQTT streams may still be being made)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    topic = f"probe/{node.name}/{time.monotonic_ns()}"
    last = "no attempt"
    while time.monotonic() < deadline:
        got, subacked = threading.Event(), threading.Event()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{node.name}-{time.monotonic_ns()}",
                        protocol=mqtt.MQTTv311)
        c.on_subscribe = lambda *a, ev=subacked: ev.set()
        c.on_message = lambda cl, u, msg, ev=got: ev.set() if msg.topic == topic else None
        try:
            c.connect(node.host, node.port, keepalive=10)
            c.loop_start()
            c.subscribe(topic, qos=1)
            if subacked.wait(max(0.1, min(5, deadline - time.monotonic()))):
                c.publish(topic, b"probe", qos=1)
                if got.wait(max(0.1, min(5, deadline - time.monotonic()))):
                    return
                last = "probe not received"
            else:
                last = "no SUBACK"
        except OSError as exc:
            last = str(exc)
        finally:
            c.loop_stop()
            c.disconnect()
        time.sleep(0.2)
    raise TimeoutError(f"MQTT on {node.name} not ready: {last}\n{node.log()[-2000:]}")
