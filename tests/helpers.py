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


def wait_until(pred, timeout: float, what: str, interval: float = 0.1):
    """Poll `pred` until it returns something true and return that; fail the test with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not (value := pred()):
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(interval)
    return value


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


def board_line(seq, state="NORMAL", ch4=0.45, device="b1", relay=None, flow=12.0, faults=0, flags=0, unit="VOL",
               flow_unit="m3/min", total=100.0, uptime_ms=None) -> bytes:
    """One reading as a board sends it (edge.frames.format_reading): uptime seq × 1 s unless given; the relay
    is off in POWEROFF, FAULT and WARMUP unless given."""
    from edge.frames import Reading, format_reading

    relay = (0 if state in ("POWEROFF", "FAULT", "WARMUP") else 1) if relay is None else relay
    return format_reading(Reading(device, seq, seq * 1000 if uptime_ms is None else uptime_ms, ch4, unit, flow,
                                  flow_unit, total, state, relay, faults, flags))


def board_event(seq, code, text="", device="b1", uptime_ms=None) -> bytes:
    """One E frame as a board sends it (edge.frames.format_frame): uptime seq × 1 s unless given."""
    from edge.frames import Event, format_frame

    return format_frame(Event(device, seq, seq * 1000 if uptime_ms is None else uptime_ms, code, text))


def shared_places(*parts: str) -> list[Path]:
    """Where the project's shared folder (../shared: data sets, the RP2040 firmware) may hold `parts`, in the
    order looked: $FIREDAMP_SHARED, the checkout's ../shared, and for a local clone its origin's ../shared."""
    import os
    import subprocess

    root = Path(__file__).resolve().parents[1]
    bases = [Path(os.environ["FIREDAMP_SHARED"])] if os.environ.get("FIREDAMP_SHARED") else []
    bases.append(root.parent / "shared")
    try:
        origin = subprocess.run(["git", "-C", str(root), "config", "--get", "remote.origin.url"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        origin = ""
    if origin and Path(origin).is_dir():  # a clone of a checkout on this machine
        bases.append(Path(origin).resolve().parent / "shared")
    return list(dict.fromkeys(b.joinpath(*parts) for b in bases))


def find_shared(*parts: str) -> tuple[Path | None, str]:
    """The first of shared_places(*parts) that exists, or None and a sentence naming every place looked."""
    places = shared_places(*parts)
    for p in places:
        if p.exists():
            return p, str(p)
    return None, (f"{'/'.join(parts)} not found; looked in " + ", ".join(map(str, places)) +
                  " (set FIREDAMP_SHARED to the shared folder)")
