"""Fault tests of the fleet path with real edges: virtual boards behind `firedamp run`, `[mqtt] servers` over a
3-node NATS cluster, two control-room replicas (JetStream source, PostgreSQL store), all started by
control/fleet.py as `firedamp fleet` starts them.

What the edges published is recorded by an MQTT subscriber of our own (QoS 1, persistent session on a node,
subscribed before any edge starts); each test asserts against it: 0 alerts lost, 0 duplicate rows, and each
board's alerts paired in the order the edge sent them.
"""

from __future__ import annotations

import json
import time

import pytest

from control.fleet import SITE, Fleet
from control.natscluster import MISSING, NATS_SERVER
from control.pgserver import missing as pg_missing
from edge.demo.subscriber import Subscriber
from tests.helpers import wait_until as wait

pytest.importorskip("nats", reason="nats-py is not installed (pip install -e '.[fleet]')")


def Recorder(node) -> Subscriber:
    """Every alert message the edges published, first arrival of each id, in arrival order (`snapshot()`); MQTT
    3.1.1 (NATS refuses 5) with a persistent session."""
    seen: set[str] = set()

    def first_arrival(msg) -> dict | None:
        a = json.loads(msg.payload)
        if a["id"] in seen:
            return None
        seen.add(a["id"])
        return a

    return Subscriber(node.host, node.port, [f"firedamp/{SITE}/+/alert"], record=first_arrival,
                      client_id=f"recorder-{time.monotonic_ns()}", persistent=True, keepalive=10, timeout=30)


@pytest.fixture
def fleet(tmp_path):
    if not NATS_SERVER:
        pytest.skip(MISSING)
    if why := pg_missing():
        pytest.skip(why)
    made: list[Fleet] = []
    yield lambda **kw: made.append(Fleet(tmp_path / "fleet", note=lambda t: print(t), **kw)) or made[-1]
    for f in made:
        f.stop()


def test_postgresql_restart_mid_burst_loses_nothing_stores_once_keeps_order(fleet):
    """6 boards, all on the story (their alarms come together), 2 edges, 2 replicas. At the first alert the
    recorder sees, PostgreSQL is stopped (pg_ctl stop -m fast) and started again once 3 more alerts have been
    published: the replicas' batches fail, they wait and retry; nothing is acknowledged to JetStream before it
    is stored, so what was published meanwhile is stored after the restart."""
    f = fleet(edges=2, boards=3, story=3, speed=10.0, store="postgresql", control_port=0, model=False)
    rec: list[Recorder] = []
    f.start(before_edges=lambda fl: rec.append(Recorder(fl.cluster.nodes[2])))
    recorder = rec[0]
    try:
        before = len(wait(lambda: recorder.snapshot(), 60, "a first alert from an edge"))
        t0 = time.monotonic()
        f.pg.stop()  # pg_ctl stop -m fast, then start: a restart kept down until alerts were published meanwhile
        wait(lambda: len(recorder.snapshot()) >= before + 3, 30, "3 more alerts published while the database is down")
        during = len(recorder.snapshot()) - before
        f.pg.start()
        print(f"PostgreSQL down {time.monotonic() - t0:.1f} s: {before} alert(s) published before, {during} while "
              "it was down")
        # the story: alarm at ~10 s, restored at 21 s (wall, 10x): until every board's alarm has cleared
        wait(lambda: sum(a["kind"] == "alarm" and a["state"] == "cleared" for a in recorder.snapshot()) == 6, 60,
             "every board's alarm cleared")
        f.stop_edges()  # each edge sends what its outbox holds
        assert f.outbox_depths() == {"edge-01": 0, "edge-02": 0}

        def settled():
            # the edges have stopped, but what they sent last may still be on its way to the recorder and to the
            # replicas: read both again until the recorder's messages are all stored and the stored edge alerts
            # are the ones it saw raised (a real loss or a doubled row never settles, and fails here)
            sent = recorder.snapshot()
            ids = {a["id"] for a in sent}
            rows = f.alert_messages()
            if not ids <= {r["id"] for r in rows}:
                return None
            alerts = f.report()["alerts"]
            if sum(a["source"] == "edge" for a in alerts) != sum(a["state"] == "raised" for a in sent):
                return None
            return sent, ids, rows, alerts

        sent, ids, stored, alerts = wait(settled, 30, "every published alert stored once, as the recorder saw them")
        summary = f.summary()
    finally:
        recorder.close()
    errors = [r["store_errors"] or 0 for r in summary["replicas"]]
    print(f"{len(sent)} alert messages published; stored {len(stored)}; store errors per replica {errors}")
    assert sum(errors) > 0, "the restart did not reach a replica: the test proved nothing"
    mine = [r for r in stored if r["id"] in ids]
    assert len(mine) == len(ids), "lost"
    assert len({r["id"] for r in stored}) == len(stored), "a duplicate row"
    # per board: the stored alerts pair exactly as the edge sent them (each clear linked to its own raise, in order)
    edge_alerts = [a for a in alerts if a["source"] == "edge"]
    assert len(edge_alerts) == sum(a["state"] == "raised" for a in sent), "an alert row missing or doubled"
    by_id = {r["id"]: r for r in stored}
    for dev in {a["device"] for a in sent}:
        want = [(a["kind"], a["state"], a["id"]) for a in sent if a["device"] == dev]
        raises = [a["id"] for a in sent if a["device"] == dev and a["state"] == "raised"]
        rows = sorted((a for a in edge_alerts if a["device"] == dev), key=lambda a: a["raised_ts"])
        assert [a["id"] for a in rows] == raises, f"{dev}: alerts stored in another order than sent"
        for kind, state, mid in want:
            if state == "cleared":
                raised_before = [i for k, s, i in want[:want.index((kind, state, mid))] if k == kind and s == "raised"]
                assert by_id[mid]["alert_id"] == raised_before[-1], f"{dev}: {kind} clear paired with the wrong raise"
