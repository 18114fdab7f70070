"""Shared test fixtures: private Mosquitto brokers (anonymous, password+ACL, TLS) and serial ptys (openpty, socat).

Used by the edge tests and the end-to-end tests. Every broker listens on a free loopback port (never 1883),
runs from its own config file under tmp_path, and is stopped at teardown. Typical use:

    def test_x(mosquitto):
        broker = mosquitto()                      # anonymous
        broker = mosquitto(auth=True)             # password file + ACL (users in broker.users)
        broker = mosquitto(tls=True)              # TLS with a CA made by openssl (broker.ca_file)
        broker.stop(); broker.start()             # outage: same port, same config
        broker.host, broker.port

    def test_y(socat_pty):
        line = socat_pty()                        # line.device: what the edge opens; line.write(b"...")
        line.unplug(); line.replug()              # the device disappears and comes back under the same name
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edge.demo.broker import free_port  # noqa: F401 - one definition; tests import it from here too
from edge.demo.subscriber import Subscriber as MQTTSubscriber

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
SOCAT = shutil.which("socat")
OPENSSL = shutil.which("openssl")

# ACL of the auth broker: the edge writes under firedamp/, a reader only reads; nobody else gets anything.
DEFAULT_USERS = {"edge": "edge-secret-pw", "reader": "reader-secret-pw"}
DEFAULT_ACL = """\
user edge
topic readwrite firedamp/#
topic readwrite homeassistant/#

