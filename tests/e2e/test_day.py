"""A normal simulated day (24 h at up to 2000x, about a minute): no alarm, and at most one advisory alert.

The whole chain runs: firmware code on the virtual board (its MicroPython-style ticks wrap many times in a
day), the pty, the edge service with the shipped model, real Mosquitto, a real subscriber.
"""

import re

import pytest


@pytest.mark.slow
def test_a_normal_day_gives_no_alarm_and_at_most_one_advisory(mosquitto, subscriber, firedamp, tmp_path):
    broker = mosquitto()
    sub = subscriber(broker.host, broker.port, "firedamp/+/+/alert")
    done = firedamp.run("demo", "--scenario", "normal", "--duration", "86400", "--speed", "2000", "--seed", "3",
                        "--broker", f"{broker.host}:{broker.port}", "--run-dir", str(tmp_path / "run"),
                        "--seconds", "240", "--no-control-room", timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "end of the scenario" in done.stdout, done.stdout[-2000:]
    frames = int(re.search(r"frames received: (\d+)", done.stdout).group(1))
    assert frames >= 86_000 - 300, f"only {frames} readings reached the edge in a simulated day"
    assert "frames rejected: 0" in done.stdout
    alerts = [doc for _, doc in sub.snapshot()]
    board = [d for d in alerts if not d.get("advisory")]
    advisory_raised = [d for d in alerts if d.get("advisory") and d.get("state") == "raised"]
    assert board == [], [(d["kind"], d["state"], d["message"]) for d in board]
    assert len(advisory_raised) <= 1, [d["message"] for d in advisory_raised]
