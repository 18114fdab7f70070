"""When NATS 2.9 acknowledges an MQTT QoS 1 publish, measured on a real 3-node cluster (docs/fleet.md).

What the tests below establish, and the JetStream source is built on:
- The PUBACK follows a synchronous, quorum-replicated store into NATS's own MQTT stream `$MQTT_msgs`
  (3 replicas). With that stream's quorum gone (two of three nodes frozen) no PUBACK comes at all.
- A stream of ours over `firedamp.>` gets only a plain copy, which nobody confirms: a PUBACK comes even when
  our stream refuses the message (full, discard new), and messages the edge saw acknowledged are missing
  from our stream after its leader is SIGKILLed (they arrived while it had no leader), while a durable
  consumer on `$MQTT_msgs` has every one of them.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

nats = pytest.importorskip("nats", reason="nats-py is not installed (pip install -e '.[fleet]')")
mqtt = pytest.importorskip("paho.mqtt.client")

from nats.js import api  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

MQTT_STREAM, MQTT_SUBJECT = "$MQTT_msgs", "$MQTT.msgs."


def js_call(servers, fn, timeout: float = 30.0):
    """Run `await fn(js, nc)` on a fresh nats-py connection, retried while the cluster elects leaders."""

    async def go():
        nc = await nats.connect(servers=servers, connect_timeout=2, max_reconnect_attempts=5)
        try:
            return await fn(nc.jetstream(timeout=5), nc)
        finally:
            await nc.close()

    deadline = time.monotonic() + timeout
    while True:
        try:
            return asyncio.run(go())
        except (nats.errors.TimeoutError, nats.js.errors.ServiceUnavailableError, nats.errors.NoRespondersError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def publisher(node):
    """A paho client, MQTT 3.1.1 (NATS refuses 5), connected to one node."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{node.name}-{time.monotonic_ns()}",
                    protocol=mqtt.MQTTv311)
    c.reconnect_delay_set(0.2, 1)
    connected = threading.Event()
    c.on_connect = lambda *a: connected.set()
    c.connect(node.host, node.port, keepalive=10)
    c.loop_start()
    assert connected.wait(10), f"no CONNACK from {node.name}"
    return c


def stream_payloads(servers, stream: str) -> list[bytes]:
    async def read(js, nc):
        info = await js.stream_info(stream)
        out = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            try:
                out.append((await js.get_msg(stream, seq)).data)
            except nats.js.errors.NotFoundError:
                pass
        return out

    return js_call(servers, read)


def consumer_payloads(servers, stream: str, durable: str) -> list[bytes]:
    async def read(js, nc):
        sub = await js.pull_subscribe_bind(durable, stream)
        out = []
        while True:
            try:
                msgs = await sub.fetch(500, timeout=2)
            except nats.errors.TimeoutError:
                return out
            for m in msgs:
                out.append(m.data)
                await m.ack()

    return js_call(servers, read)


def leader_elsewhere(cluster, stream: str, avoid: str) -> str:
    """Step the stream's leader down until it is not on `avoid`; its leader."""
    for _ in range(20):
        leader = cluster.wait_stream_current(stream)["cluster"]["leader"]
        if leader != avoid:
            return leader
        js_call(cluster.servers, lambda js, nc: nc.request(f"$JS.API.STREAM.LEADER.STEPDOWN.{stream}", b"",
                                                           timeout=5))
        time.sleep(0.3)
    raise AssertionError(f"{stream}'s leader stays on {avoid}")


def test_puback_comes_even_when_our_stream_refuses_the_message(nats_cluster):
    c = nats_cluster()
    js_call(c.servers, lambda js, nc: js.add_stream(api.StreamConfig(
        name="small", subjects=["firedamp.>"], num_replicas=3, storage=api.StorageType.FILE, max_msgs=3,
        discard=api.DiscardPolicy.NEW)))
    c.wait_stream_current("small")
    pub = publisher(c.nodes[0])
    try:
        infos = [pub.publish("firedamp/mine-a/b1/alert", f"m{i}".encode(), qos=1) for i in range(10)]
        for info in infos:
            info.wait_for_publish(10)
        assert all(i.is_published() for i in infos), "every publish got its PUBACK"
        assert stream_payloads(c.servers, "small") == [b"m0", b"m1", b"m2"]  # 7 acknowledged, not in our stream
    finally:
        pub.loop_stop()
        pub.disconnect()


