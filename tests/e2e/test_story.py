"""The default demo scenario, accelerated, seen by a real MQTT subscriber on a real Mosquitto.

`firedamp demo --broker ...` runs the virtual board (the firmware code behind a pty), the edge service with
the shipped ONNX model, and the operator who acknowledges at the board's console. The subscriber must see
an advisory model alert, then the board's alarm, then its power-off, in that order; the board's relay pin
must go off at the power-off; and after the acknowledgement and restore the alerts must clear.
"""

import json

SPEED = 60  # the 900 s story in 15 s


def _first(alerts, kind, state, advisory=None):
    for i, doc in enumerate(alerts):
        if doc.get("kind") == kind and doc.get("state") == state and (advisory is None or doc.get("advisory") == advisory):
            return i
    return None


def test_story_alerts_arrive_in_order_and_clear_after_ack_and_restore(mosquitto, subscriber, firedamp, tmp_path):
    broker = mosquitto()
    sub = subscriber(broker.host, broker.port, "firedamp/+/+/alert")
    run_dir = tmp_path / "run"
    done = firedamp.run("demo", "--broker", f"{broker.host}:{broker.port}", "--speed", str(SPEED),
                        "--run-dir", str(run_dir), "--seconds", "120", timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "end of the scenario" in done.stdout, done.stdout[-3000:]
    assert sub.wait(lambda msgs: any(d.get("kind") == "power_off" and d.get("state") == "cleared"
                                         for _, d in msgs), timeout=5)
    alerts = [doc for topic, doc in sub.snapshot()]
    assert {topic for topic, _ in sub.snapshot()} == {"firedamp/demo/demo-01/alert"}

    advisory = min(i for i in (_first(alerts, "anomaly", "raised", True), _first(alerts, "forecast", "raised", True))
                   if i is not None)
    alarm = _first(alerts, "alarm", "raised")
    power_off = _first(alerts, "power_off", "raised")
    assert advisory < alarm < power_off, [(d["kind"], d["state"]) for d in alerts]
    assert alerts[alarm]["advisory"] is False and alerts[power_off]["severity"] == "critical"
    assert alerts[advisory]["details"]["score"] is not None and alerts[advisory]["details"]["model_version"]

    # the board acted by itself: its relay pin went off at the power-off and stayed off until the restore
    pins = [json.loads(line) for line in (run_dir / "demo-01-pins.jsonl").read_text().splitlines()]
    relay = [p for p in pins if p["pin"] == "relay" and "why" not in p]
    off = next(p for p in relay if p["state"] == "POWEROFF")
    assert off["value"] == 0
    back_on = next(p for p in relay if p["t_s"] > off["t_s"] and p["value"] == 1)
    assert back_on["state"] == "NORMAL"
    at_cut = alerts[power_off]["readings"]
    assert at_cut["ch4"] >= 1.50 and at_cut["relay"] == 0
    # the relay pin went off in the very loop iteration (100 ms) whose reading crossed the power-off level
    assert abs(at_cut["uptime_ms"] / 1000 - off["t_s"]) <= 0.1, (at_cut, off)

    # acknowledged at the console (the operator), then everything raised is cleared, after the power-off
    assert "operator> ack   board: OK" in done.stdout
    for kind in ("alarm", "power_off", "anomaly", "forecast"):
        raised = _first(alerts, kind, "raised")
        if raised is None:
            continue
        cleared = _first(alerts, kind, "cleared")
        assert cleared is not None and cleared > raised, f"{kind} never cleared"
    assert _first(alerts, "power_off", "cleared") > power_off
    assert "frames rejected: 0" in done.stdout


def test_without_an_operator_the_power_stays_cut(firedamp, tmp_path):
    """Nobody acknowledges: methane falls below the restore level, and still nothing (edge included) restores
    the power — the latch is the board's, and only a person at its console releases it."""
    run_dir = tmp_path / "run"
    done = firedamp.run("demo", "--no-operator", "--speed", str(SPEED), "--run-dir", str(run_dir),
                        "--seconds", "120", timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "end of the scenario" in done.stdout and "power_off raised" in done.stdout
    assert "power_off cleared" not in done.stdout and "operator>" not in done.stdout
    pins = [json.loads(line) for line in (run_dir / "demo-01-pins.jsonl").read_text().splitlines()]
    relay = [p for p in pins if p["pin"] == "relay" and "why" not in p]
    off = next(p for p in relay if p["state"] == "POWEROFF")
    assert not [p for p in relay if p["t_s"] > off["t_s"] and p["value"] == 1]
