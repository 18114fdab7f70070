"""Small helpers several test folders share (fixtures live in tests/conftest.py)."""

import time
from pathlib import Path

SHIPPED_MOSQUITTO = Path(__file__).parents[1] / "deploy" / "mosquitto"


def wait_for(pred, timeout=5.0, interval=0.02):
    """Poll `pred` until it is true (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return False


def shipped_broker_config(tmp_path: Path, certs) -> str:
    """deploy/mosquitto/firedamp.conf with its system paths pointed at the test's certs, ACL copy and folder,
    listening on the `mosquitto` fixture's `{port}` on loopback. Fails if the shipped file loses a line."""
    conf = (SHIPPED_MOSQUITTO / "firedamp.conf").read_text()
    (tmp_path / "firedamp.acl").write_text((SHIPPED_MOSQUITTO / "firedamp.acl").read_text())
    for old, new in (("listener 8883", "listener {port} 127.0.0.1"),
                     ("/etc/mosquitto/firedamp.passwd", "{dir}/passwd"),
                     ("/etc/mosquitto/firedamp.acl", str(tmp_path / "firedamp.acl")),
                     ("/etc/mosquitto/certs/ca.crt", str(certs.ca_file)),
                     ("/etc/mosquitto/certs/broker.crt", str(certs.server_cert)),
                     ("/etc/mosquitto/certs/broker.key", str(certs.server_key)),
                     ("/var/lib/mosquitto/", "{dir}/")):
        assert old in conf, f"the shipped firedamp.conf no longer has {old!r}"
        conf = conf.replace(old, new)
    return conf
