"""The deployment files are usable: `firedamp run` refuses bad input with a clear message, the example
Mosquitto config (TLS + passwords + ACL) runs and enforces its ACL, and the systemd unit is complete."""

import time
from pathlib import Path

from edge import cli
from edge.config import parse_config
from edge.service import Service
from tests.helpers import board_line, shipped_broker_config

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy"


def test_run_with_a_bad_config_is_one_clear_line(tmp_path, capsys):
    bad = tmp_path / "edge.toml"
    bad.write_text('[mqtt]\nport = 99999\n')
    assert cli.main(["run", "--config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("firedamp: ") and "[mqtt] port = 99999" in err and "1..65535" in err
    assert cli.main(["run", "--config", str(tmp_path / "missing.toml")]) == 1
    assert "cannot read config" in capsys.readouterr().err


def test_run_with_an_unusable_data_dir_is_one_clear_line(tmp_path, capsys, edge_config, edge_toml):
    (tmp_path / "a-file").write_text("")
    toml = edge_toml(edge_config(None, [], model={"enabled": False}, data_dir=str(tmp_path / "a-file" / "data")))
    assert cli.main(["run", "--config", str(toml)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("firedamp: cannot open the outbox database") and "a-file" in err and "data_dir" in err, err


def test_run_refuses_a_tampered_model_file(tmp_path, capsys, edge_config, edge_toml):
    from models.runtime import DEFAULT_MODEL

    data = bytearray(DEFAULT_MODEL.read_bytes())
    data[len(data) // 2] ^= 0x01
    (tmp_path / "tampered.onnx").write_bytes(bytes(data))
    toml = edge_toml(edge_config(None, [], model={"path": str(tmp_path / "tampered.onnx")}))
    assert cli.main(["run", "--config", str(toml)]) == 1
    err = capsys.readouterr().err
    assert "tampered.onnx" in err and ("content_sha256" in err or "not a loadable" in err), err


def test_systemd_unit_restarts_on_failure_with_serial_access_and_a_clean_stop():
    unit = (DEPLOY / "firedamp.service").read_text().splitlines()
    for line in ("Restart=on-failure", "SupplementaryGroups=dialout", "KillSignal=SIGTERM",
                 "ExecStart=/opt/firedamp/.venv/bin/firedamp run --config /etc/firedamp/edge.toml",
                 "StateDirectory=firedamp", "ReadWritePaths=/var/lib/firedamp"):
        assert line in unit, line
    # DevicePolicy=closed: every kind of serial port a board can be on must be allowed (the firmware's
    # `link uart` puts the board on the Pi's UART pins, /dev/ttyAMA0 or /dev/ttyS0)
    assert "DevicePolicy=closed" in unit
    for group in ("ttyACM", "ttyUSB", "ttyAMA", "ttyS"):
        assert f"DeviceAllow=char-{group} rw" in unit, group


def test_systemd_analyze_verify_finds_nothing_but_the_missing_install_path(tmp_path):
    import shutil
    import subprocess
    import sys

    import pytest

    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed here")
    text = (DEPLOY / "firedamp.service").read_text().replace("/opt/firedamp/.venv/bin/firedamp", sys.executable)
    (tmp_path / "firedamp.service").write_text(text)
    out = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "firedamp.service")], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and "firedamp.service" not in out.stderr, out.stderr


def test_the_example_broker_config_runs_with_tls_passwords_and_its_acl(tmp_path, certs, mosquitto, pty_pair,
                                                                       mqtt_subscriber, edge_config):
    conf = shipped_broker_config(tmp_path, certs)
    users = {"edge-pi-01": "pw-edge", "control-room": "pw-room", "homeassistant": "pw-ha"}
    broker = mosquitto(config=conf, users=users)
    broker.tls, broker.ca_file = True, certs.ca_file
    room = mqtt_subscriber(broker, ["firedamp/#"], username="control-room", password="pw-room")
    board = pty_pair()
    settings = edge_config(broker, [board.device], site="mine-a", model={"enabled": False},
                           mqtt={"username": "edge-pi-01", "password": "pw-edge", "tls_required": True})
    ok = Service(parse_config(settings)).start()
    other = Service(parse_config({**settings, "site": "mine-b", "data_dir": str(tmp_path / "b"), "boards": []}))
    try:
        assert ok.wait_ready(), ok.publisher.last_error
        board.write(board_line(5, "ALARM", ch4=1.2, flow=10.0, total=1.0))
        assert room.wait(lambda m: any(t == "firedamp/mine-a/b1/alert" for t, *_ in m))
        other.start()  # the same user publishing for another site: the ACL refuses it
        assert other.wait_ready()
        time.sleep(0.5)
        assert not any("/mine-b/" in t for t, *_ in room.messages)
    finally:
        ok.stop()
        if other._thread:
            other.stop()
