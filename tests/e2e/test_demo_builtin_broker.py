"""`firedamp demo` on a machine without Mosquitto: the built-in amqtt broker carries the alerts.

A short, accelerated run of the story: the demo's own subscriber must receive the model's advisory alert
through amqtt, and the summary must say which broker ran and where the outbox and logs are.
"""

import re


def test_demo_with_the_builtin_broker_delivers_alerts(firedamp, tmp_path):
    run_dir = tmp_path / "run"
    done = firedamp.run("demo", "--local-broker", "amqtt", "--speed", "60", "--seconds", "15", "--run-dir",
                        str(run_dir), timeout=90)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "private amqtt broker on 127.0.0.1:" in done.stdout
    received = re.search(r"alerts received by the subscriber: (\d+)", done.stdout)
    assert received and int(received.group(1)) >= 1, done.stdout[-2000:]
    assert re.search(r"ALERT +warning +anomaly raised", done.stdout), done.stdout[-2000:]
    lines = done.stdout.splitlines()
    for key, place in (("outbox", "outbox.sqlite"), ("edge service log", "edge.log"), ("virtual board log", "board.log")):
        assert (run_dir / place).is_file(), f"{place} is not in the run dir"
        assert f"  {key}: {run_dir / place}" in lines, f"the summary does not say where {place} is"
    assert "frames rejected: 0" in done.stdout
    # the control room ran on the same 3.1.1 broker and stored every alert the edge raised
    raised = re.search(r"alerts raised by the edge \(each may clear later\): (\d+)", done.stdout)
    stored = re.search(r"alerts stored by the control room, from the edge: (\d+)", done.stdout)
    assert raised and stored and int(stored.group(1)) == int(raised.group(1)) >= 1, done.stdout[-2000:]
    assert re.search(r"control room \(web page\): http://127\.0\.0\.1:\d+/ +user operator / \S+", done.stdout)
