"""Where the control room's messages come from: one small pull interface, MQTT on one machine.

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


def open_source(cfg) -> Source:
    return MqttSource(cfg)