user reader
topic read firedamp/#
topic read homeassistant/#
"""


def wait_port(host: str, port: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.01)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout} s")


# ---------------------------------------------------------------------------------------------- certificates

@dataclass
class Certs:
    """A CA, a server certificate for localhost/127.0.0.1 signed by it, a client certificate, and an unrelated CA."""

    dir: Path
    ca_file: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca_file: Path  # a CA that did not sign the server: a client trusting only this must refuse


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True)


def make_certs(d: Path) -> Certs:
    d.mkdir(parents=True, exist_ok=True)
    for name in ("ca", "other-ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN=firedamp test {name}",
                 "-keyout", f"{name}.key", "-out", f"{name}.crt", cwd=d)
    (d / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name, cn in (("server", "localhost"), ("client", "firedamp-edge")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}", "-keyout", f"{name}.key",
                 "-out", f"{name}.csr", cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-days", "2", "-extfile", "san.ext", "-out", f"{name}.crt", cwd=d)
    return Certs(d, d / "ca.crt", d / "ca.key", d / "server.crt", d / "server.key", d / "client.crt",
                 d / "client.key", d / "other-ca.crt")


@pytest.fixture(scope="session")
def certs(tmp_path_factory) -> Certs:
    """Test PKI made with openssl once per session."""
    if not OPENSSL:
        pytest.skip("openssl is not installed")
    return make_certs(tmp_path_factory.mktemp("pki"))


# ---------------------------------------------------------------------------------------------- mosquitto

@dataclass
class Broker:
    """A private Mosquitto: `start()`, `stop()`, `restart()`; same port and config across restarts."""

    dir: Path
    port: int
    host: str = "127.0.0.1"
    tls: bool = False
    auth: bool = False
    users: dict[str, str] = field(default_factory=dict)
    ca_file: Path | None = None
    certs: Certs | None = None
    proc: subprocess.Popen | None = None

    @property
    def config_file(self) -> Path:
        return self.dir / "mosquitto.conf"

    @property
    def log_file(self) -> Path:
        return self.dir / "mosquitto.log"

    def start(self, timeout: float = 5.0) -> Broker:
        if self.proc and self.proc.poll() is None:
            return self
        log = open(self.log_file, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.config_file)], stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            try:
                wait_port(self.host, self.port, timeout=0.2)
                return self
            except TimeoutError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mosquitto did not start:\n{self.log_file.read_text()[-2000:]}") from None

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> Broker:
        self.stop()
        return self.start()

    @property
    def running(self) -> bool:
        return bool(self.proc and self.proc.poll() is None)

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""


def write_broker_config(b: Broker, acl: str, require_client_cert: bool, persistence: bool = False) -> None:
    lines = [
        f"listener {b.port} {b.host}",
        # persistence true: sessions and queued QoS 1 messages survive a restart (a real control room's setup)
        f"persistence {'true' if persistence else 'false'}",
        f"persistence_location {b.dir}/",
        f"pid_file {b.dir / 'mosquitto.pid'}",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
        "connection_messages true",
        "max_queued_messages 100000",
    ]
    if os.geteuid() == 0:
        lines.append("user root")  # otherwise it drops to `mosquitto` and cannot read its files here
    if b.auth:
        pw = b.dir / "passwd"
        pw.write_text("")
        for user, password in b.users.items():
            subprocess.run(["mosquitto_passwd", "-b", str(pw), user, password], check=True, capture_output=True)
        (b.dir / "acl").write_text(acl)
        lines += ["allow_anonymous false", f"password_file {pw}", f"acl_file {b.dir / 'acl'}"]
    else:
        lines.append("allow_anonymous true")
    if b.tls:
        assert b.certs is not None
        lines += [f"cafile {b.certs.ca_file}", f"certfile {b.certs.server_cert}", f"keyfile {b.certs.server_key}",
                  "tls_version tlsv1.2"]
        if require_client_cert:
            lines.append("require_certificate true")
    b.config_file.write_text("\n".join(lines) + "\n")


@pytest.fixture
def mosquitto(tmp_path, request):
    """Factory: `mosquitto(auth=False, tls=False, users=None, acl=None, require_client_cert=False,
    persistence=False, start=True, config=None)`; `config` is a whole config text of your own in which
    `{port}` and `{dir}` are filled in (plus `user root` when root); `users` then go to `{dir}/passwd`."""
    if not MOSQUITTO:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto mosquitto-clients)")
    brokers: list[Broker] = []

    def make(auth: bool = False, tls: bool = False, users: dict[str, str] | None = None, acl: str | None = None,
             require_client_cert: bool = False, persistence: bool = False, start: bool = True,
             config: str | None = None) -> Broker:
        d = tmp_path / f"broker{len(brokers)}"
        d.mkdir()
        cert = request.getfixturevalue("certs") if tls else None
        b = Broker(dir=d, port=free_port(), tls=tls, auth=auth, users=dict(users or DEFAULT_USERS) if auth else {},
                   ca_file=cert.ca_file if cert else None, certs=cert)
        if config is None:
            write_broker_config(b, acl if acl is not None else DEFAULT_ACL, require_client_cert, persistence)
        else:
            if users:
                (d / "passwd").write_text("")
                for user, password in users.items():
                    subprocess.run(["mosquitto_passwd", "-b", str(d / "passwd"), user, password], check=True,
                                   capture_output=True)
            text = config.replace("{port}", str(b.port)).replace("{dir}", str(d))
            text += f"\npid_file {d / 'mosquitto.pid'}\nlog_dest stderr\nconnection_messages true\n"
            b.config_file.write_text(text + ("user root\n" if os.geteuid() == 0 else ""))
        brokers.append(b)
        return b.start() if start else b

    yield make
    for b in brokers:
        b.stop()


# ---------------------------------------------------------------------------------------------- serial ptys

@dataclass
class PtyPair:
    """`os.openpty()`: `device` is the path the edge opens; the test writes to/reads from `master` (an fd)."""

    master: int
    slave: int
    device: str

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def unplug(self) -> None:
        """Close both ends: the edge's read fails at once and the /dev/pts path is gone for good."""
        for fd in (self.slave, self.master):
            try:
                os.close(fd)
            except OSError:
                pass
        self.master = self.slave = -1


@pytest.fixture
def pty_pair():
    """Factory returning PtyPair objects (raw mode, so bytes pass unchanged); closed at teardown."""
    import tty

    pairs: list[PtyPair] = []

    def make() -> PtyPair:
        master, slave = os.openpty()
        tty.setraw(slave)
        p = PtyPair(master, slave, os.ttyname(slave))
        pairs.append(p)
        return p

    yield make
    for p in pairs:
        p.unplug()


