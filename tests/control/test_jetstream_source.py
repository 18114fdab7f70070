"""The control room on a real 3-node NATS cluster: edges' MQTT 3.1.1 publishes to any node, JetStream source,
store-then-ack, replicas sharing one durable consumer, a node or a replica SIGKILLed mid-burst.

Each fault test asserts against what was published: every alert message stored once (0 lost, 0 duplicate
rows) and, where one consumer delivers in order, in each board's order.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytest.importorskip("nats", reason="nats-py is not installed (pip install -e '.[fleet]')")

from edge.policy import Alert  # noqa: E402
from tests.control import kit  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def jetstream(cluster, durable: str = "cr", ack_wait_s: float = 30.0) -> dict:
    return {"kind": "jetstream", "servers": cluster.servers, "durable": durable, "ack_wait_s": ack_wait_s}


def stored(db: Path) -> list[tuple[str, str]]:
    """(device, alert message id) of every stored alert message, in the order they were stored."""
    if not db.exists():
        return []
    with sqlite3.connect(db, timeout=10) as c:
        try:
            return c.execute("SELECT device, id FROM alert_msgs ORDER BY rowid").fetchall()
        except sqlite3.OperationalError:  # the schema is not there yet
            return []


class Burst:
    """Edges (one per node) publishing alarm raised/cleared alerts for their boards, not waiting for PUBACKs
    (paho keeps up to 20 in flight and resends the unacknowledged after a reconnect, as the edge's outbox
    does). `sent[device]` is each board's alert ids in publish order."""

    def __init__(self, edge_sim, nodes, boards_per_edge: int = 2):
        self.sims = []
        self.acked: set[tuple[int, int]] = set()  # (edge, mid) of every PUBACK
        for i, node in enumerate(nodes):
            sim = edge_sim(node, edge=f"pi-{i + 1}")
            sim.client.reconnect_delay_set(0.2, 1)
            sim.client.on_publish = lambda c, u, mid, rc, props, k=i: self.acked.add((k, mid))
            self.sims.append((sim, [f"n{i + 1}-b{j + 1}" for j in range(boards_per_edge)]))
        self.sent: dict[str, list[str]] = {}
        self.infos = []

    def round(self) -> None:
        for k, (sim, devices) in enumerate(self.sims):
            for device in devices:
                ids = self.sent.setdefault(device, [])
                a = Alert(str(uuid.uuid4()), sim.site, sim.edge, device, "alarm", "critical",
                          "raised" if len(ids) % 2 == 0 else "cleared", time.time(), f"{device}: alarm", False,
                          None, {})
                ids.append(a.id)
                # published while disconnected (its node dead): paho queues it and sends it after reconnecting
                info = sim.client.publish(f"firedamp/{sim.site}/{device}/alert", a.to_json(), qos=1)
                self.infos.append((k, info.mid))

    def run(self, rounds: int, every_s: float = 0.01, during=None) -> None:
        for r in range(rounds):
            self.round()
            if during:
                during(r)
            time.sleep(every_s)  # the burst's pace, not a wait for a condition

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.sent.values())

    def mine(self, db: Path) -> list[tuple[str, str]]:
        return [(d, i) for d, i in stored(db) if d in self.sent]

    def all_acked(self) -> bool:
        return all(i in self.acked for i in self.infos)


def ack_pending(servers) -> int:
    """Messages JetStream handed out on $MQTT_msgs under the durable "cr" and still waits to hear about."""
    import asyncio

    import nats

    async def go():
        nc = await nats.connect(servers=servers, connect_timeout=2)
        try:
            return (await nc.jetstream(timeout=5).consumer_info("$MQTT_msgs", "cr")).num_ack_pending
        finally:
            await nc.close()

    return asyncio.run(go())


def check(db: Path, burst: Burst, order: bool = True) -> None:
    rows = burst.mine(db)  # not the control room's own alerts (edge offline)
    ids = [i for _, i in rows]
    sent = {i for v in burst.sent.values() for i in v}
    assert len(ids) == len(set(ids)), "a duplicate row"
    assert set(ids) == sent, f"lost {len(sent - set(ids))}, unexpected {len(set(ids) - sent)}"
    if order:
        for device, want in burst.sent.items():
            assert [i for d, i in rows if d == device] == want, f"{device}: stored out of order"


