"""`firedamp demo --target rp2040`: the whole demo with MicroPython's RP2040 port on the emulated chip as the
board, read by a real MQTT subscriber on a real Mosquitto: the board's alarm and power-off arrive, the operator
acknowledges on the board's second (console) port, the power comes back, the demo ends by itself and its
summary says how fast the emulated chip ran."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from edge.demo.subscriber import Subscriber

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.long  # ~2.5 min on a quiet machine (a fresh board installed first, a 600 s story at ~4.5x)
def test_the_demo_on_the_emulated_pico_ends_by_itself_after_alarm_power_off_ack_and_restore(mosquitto, tmp_path):
    broker = mosquitto()
    sub = Subscriber(broker.host, broker.port, ["firedamp/+/+/alert"], record=lambda m: json.loads(m.payload))
    run_dir = tmp_path / "run"
    try:
        done = subprocess.run([sys.executable, "-m", "edge.cli", "demo", "--target", "rp2040", "--broker",
                               f"{broker.host}:{broker.port}", "--run-dir", str(run_dir), "--no-control-room",
                               "--seconds", "1500"], cwd=ROOT, capture_output=True, text=True, timeout=1800)
        alerts = sub.wait(lambda msgs: any((a.get("kind"), a.get("state")) == ("power_off", "cleared") for a in msgs)
                          and list(msgs), timeout=5) or sub.snapshot()
    finally:
        sub.close()
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    assert "end of the scenario" in out, out[-3000:]  # not --seconds: it ended with the scenario
    assert "emulated RP2040 at 8x, the story shortened to 600 simulated s" in out
    pace = re.search(r"board's simulated time per wall second, first to last reading: ([0-9.]+)x", out)
    assert pace and 0 < float(pace.group(1)) <= 10.5, out[-2000:]  # never faster than the cap
    assert "frames rejected: 0" in out and "frames lost (sequence gaps): 0" in out, out[-2000:]

    states = [(a.get("kind"), a.get("state")) for a in alerts]
    assert ("alarm", "raised") in states and ("power_off", "raised") in states, states
    assert states.index(("power_off", "cleared")) > states.index(("power_off", "raised")), states
    # the operator acknowledged on the console port, and the board said OK there
    assert "operator> ack   board: OK" in out, out[-3000:]
    # the real port's relay pin: off at the power-off, on again after the acknowledgement
    pins = [json.loads(line) for line in (run_dir / "demo-01-pins.jsonl").read_text().splitlines()]
    relay = [p["value"] for p in pins if p["pin"] == "relay" and p["t_s"] > 0]
    assert 0 in relay and relay[relay.index(0):].count(1) >= 1, relay