class SocatLine:
    """A serial line made by socat: `device` (edge side) and `peer` (test side) are stable symlinks.

    `unplug()` kills socat (the edge sees the port vanish); `replug()` starts it again under the same names.
    `write()` writes to the peer side, opening it on first use after each (re)plug.
    """

    def __init__(self, directory: Path, name: str):
        self.device = str(directory / f"{name}-dev")
        self.peer = str(directory / f"{name}-peer")
        self.proc: subprocess.Popen | None = None
        self._fd = -1

    def replug(self, timeout: float = 5.0) -> SocatLine:
        if self.proc and self.proc.poll() is None:
            return self
        self.proc = subprocess.Popen(
            [SOCAT, f"pty,raw,echo=0,link={self.device}", f"pty,raw,echo=0,link={self.peer}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not (os.path.exists(self.device) and os.path.exists(self.peer)):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("socat did not create its ptys")
            time.sleep(0.005)
        self._fd = os.open(self.peer, os.O_RDWR | os.O_NOCTTY)
        return self

    start = replug

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]

    def read(self, timeout: float = 1.0) -> bytes:
        """Whatever the edge wrote to the board (e.g. console commands) within `timeout`."""
        import select

        out = b""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            r, _, _ = select.select([self._fd], [], [], left)
            if not r:
                break
            out += os.read(self._fd, 4096)
            if out.endswith(b"\n"):
                break
        return out

    def unplug(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
        self.proc = None
        deadline = time.monotonic() + 2
        while os.path.lexists(self.device) and time.monotonic() < deadline:
            time.sleep(0.005)

    stop = unplug


@pytest.fixture
def socat_pty(tmp_path):
    """Factory: `socat_pty(name="board")` -> a started SocatLine with unique link names; stopped at teardown."""
    if not SOCAT:
        pytest.skip("socat is not installed (apt-get install socat)")
    lines: list[SocatLine] = []

    def make(name: str | None = None) -> SocatLine:
        line = SocatLine(tmp_path, name or f"line{len(lines)}")
        lines.append(line)
        return line.replug()

    yield make
    for line in lines:
        line.unplug()


# ---------------------------------------------------------------------------------------------- MQTT subscriber

class Subscriber(MQTTSubscriber):
    """edge.demo.subscriber.Subscriber on a test broker (with its CA when `broker.tls`): `messages` [(topic,
    payload bytes, retain)], `wait(pred)`, `payloads(suffix)`. `persistent=True` uses clean_session=False, so with
    a persistent broker it gets the QoS 1 messages published while it (or the broker) was away.
    """

    def __init__(self, broker: Broker, topics=("#",), username: str | None = None, password: str | None = None,
                 persistent: bool = False, client_id: str | None = None):
        super().__init__(broker.host, broker.port, topics, client_id=client_id or f"test-sub-{os.getpid()}-{id(self)}",
                         username=username, password=password, ca_file=broker.ca_file if broker.tls else None,
                         persistent=persistent, keepalive=10, timeout=5)

    def payloads(self, suffix: str) -> list:
        """JSON payloads of the topics ending with `suffix` (e.g. "/alert"), in arrival order."""
        import json

        with self.cond:
            return [json.loads(p) for t, p, _ in self.messages if t.endswith(suffix)]


@pytest.fixture
def mqtt_subscriber():
    """Factory: `mqtt_subscriber(broker, topics=("#",), username=None, password=None, persistent=False)`."""
    subs: list[Subscriber] = []

    def make(broker: Broker, topics=("#",), **kw) -> Subscriber:
        s = Subscriber(broker, topics, **kw)
        subs.append(s)
        return s

    yield make
    for s in subs:
        s.close()


# ---------------------------------------------------------------------------------------------- edge config

def _toml_value(v) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_edge_toml(path: Path, data: dict) -> Path:
    """A dict shaped like edge.toml (top-level keys, sections as dicts, "boards" as a list) → a TOML file."""
    top = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, (dict, list))]
    out = top[:]
    for k, v in data.items():
        if isinstance(v, dict):
            out += ["", f"[{k}]"] + [f"{kk} = {_toml_value(vv)}" for kk, vv in v.items()]
        elif isinstance(v, list):
            for item in v:
                out += ["", f"[[{k}]]"] + [f"{kk} = {_toml_value(vv)}" for kk, vv in item.items()]
    path.write_text("\n".join(out) + "\n")
    return path


