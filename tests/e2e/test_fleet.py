"""`firedamp fleet` end to end: a 3-node NATS cluster, PostgreSQL, two control-room replicas, 2 edges x 2 virtual
boards, all as processes started by the command itself; stopped by --seconds with every child."""

from __future__ import annotations

import json
import re
import socket
import subprocess

import pytest

from tests.e2e.conftest import FIREDAMP, ROOT, firedamp_env

pytest.importorskip("nats", reason="nats-py is not installed (pip install -e '.[fleet]')")


@pytest.mark.long  # make test-long; the short path runs in make test
def test_fleet_stores_the_story_alarm_once_with_both_replicas_working(tmp_path):
    from control.natscluster import MISSING, NATS_SERVER

    if not NATS_SERVER:
        pytest.skip(MISSING)
    run_dir = tmp_path / "fleet"
    done = subprocess.run([*FIREDAMP, "fleet", "--edges", "2", "--boards", "2", "--seconds", "22", "--every", "4",
                           "--run-dir", str(run_dir), "--control-port", "0"], cwd=ROOT, env=firedamp_env(),
                          capture_output=True, text=True, timeout=150)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert "log in as operator / " in out and "boards 4 live, 0 no data (of 4)" in out, out[-4000:]
    report = json.loads((run_dir / "fleet-report.json").read_text())
    story = ["e01-b01", "e02-b01"]  # the first board of each edge runs the story (ventilation lost)
    for dev in story:
        pins = [json.loads(line) for line in (run_dir / "boards" / f"{dev}-pins.jsonl").read_text().splitlines()]
        assert any(p["state"] == "ALARM" for p in pins), f"{dev}: the board itself never alarmed"
        raised = [m for m in report["alert_messages"] if m["device"] == dev and m["kind"] == "alarm"
                  and m["state"] == "raised"]
        assert len(raised) == 1, f"{dev}: alarm raised stored {len(raised)} times: {raised}"
        rows = [a for a in report["alerts"] if a["device"] == dev and a["kind"] == "alarm"]
        assert [a["id"] for a in rows] == [raised[0]["id"]], rows
    ids = [m["id"] for m in report["alert_messages"]]
    assert len(ids) == len(set(ids)), "an alert message stored twice"
    assert not any(m["kind"] == "alarm" for m in report["alert_messages"] if m["device"] not in story), \
        "a normal board alarmed"
    assert report["outbox"] == {"edge-01": 0, "edge-02": 0}, "alerts left unacknowledged in an edge's outbox"
    assert [bool(r["messages"]) for r in report["replicas"]] == [True, True], f"both replicas stored: {report}"
    assert all(not r["store_errors"] for r in report["replicas"])
    # every child stopped with the command: the database and the nodes no longer answer
    ports = [int(p) for p in re.findall(r"^fleet: control room replica \d: http://127\.0\.0\.1:(\d+)/", out, re.M)]
    assert len(ports) == 2
    for port in ports:
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"replica on {port} still answers"
    assert not (run_dir / "pg-dir.txt").exists()