def test_alerts_via_any_node_reach_the_control_room(nats_cluster, control_room, edge_sim, tmp_path):
    c = nats_cluster()
    room = control_room(c.nodes[0], source=jetstream(c))
    sims = [edge_sim(n, edge=f"pi-{n.name}") for n in c.nodes]
    for sim, n in zip(sims, c.nodes, strict=True):
        sim.state(f"b-{n.name}")
        sim.telemetry(f"b-{n.name}", ch4=1.2)
        sim.alert(f"b-{n.name}", message=f"alarm via {n.name}")
    kit.wait(lambda: len(room.store.alerts()) == 3, timeout=15)
    assert {a["message"] for a in room.store.alerts()} == {f"alarm via {n.name}" for n in c.nodes}
    boards = kit.wait(lambda: [b for b in room.store.boards() if b["ch4"] is not None] if
                      len([b for b in room.store.boards() if b["ch4"] is not None]) == 3 else None, timeout=15)
    assert {(b["site"], b["device"]) for b in boards} == {("mine-a", f"b-{n.name}") for n in c.nodes}
    assert {b["ch4"] for b in boards} == {1.2}  # telemetry (QoS 0) came through the stream of ours
    assert room.counters()["messages_rejected"] == dict.fromkeys(room.counters()["messages_rejected"], 0)


@pytest.mark.long  # make test-long; the short path runs in make test
def test_two_replicas_share_one_durable_each_alert_stored_once(nats_cluster, control_room, edge_sim, tmp_path):
    c = nats_cluster()
    db = tmp_path / "shared.sqlite"
    rooms = [control_room(c.nodes[i], source=jetstream(c), store={"path": str(db), "fsync": False})
             for i in (0, 1)]
    burst = Burst(edge_sim, c.nodes)
    burst.run(40)  # 40 rounds x 6 boards = 240 alert messages over ~1 s
    kit.wait(lambda: len(burst.mine(db)) >= burst.total and burst.all_acked(), timeout=30)
    share = [r.ingest.stored for r in rooms]
    print(f"stored by each replica: {share}")
    check(db, burst, order=False)  # two consumers of one queue: each stores its batches when it can
    assert all(share), f"both replicas took part: {share}"


def test_nats_node_sigkill_during_burst_loses_nothing(nats_cluster, control_room, edge_sim, tmp_path):
    """Kill the node that leads $MQTT_msgs (where every PUBACK is decided) during the burst; restart it later.
    The edge on that node waits for it (one broker address each: the edge's list is a later step)."""
    c = nats_cluster()
    db = tmp_path / "control.sqlite"
    room = control_room(c.nodes[0], source=jetstream(c), store={"path": str(db), "fsync": False})
    victim = c.node(c.wait_stream_current("$MQTT_msgs")["cluster"]["leader"])
    burst = Burst(edge_sim, c.nodes)
    burst.run(100, during=lambda r: victim.kill() if r == 30 else None)  # ~2 s; the kill at a third
    victim.start()
    c.wait_ready()
    kit.wait(lambda: burst.all_acked() and len(burst.mine(db)) >= burst.total, timeout=60)
    check(db, burst)
    print(f"{burst.total} alert messages, {room.ingest.duplicates} redelivered duplicates ignored")


def test_replica_sigkill_mid_batch_is_redelivered_to_the_other(nats_cluster, control_room, edge_sim, tmp_path):
    c = nats_cluster()
    db = tmp_path / "shared.sqlite"
    survivor = control_room(c.nodes[0], source=jetstream(c, ack_wait_s=2), store={"path": str(db), "fsync": False})
    conf = tmp_path / "replica.toml"
    conf.write_text(f"""
[web]
port = {kit.free_port()}
[source]
kind = "jetstream"
servers = [{", ".join(f'"{u}"' for u in c.servers)}]
durable = "cr"
ack_wait_s = 2
[store]
path = "{db}"
fsync = false
""")
    log = tmp_path / "replica.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(log, "ab") as out:
        other = subprocess.Popen([sys.executable, "-m", "edge.cli", "control-room", "--config", str(conf)],
                                 cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        kit.wait(lambda: "JetStream consuming" in log.read_text(errors="replace") or other.poll() is not None,
                 timeout=30)
        assert other.poll() is None, log.read_text()[-3000:]
        burst = Burst(edge_sim, c.nodes)
        burst.run(20)
        kit.wait(lambda: len(burst.mine(db)) >= burst.total, timeout=30)
        other.send_signal(signal.SIGSTOP)  # mid-batch from here: what it pulls it never stores or acks
        held = 0
        for _ in range(10):  # until the frozen replica holds some: the survivor stored all but those
            burst.run(10, every_s=0.002)
            kit.wait(lambda: burst.all_acked(), timeout=30)
            try:
                held = kit.wait(lambda: (p := ack_pending(c.servers)) and len(burst.mine(db)) + p == burst.total
                                and p, timeout=5)
                break
            except AssertionError:
                continue
        assert held, "the frozen replica never held a message"
        other.send_signal(signal.SIGKILL)
        other.wait(10)
        kit.wait(lambda: len(burst.mine(db)) >= burst.total, timeout=60)
    finally:
        if other.poll() is None:
            other.kill()
            other.wait()
    check(db, burst, order=False)
    print(f"the frozen replica held {held}; the survivor got {survivor.source.redelivered} redelivered")
    assert survivor.source.redelivered >= held, "the killed replica's unacknowledged messages went to the survivor"