def edge_settings(tmp_path: Path, broker: Broker | None, ports: list[str], **sections) -> dict:
    """edge.toml content for a test: data under tmp_path, MQTT at `broker` (TLS and auth as it has them;
    None: a closed loopback port),
    fast reconnects; `sections` are merged in (e.g. mqtt={"telemetry": False}, policy={...})."""
    data: dict = {"edge_id": "pi-test", "site": "testmine", "data_dir": str(tmp_path / "edge-data"),
                  "log_level": "info", "boards": [{"port": p} for p in ports],
                  "mqtt": {"reconnect_min_s": 1, "reconnect_max_s": 1, "status_interval_s": 1}}
    if broker is None:  # no broker: a free port where nothing listens (never the machine's 1883)
        data["mqtt"].update(host="127.0.0.1", port=free_port())
    else:
        data["mqtt"].update(host="localhost" if broker.tls else broker.host, port=broker.port)
        if broker.auth:
            data["mqtt"].update(username="edge", password=broker.users["edge"])
        if broker.tls:
            data["mqtt"].update(tls=True, ca_file=str(broker.ca_file))
    for name, values in sections.items():
        if isinstance(values, dict):
            data.setdefault(name, {}).update(values)
        else:
            data[name] = values
    return data


@pytest.fixture
def edge_config(tmp_path):
    """Factory: `edge_config(broker, ports, **sections)` → edge.toml content (a dict) for this test."""

    def make(broker: Broker | None, ports: list[str], **sections) -> dict:
        return edge_settings(tmp_path, broker, ports, **sections)

    return make


@pytest.fixture
def edge_toml(tmp_path):
    """Factory: `edge_toml(data, name="edge.toml")` → path of that dict written as TOML."""
    return lambda data, name="edge.toml": write_edge_toml(tmp_path / name, data)


# ---------------------------------------------------------------------------------------------- NATS cluster

@pytest.fixture
def nats_cluster(tmp_path):
    """Factory: `nats_cluster(size=3)` -> a started, ready tests.nats.NatsCluster; stopped at teardown."""
    from tests import nats

    if not nats.NATS_SERVER:
        pytest.skip(nats.MISSING)
    clusters: list = []

    def make(size: int = 3):
        c = nats.NatsCluster(tmp_path / f"nats{len(clusters)}", size)
        clusters.append(c)
        return c.start()

    yield make
    for c in clusters:
        c.stop()


# ---------------------------------------------------------------------------------------------- xdist

# `make test` runs the suite on several workers (pytest-xdist, --dist loadgroup): most tests wait on real
# brokers, boards and browsers, not on the CPU. A file's tests stay on one worker (its module fixtures start
# once); the emulated-Pico files share one worker, so the session's flash images are built once.
_HEAVY_FIRST = ("tests/e2e/", "tests/rp2040/", "tests/reliability/test_soak.py", "tests/bench/")


def pytest_collection_modifyitems(config, items):
    if not getattr(config.option, "numprocesses", None):
        return
    for item in items:
        path = item.nodeid.split("::")[0]
        group = "rp2040" if path.startswith("tests/rp2040/") else path
        item.add_marker(pytest.mark.xdist_group(group))
    # the slowest groups first, so no worker is left with a long file at the end
    items.sort(key=lambda item: not item.nodeid.startswith(_HEAVY_FIRST))
