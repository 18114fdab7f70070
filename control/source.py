"""Where the control room's messages come from: one small pull interface, MQTT on one machine, JetStream for a fleet.

`fetch()` hands over a batch of deliveries; `ack()` tells the broker they are stored. A delivery is
acknowledged only after the store has committed it (paho's manual acknowledgement), and the control room's
MQTT session is persistent, so a message the control room had not stored when it died is delivered again.
The queue between paho's thread and the ingest is bounded: when the store is slow, paho stops reading the
socket and the broker holds the messages (back-pressure, never a drop).
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
from abc import ABC, abstractmethod
from typing import NamedTuple

log = logging.getLogger("firedamp.control")

_QUEUE = 20_000  # deliveries between paho's network thread and the ingest


class Delivery(NamedTuple):
    topic: str
    payload: bytes
    retained: bool
    token: object  # what ack() needs (MQTT: (mid, qos))


class Source(ABC):
    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def fetch(self, max_items: int, timeout: float) -> list[Delivery]:
        """Up to max_items deliveries; waits at most `timeout` s for the first."""

    @abstractmethod
    def ack(self, deliveries: list[Delivery]) -> None:
        """The deliveries are stored: the broker may forget them."""

    @abstractmethod
    def stop(self) -> None: ...

    @property
    @abstractmethod
    def connected(self) -> bool: ...

    def describe(self) -> str:
        return type(self).__name__


class MqttSource(Source):
    """Subscribes to `<prefix>/#` with QoS 1 in a persistent session (fixed client id) on one broker."""

    def __init__(self, cfg):
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        s = cfg.source
        self.cfg = cfg
        self.prefix = s.topic_prefix
        self._q: queue.Queue[Delivery] = queue.Queue(_QUEUE)
        self._connected = threading.Event()
        self.connects = 0
        self.last_error = ""
        self._v5 = s.protocol == "5"
        kw = {"protocol": mqtt.MQTTv5} if self._v5 else {"protocol": mqtt.MQTTv311, "clean_session": False}
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=s.client_id, manual_ack=True, **kw)
        self.client.reconnect_delay_set(min(1.0, s.reconnect_max_s), s.reconnect_max_s)
        if s.username:
            self.client.username_pw_set(s.username, cfg.password())
        if s.tls:
            ctx = ssl.create_default_context(cafile=s.ca_file or None)
            self.client.tls_set_context(ctx)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    def describe(self) -> str:
        s = self.cfg.source
        return f"MQTT {s.protocol} {'TLS ' if s.tls else ''}{s.host}:{s.port} topics {self.prefix}/# (QoS 1, " \
               f"persistent session {s.client_id!r})"

    def start(self) -> None:
        s = self.cfg.source
        props = None
        if self._v5:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 7 * 86400  # the broker keeps our queue for a week of downtime
            self.client.connect_async(s.host, s.port, keepalive=s.keepalive_s, clean_start=False, properties=props)
        else:
            self.client.connect_async(s.host, s.port, keepalive=s.keepalive_s)
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, rc, props) -> None:
        if rc.is_failure:
            self.last_error = f"broker refused the connection: {rc}"
            log.error("MQTT %s", self.last_error)
            return
        self.connects += 1
        self._connected.set()
        client.subscribe(f"{self.prefix}/#", qos=1)
        log.info("MQTT connected to %s:%s (session present: %s)", self.cfg.source.host, self.cfg.source.port,
                 getattr(flags, "session_present", None))

    def _on_disconnect(self, client, userdata, flags, rc, props) -> None:
        self._connected.clear()
        if rc.is_failure:
            self.last_error = f"disconnected: {rc}"
            log.warning("MQTT %s (reconnecting)", self.last_error)

    def _on_message(self, client, userdata, msg) -> None:
        # blocks paho's thread when the ingest is behind: TCP back-pressure, nothing dropped
        self._q.put(Delivery(msg.topic, bytes(msg.payload), bool(msg.retain), (msg.mid, msg.qos)))

    def fetch(self, max_items: int, timeout: float) -> list[Delivery]:
        try:
            out = [self._q.get(timeout=timeout)]
        except queue.Empty:
            return []
        while len(out) < max_items:
            try:
                out.append(self._q.get_nowait())
            except queue.Empty:
                break
        return out

    def ack(self, deliveries: list[Delivery]) -> None:
        for d in deliveries:
            mid, qos = d.token  # type: ignore[misc]
            if qos:
                self.client.ack(mid, qos)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def backlog(self) -> int:
        return self._q.qsize()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# ------------------------------------------------------------------------------------------------ JetStream

MQTT_STREAM = "$MQTT_msgs"  # NATS 2.9's own stream of every MQTT QoS 1 publish (tests/control/test_nats_delivery.py)
MQTT_SUBJECT = "$MQTT.msgs."  # ... under this prefix + the message's NATS subject
_PULL = 500  # messages per pull request
_HEALTH_S = 5.0  # how often the streams' replicas are checked
_HEALTH_GRACE_S = 10.0  # a replica behind this long is reported: a busy follower catches up within seconds
_AHEAD = 1000  # fetched but not yet handed to the ingest: kept small, each one's ack_wait is running


class JetStreamSource(Source):
    """Pulls from a NATS cluster through one durable consumer per stream, shared by every control-room replica.

    Why two streams (docs/fleet.md "Delivery through NATS", measured by tests/control/test_nats_delivery.py):
    NATS 2.9 sends an MQTT PUBACK only after the QoS 1 message is stored, with a quorum, in its own replicated
    stream `$MQTT_msgs`; a stream of ours over the same subjects receives a plain copy that nobody confirms, and
    loses it while its leader is being re-elected. So the messages the edge's outbox counts on (QoS 1: alerts,
    state, status, events) are consumed straight from `$MQTT_msgs` (interest retention: our durable consumer
    holds each one until a replica acknowledges it), and only what the edges send with QoS 0 (telemetry, health:
    the edge promises nothing for them) comes through `[source] stream`, which is made if missing (3 replicas,
    file storage, a day of messages).

    JetStream keeps no MQTT retained messages for a newcomer's consumer: `<stream>_last` keeps the last message
    of each state and status subject (max_msgs_per_subject = 1); when the shared consumer is created (the
    control room's first start) it is read once and handed over flagged retained, as a broker's retained copies
    are. After that the durable consumer delivers everything, including what arrived while no replica ran.

    nats-py is asyncio: its loop runs in a thread of its own; fetch()/ack() are synchronous calls into it.
    """

    def __init__(self, cfg):
        import asyncio

        s = cfg.source
        self.cfg = cfg
        self.prefix = s.topic_prefix
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="jetstream", daemon=True)
        self._q: queue.Queue[Delivery] = queue.Queue()
        self._ready = threading.Event()
        self._stopping = False
        self._nc = None
        self._tasks: list = []
        self.last_error = ""
        self.redelivered = 0  # deliveries JetStream had handed out before (another replica died, or ack lost)
        self.snapshot = 0  # retained copies read from <stream>_last at the first start
        self.problems: list[str] = []  # the cluster's streams not fully replicated now (docs/fleet.md "disk full")
        self._since: dict[tuple[str, str], float] = {}

    def describe(self) -> str:
        s = self.cfg.source
        return (f"JetStream {', '.join(s.servers)}: {MQTT_STREAM} ({MQTT_SUBJECT}{self.prefix}.>) and {s.stream} "
                f"(QoS 0 subjects), durable consumer {s.durable!r}, ack_wait {s.ack_wait_s:g} s")

    # ---------------------------------------------------------------------------------- sync side
    def start(self) -> None:
        import asyncio

        self._thread.start()
        self._tasks.append(asyncio.run_coroutine_threadsafe(self._run(), self._loop))

    def fetch(self, max_items: int, timeout: float) -> list[Delivery]:
        try:
            out = [self._q.get(timeout=timeout)]
        except queue.Empty:
            return []
        while len(out) < max_items:
            try:
                out.append(self._q.get_nowait())
            except queue.Empty:
                break
        return out

    def ack(self, deliveries: list[Delivery]) -> None:
        import asyncio

        msgs = [d.token for d in deliveries if d.token is not None]
        if not msgs:
            return
        fut = asyncio.run_coroutine_threadsafe(self._ack(msgs), self._loop)
        try:
            fut.result(30)
        except Exception as exc:  # not acknowledged: JetStream redelivers after ack_wait; the store ignores repeats
            self.last_error = f"ack failed: {exc!r}"
            log.warning("JetStream %s (%d message(s) will be redelivered)", self.last_error, len(msgs))

    @property
    def connected(self) -> bool:
        return self._ready.is_set() and bool(self._nc and self._nc.is_connected)

    @property
    def backlog(self) -> int:
        return self._q.qsize()

    def stop(self) -> None:
        import asyncio

        self._stopping = True
        if self._thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(10)
            except Exception as exc:
                log.warning("JetStream close: %r", exc)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    # ---------------------------------------------------------------------------------- the loop's side
    def _topic(self, subject: str) -> str:
        if subject.startswith(MQTT_SUBJECT):
            subject = subject[len(MQTT_SUBJECT):]
        return subject.replace(".", "/")  # MQTT a/b/c is NATS a.b.c (NATS refuses '.' in MQTT topics)

    async def _run(self) -> None:
        import asyncio

        import nats

        s = self.cfg.source
        pause = 0.5
        while not self._stopping:
            try:
                self._nc = await nats.connect(
                    servers=s.servers, name=f"firedamp-control-room {s.durable}", max_reconnect_attempts=-1,
                    reconnect_time_wait=min(1.0, s.reconnect_max_s), connect_timeout=5, allow_reconnect=True,
                    user=s.username or None, password=self.cfg.password() or None if s.username else None,
                    error_cb=self._on_error, disconnected_cb=self._on_disconnect, reconnected_cb=self._on_reconnect)
                break
            except Exception as exc:
                self.last_error = f"cannot connect to {', '.join(s.servers)}: {exc!r}"
                log.error("JetStream %s (retrying)", self.last_error)
                await asyncio.sleep(pause)
                pause = min(pause * 2, s.reconnect_max_s)
        while not self._stopping:
            try:
                subs = await self._setup()
                break
            except Exception as exc:  # e.g. no JetStream leader yet, or no MQTT client has connected yet
                self.last_error = f"setting up streams and consumers: {exc!r}"
                log.warning("JetStream %s (retrying)", self.last_error)
                await asyncio.sleep(1.0)
        else:
            return
        self._ready.set()
        log.info("JetStream consuming %s", self.describe())
        self._tasks += [asyncio.ensure_future(self._pull(sub, name)) for name, sub in subs]
        self._tasks.append(asyncio.ensure_future(self._watch()))

    async def _setup(self):
        from nats.js import api
        from nats.js.errors import NotFoundError

        s = self.cfg.source
        js = self._nc.jetstream(timeout=5)
        p = self.prefix
        try:
            await js.stream_info(MQTT_STREAM)
        except NotFoundError:
            raise RuntimeError(f"{MQTT_STREAM} does not exist yet: NATS makes it when the first MQTT client "
                               "connects (is MQTT enabled on the cluster?)") from None
        await self._stream(js, api.StreamConfig(
            name=s.stream, subjects=[f"{p}.*.*.telemetry", f"{p}.*.*.health"], num_replicas=3,
            storage=api.StorageType.FILE, retention=api.RetentionPolicy.LIMITS, max_age=86400.0,
            description="firedamp: the edges' QoS 0 messages (telemetry, health)"))
        await self._stream(js, api.StreamConfig(
            name=f"{s.stream}_last", subjects=[f"{p}.*.*.state", f"{p}.*.*.status"], num_replicas=3,
            storage=api.StorageType.FILE, max_msgs_per_subject=1,
            description="firedamp: the last state/status per subject (what MQTT retains)"))
        first = False
        try:
            await js.consumer_info(MQTT_STREAM, s.durable)
        except NotFoundError:
            first = True
        for stream, filt in ((MQTT_STREAM, f"{MQTT_SUBJECT}{p}.>"), (s.stream, None)):
            try:
                await js.consumer_info(stream, s.durable)
            except NotFoundError:
                await js.add_consumer(stream, api.ConsumerConfig(
                    durable_name=s.durable, filter_subject=filt, ack_policy=api.AckPolicy.EXPLICIT,
                    ack_wait=s.ack_wait_s, max_ack_pending=20_000, max_deliver=-1,
                    deliver_policy=api.DeliverPolicy.ALL))
                log.info("JetStream: made the durable consumer %r on %s", s.durable, stream)
        if first:
            await self._read_snapshot(js)
        return [(MQTT_STREAM, await js.pull_subscribe_bind(s.durable, MQTT_STREAM)),
                (s.stream, await js.pull_subscribe_bind(s.durable, s.stream))]

    async def _stream(self, js, config) -> None:
        from nats.js.errors import NotFoundError

        try:
            info = await js.stream_info(config.name)
            if info.config.subjects != config.subjects:
                log.warning("JetStream stream %s exists with subjects %s (expected %s): using it as it is",
                            config.name, info.config.subjects, config.subjects)
        except NotFoundError:
            await js.add_stream(config)
            log.info("JetStream: made the stream %s over %s", config.name, ", ".join(config.subjects))

    async def _read_snapshot(self, js) -> None:
        """The last state/status of each board and edge, flagged retained (nothing to acknowledge)."""
        import nats.errors
        from nats.js import api

        name = f"{self.cfg.source.stream}_last"
        info = await js.stream_info(name)
        if not info.state.messages:
            return
        sub = await js.pull_subscribe("", stream=name, config=api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.LAST_PER_SUBJECT, ack_policy=api.AckPolicy.NONE,
            inactive_threshold=30.0))
        left = info.state.messages
        try:
            while left > 0:
                try:
                    msgs = await sub.fetch(min(left, _PULL), timeout=2)
                except nats.errors.TimeoutError:
                    break
                for m in msgs:
                    self._q.put(Delivery(self._topic(m.subject), bytes(m.data), True, None))
                    self.snapshot += 1
                left -= len(msgs)
        finally:
            await sub.unsubscribe()
        log.info("JetStream: %d retained state/status message(s) read from %s", self.snapshot, name)

    async def _pull(self, sub, name: str) -> None:
        import asyncio

        import nats.errors

        while not self._stopping:
            if self._q.qsize() >= _AHEAD:  # the ingest is behind: leave the messages in JetStream (back-pressure)
                await asyncio.sleep(0.02)
                continue
            try:
                msgs = await sub.fetch(_PULL, timeout=1.0)
            except nats.errors.TimeoutError:
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # disconnected, leader election, ...: nats-py reconnects; pull again
                self.last_error = f"pull from {name}: {exc!r}"
                log.warning("JetStream %s", self.last_error)
                await asyncio.sleep(0.5)
                continue
            for m in msgs:
                md = m.metadata
                if md.num_delivered and md.num_delivered > 1:
                    self.redelivered += 1
                self._q.put(Delivery(self._topic(m.subject), bytes(m.data), False, m))

    async def _watch(self) -> None:
        import asyncio

        while not self._stopping:
            try:
                await self._check(self._nc.jetstream(timeout=5))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never let the check stop: it is what makes a sick node loud
                log.warning("JetStream health check: %r", exc)
            await asyncio.sleep(_HEALTH_S)

    async def _check(self, js) -> None:
        """Every replica of the streams we depend on current? A node whose disk is full disables its JetStream
        (NATS: "out of File resources"): the other two keep the quorum and nothing is lost, but the cluster
        has lost its spare, and only this shows it (a replica not current, its lag growing)."""
        import time

        s = self.cfg.source
        seen: dict[tuple[str, str], str] = {}
        for name in (MQTT_STREAM, s.stream, f"{s.stream}_last"):
            try:
                cl = (await js.stream_info(name)).cluster
            except Exception as exc:
                seen[(name, "?")] = f"stream {name} cannot be read: {exc!r}"
                continue
            if cl is None:  # a single server: no replicas to lose
                continue
            if not cl.leader:
                seen[(name, "")] = f"stream {name} has no leader"
            for r in cl.replicas or []:
                if r.offline:
                    seen[(name, r.name)] = f"stream {name}: its replica on node {r.name} is offline"
                elif not r.current:
                    seen[(name, r.name)] = (f"stream {name}: its replica on node {r.name} is not current ({r.lag or 0} "
                                            "behind): that node's JetStream is down or stuck (disk full? see its log)")
        now = time.monotonic()
        self._since = {k: self._since.get(k, now) for k in seen}
        problems = sorted(text for k, text in seen.items() if now - self._since[k] >= _HEALTH_GRACE_S)
        before = {p.split(" (")[0] for p in self.problems}
        for p in problems:
            if p.split(" (")[0] not in before:
                log.error("NATS CLUSTER DEGRADED: %s", p)
        if self.problems and not problems:
            log.info("NATS cluster: every replica current again")
        self.problems = problems

    async def _ack(self, msgs) -> None:
        for m in msgs:
            await m.ack()
        await self._nc.flush(timeout=10)

    async def _close(self) -> None:
        import asyncio

        pulls = [t for t in self._tasks if isinstance(t, asyncio.Task)]
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*pulls, return_exceptions=True)
        if self._nc is not None:
            try:
                await self._nc.close()
            except Exception:
                pass

    async def _on_error(self, exc) -> None:
        self.last_error = repr(exc)
        log.warning("JetStream connection: %r", exc)

    async def _on_disconnect(self) -> None:
        if not self._stopping:
            log.warning("JetStream disconnected (reconnecting to another server)")

    async def _on_reconnect(self) -> None:
        log.info("JetStream reconnected to %s", self._nc.connected_url.netloc if self._nc.connected_url else "?")


def open_source(cfg) -> Source:
    if cfg.source.kind == "jetstream":
        return JetStreamSource(cfg)
    return MqttSource(cfg)
