"""The control room makes a sick NATS cluster loud: JetStreamSource checks every replica of the streams it reads
(a node whose disk is full disables its JetStream and its replicas stop being current), and the watcher turns
what it reports into one `broker` alert, cleared when every replica is current again. The real fault runs in
tests/control/test_nats_disk_full.py (make test-long); this is its fast path, with the stream info as NATS
2.9.10 reports it in that test (the full node's replica: current false, lag growing, offline unset)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace as NS

import pytest

pytest.importorskip("nats", reason="nats-py is not installed (pip install -e '.[fleet]')")

from control import source as source_mod  # noqa: E402
from control.config import parse_config  # noqa: E402
from control.live import Hub  # noqa: E402
from control.store.sqlite import SqliteStore  # noqa: E402
from control.watch import Watcher  # noqa: E402


class FakeJs:
    """stream_info() as nats-py returns it: .cluster.leader and .cluster.replicas (name, current, offline, lag)."""

    def __init__(self):
        self.behind: dict[str, int] = {}  # stream -> lag of n3's replica (absent: current)
        self.fail: set[str] = set()

    async def stream_info(self, name):
        if name in self.fail:
            raise TimeoutError("nats: timeout")
        lag = self.behind.get(name)
        return NS(cluster=NS(leader="n1", replicas=[NS(name="n2", current=True, offline=None, lag=None),
                                                    NS(name="n3", current=lag is None, offline=None, lag=lag)]))


def source(monkeypatch, grace: float):
    monkeypatch.setattr(source_mod, "_HEALTH_GRACE_S", grace)
    cfg = parse_config({"source": {"kind": "jetstream", "servers": ["nats://127.0.0.1:4222"]}})
    return source_mod.JetStreamSource(cfg)


def test_a_replica_behind_is_reported_after_the_grace_and_cleared_when_current(monkeypatch):
    src, js = source(monkeypatch, grace=0.0), FakeJs()
    asyncio.run(src._check(js))
    assert src.problems == []
    js.behind["firedamp"] = 857
    asyncio.run(src._check(js))
    assert len(src.problems) == 1 and "firedamp" in src.problems[0] and "n3" in src.problems[0]
    js.fail.add("$MQTT_msgs")  # a stream that cannot be read is a problem too
    asyncio.run(src._check(js))
    assert len(src.problems) == 2 and any("$MQTT_msgs cannot be read" in p for p in src.problems)
    js.behind.clear()
    js.fail.clear()
    asyncio.run(src._check(js))
    assert src.problems == []


def test_a_replica_briefly_behind_is_not_reported(monkeypatch):
    src, js = source(monkeypatch, grace=3600.0), FakeJs()  # a busy follower catches up within the grace
    js.behind["firedamp"] = 5
    asyncio.run(src._check(js))
    assert src.problems == []


def test_the_watcher_raises_one_broker_alert_and_clears_it(tmp_path):
    store = SqliteStore(tmp_path / "c.sqlite", fsync=False)
    problems: list[str] = []
    w = Watcher(store, Hub(), 3600, 3600, problems=lambda: problems)
    w.tick()
    assert store.alerts() == []
    problems.append("stream firedamp: its replica on node n3 is not current (857 behind)")
    w.tick()
    w.tick()  # still degraded: still the one alert
    (a,) = store.alerts(active=True)
    assert (a["kind"], a["severity"], a["source"]) == ("broker", "critical", "control-room")
    assert "n3" in a["message"] and a["site"] == "nats"
    problems.clear()
    w.tick()
    assert store.alerts(active=True) == []
    (a,) = store.alerts()
    assert a["cleared_ts"] is not None and "fully replicated again" in a["cleared_message"]
    store.close()