def test_no_puback_without_a_quorum_of_the_mqtt_stream(nats_cluster):
    c = nats_cluster()
    pub = publisher(c.nodes[0])
    try:
        ok = pub.publish("firedamp/mine-a/b1/alert", b"before", qos=1)
        ok.wait_for_publish(10)
        assert ok.is_published()
        info = c.wait_stream_current(MQTT_STREAM)  # on all three nodes, every replica current
        assert len(info["cluster"]["replicas"]) == 2, info["cluster"]
        for n in c.nodes[1:]:
            n.freeze()  # SIGSTOP: alive, sockets open, silent: node 1 alone has no quorum for $MQTT_msgs
        held = pub.publish("firedamp/mine-a/b1/alert", b"while-frozen", qos=1)
        held.wait_for_publish(6)  # NATS waits up to 4 s for $MQTT_msgs' store reply, then drops the connection
        assert not held.is_published(), "no PUBACK while the MQTT stream has no quorum"
        for n in c.nodes[1:]:
            n.thaw()
        held.wait_for_publish(30)  # paho resends it after reconnecting; now it is stored and acknowledged
        assert held.is_published()
    finally:
        for n in c.nodes[1:]:
            n.thaw()
        pub.loop_stop()
        pub.disconnect()


@pytest.mark.long  # make test-long; the short path runs in make test
def test_acknowledged_messages_lost_by_our_stream_kept_by_the_mqtt_stream(nats_cluster):
    """SIGKILL the leader of a stream of ours over firedamp.> during a burst: messages the publisher saw
    acknowledged are missing there, and all of them are with a durable consumer on $MQTT_msgs."""
    c = nats_cluster()
    js_call(c.servers, lambda js, nc: js.add_stream(api.StreamConfig(
        name="ours", subjects=["firedamp.>"], num_replicas=3, storage=api.StorageType.FILE)))
    js_call(c.servers, lambda js, nc: js.add_consumer(MQTT_STREAM, api.ConsumerConfig(
        durable_name="probe", filter_subject=f"{MQTT_SUBJECT}firedamp.>", ack_policy=api.AckPolicy.EXPLICIT)))
    mqtt_leader = c.wait_stream_current(MQTT_STREAM)["cluster"]["leader"]
    victim = c.node(leader_elsewhere(c, "ours", avoid=mqtt_leader))  # its death must not stop the PUBACKs
    pub = publisher(next(n for n in c.nodes if n is not victim))
    try:
        infos = []
        for i in range(600):  # ~3 s at one message per 5 ms; the kill at message 100
            infos.append(pub.publish("firedamp/mine-a/b1/alert", f"m{i}".encode(), qos=1))
            if i == 100:
                victim.kill()
            time.sleep(0.005)
        for info in infos:
            info.wait_for_publish(15)
        acked = {f"m{i}".encode() for i, info in enumerate(infos) if info.is_published()}
        assert len(acked) == 600
    finally:
        pub.loop_stop()
        pub.disconnect()
    c.wait_stream_current("ours")
    in_ours = set(stream_payloads([n.url for n in c.up()], "ours"))
    in_mqtt = set(consumer_payloads([n.url for n in c.up()], MQTT_STREAM, "probe"))
    lost = acked - in_ours
    print(f"acknowledged {len(acked)}; missing from our stream {len(lost)}; missing from $MQTT_msgs "
          f"{len(acked - in_mqtt)}")
    assert acked <= in_mqtt, "the MQTT stream keeps every acknowledged message"
    assert lost, "a stream of ours lost acknowledged messages when its leader died"
