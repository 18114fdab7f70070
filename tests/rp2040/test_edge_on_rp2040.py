"""`firedamp board --target rp2040` (the real RP2040 port, emulated) read by `firedamp run`, unchanged, through
its pty as through /dev/ttyACM0: the board's telemetry reaches a real Mosquitto."""

import json
import signal
import subprocess
import sys
import time

import pytest

FIREDAMP = [sys.executable, "-m", "edge.cli"]


@pytest.mark.long  # make test-long; the short path runs in make test
def test_edge_reads_the_emulated_pico_with_calibration_gas_on_its_sensor(tmp_path, mosquitto, edge_config,
                                                                            edge_toml, mqtt_subscriber):
    broker = mosquitto()
    link = tmp_path / "pico-9"
    link.with_name("pico-9.gas").write_text("0.73\n")  # a calibration cap on the sensor
    sub = mqtt_subscriber(broker, ["firedamp/+/+/telemetry"])

    def telemetry(messages) -> list[dict]:
        return [json.loads(p) for t, p, _ in messages if t.endswith("/pico-9/telemetry")]

    board = subprocess.Popen([*FIREDAMP, "board", "--target", "rp2040", "--scenario", "normal", "--link", str(link),
                              "--seconds", "600"], stdout=open(tmp_path / "board.log", "wb"),  # noqa: SIM115
                             stderr=subprocess.STDOUT)
    edge = None
    try:
        deadline = time.monotonic() + 300  # a new board: the firmware is installed first (mpremote)
        while "serial /dev/pts" not in (tmp_path / "board.log").read_text():
            assert board.poll() is None and time.monotonic() < deadline, (tmp_path / "board.log").read_text()
            time.sleep(0.5)
        cfg = edge_config(broker, [str(link)], model={"enabled": False}, outbox={"fsync": False},
                          mqtt={"discovery": False})
        edge = subprocess.Popen([*FIREDAMP, "run", "--config", str(edge_toml(cfg))],
                                stdout=open(tmp_path / "edge.log", "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115
        ok = sub.wait(lambda msgs: any(m.get("ch4") is not None and abs(m["ch4"] - 0.73) <= 0.03
                                       for m in telemetry(msgs)), timeout=300)
        got = telemetry(sub.snapshot())
        assert ok, (got[-3:], (tmp_path / "edge.log").read_text()[-2000:])
        last = got[-1]
        assert last["state"] == "NORMAL" and last["relay"] == 1, last
        assert last["flow"] > 0, last  # the scenario's airflow as pulses on the emulated pin
    finally:
        for p in (edge, board):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(30)
