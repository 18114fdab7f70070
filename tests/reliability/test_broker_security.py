"""The shipped broker config (deploy/mosquitto: TLS + passwords + per-site ACL) attacked on a real Mosquitto.

tests/edge/test_deploy.py shows the edge of mine-a delivering and the same user refused for mine-b. Here, with
raw MQTT 5 clients: every topic an edge might try (its own site, another site, another site's Home Assistant
discovery node, outside firedamp/) is either delivered or refused as the ACL says, read-only users cannot
write, anonymous and wrong-password clients are refused, a plaintext client gets nothing through the TLS
port, a client that does not trust the broker's CA refuses it, and `firedamp run` refuses to start when the
config requires TLS but has it off.
"""

import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.helpers import shipped_broker_config

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy" / "mosquitto"
USERS = {"edge-pi-01": "pw-edge-1", "edge-pi-02": "pw-edge-2", "control-room": "pw-room", "homeassistant": "pw-ha"}


@pytest.fixture
def shipped_broker(tmp_path, certs, mosquitto):
    conf = shipped_broker_config(tmp_path, certs)
    acl_users = [ln.split()[1] for ln in (DEPLOY / "firedamp.acl").read_text().splitlines() if ln.startswith("user ")]
    assert sorted(acl_users) == sorted(USERS)
    broker = mosquitto(config=conf, users=USERS)
    broker.tls, broker.ca_file = True, certs.ca_file
    return broker


class Client:
    """A raw MQTT 5 client over TLS: `connect()` returns the CONNACK reason; `publish()` the PUBACK reason."""

    def __init__(self, broker, user=None, ca=None, tls=True):
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"attack-{user}-{time.monotonic_ns()}",
                             protocol=mqtt.MQTTv5)
        if user:
            self.c.username_pw_set(user, USERS.get(user, "wrong-password"))
        if tls:
            self.c.tls_set(ca_certs=str(ca or broker.ca_file), cert_reqs=ssl.CERT_REQUIRED)
        self.broker = broker
        self.connack = threading.Event()
        self.reason = None
        self.acks: dict[int, str] = {}
        self.got: list[str] = []
        self.c.on_connect = self._on_connect
        self.c.on_publish = lambda c, u, mid, rc, props: self.acks.__setitem__(mid, str(rc))
        self.c.on_message = lambda c, u, msg: self.got.append(msg.topic)

    def _on_connect(self, client, userdata, flags, rc, props):
        self.reason = str(rc)
        self.connack.set()

    def connect(self, timeout=5.0):
        self.c.connect(self.broker.host, self.broker.port, keepalive=10)
        self.c.loop_start()
        self.connack.wait(timeout)
        return self.reason

    def publish(self, topic, timeout=5.0):
        info = self.c.publish(topic, b"attack", qos=1)
        deadline = time.monotonic() + timeout
        while info.mid not in self.acks and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.acks.get(info.mid)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def test_each_edge_writes_only_under_its_own_site_and_readers_write_nothing(shipped_broker):
    ha = Client(shipped_broker, "homeassistant")  # reads firedamp/# and homeassistant/#
    assert ha.connect() == "Success"
    ha.c.subscribe([("firedamp/#", 1), ("homeassistant/#", 1)])
    time.sleep(0.3)
    attempts = {  # (user, topic): delivered?
        ("edge-pi-01", "firedamp/mine-a/face-1/alert"): True,
        ("edge-pi-01", "firedamp/mine-a/pi-01/status"): True,
        ("edge-pi-01", "homeassistant/sensor/firedamp_mine_a/face-1_ch4/config"): True,
        ("edge-pi-01", "firedamp/mine-b/face-1/alert"): False,
        ("edge-pi-01", "homeassistant/sensor/firedamp_mine_b/face-1_ch4/config"): False,
        ("edge-pi-01", "homeassistant/status"): False,
        ("edge-pi-01", "firedamp/alert"): False,
        ("edge-pi-01", "elsewhere/mine-a/face-1/alert"): False,
        ("edge-pi-02", "firedamp/mine-b/face-9/alert"): True,
        ("edge-pi-02", "firedamp/mine-a/face-1/alert/x"): False,
        ("edge-pi-02", "homeassistant/binary_sensor/firedamp_mine_a/face-1_power/config"): False,
        ("control-room", "firedamp/mine-a/face-1/alert/room"): False,
    }
    clients = {}
    try:
        for (user, topic), allowed in attempts.items():
            if user not in clients:
                clients[user] = Client(shipped_broker, user)
                assert clients[user].connect() == "Success", user
            reason = clients[user].publish(topic)
            assert reason == ("Success" if allowed else "Not authorized"), (user, topic, reason)
        clients["edge-pi-01"].publish("firedamp/mine-a/end/alert")  # a marker: everything before it has arrived
        deadline = time.monotonic() + 5
        while "firedamp/mine-a/end/alert" not in ha.got and time.monotonic() < deadline:
            time.sleep(0.02)
        delivered = {t for (_, t), ok in attempts.items() if ok} | {"firedamp/mine-a/end/alert"}
        assert set(ha.got) == delivered
    finally:
        for c in [*clients.values(), ha]:
            c.close()


def test_anonymous_wrong_password_plaintext_and_untrusted_broker_are_refused(shipped_broker, certs):
    anon = Client(shipped_broker)
    assert anon.connect() == "Not authorized"
    anon.close()
    liar = Client(shipped_broker, "edge-pi-01")
    liar.c.username_pw_set("edge-pi-01", "guessed")
    assert liar.connect() in ("Bad user name or password", "Not authorized")
    liar.close()
    plain = Client(shipped_broker, "edge-pi-01", tls=False)  # the right password, in clear text, to the TLS port
    try:
        reason = plain.connect(timeout=2.0)
    except OSError:
        reason = None
    assert reason is None, "a plaintext client got a CONNACK from the TLS listener"
    plain.close()
    untrusting = Client(shipped_broker, "edge-pi-01", ca=certs.other_ca_file)
    with pytest.raises(ssl.SSLCertVerificationError):
        untrusting.connect()


def test_firedamp_run_refuses_to_start_when_tls_is_required_but_off(tmp_path, edge_config, edge_toml):
    settings = edge_config(None, [], model={"enabled": False})
    settings["mqtt"].update(tls=False, tls_required=True)
    toml = edge_toml(settings)
    proc = subprocess.run([sys.executable, "-m", "edge.cli", "run", "--config", str(toml)], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert proc.stderr.startswith("firedamp: ") and "tls_required" in proc.stderr and "refusing" in proc.stderr
    assert not (Path(settings["data_dir"]) / "outbox.sqlite").exists()  # nothing started


def test_the_edge_refuses_a_broker_whose_certificate_names_another_host(shipped_broker, edge_config, pty_pair):
    """The broker's certificate is for localhost / 127.0.0.1; reached as "127.1" (the same address under a name
    the certificate does not hold) the edge must refuse it, as it would a man in the middle."""
    from edge.config import parse_config
    from edge.service import Service

    settings = edge_config(shipped_broker, [pty_pair().device], site="mine-a", model={"enabled": False})
    settings["mqtt"].update(host="127.1", username="edge-pi-01", password=USERS["edge-pi-01"], tls_required=True)
    svc = Service(parse_config(settings)).start()
    try:
        deadline = time.monotonic() + 10
        while not svc.publisher.last_error and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "cannot be verified" in svc.publisher.last_error and not svc.publisher.connected
        assert svc.publisher.counters["connects"] == 0
    finally:
        svc.stop()
