"""An MQTT subscriber that receives what the broker delivers: the demo's alert feed, the tests' and the bench's.

One paho wrapper for all of them, so each gets the same care: subscribe in `on_connect` (a reconnect renews the
subscription), return only after the SUBACK, wait on a condition rather than by polling with sleeps.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import paho.mqtt.client as mqtt

from edge.errors import BrokerError


def topic_payload_retain(msg: mqtt.MQTTMessage) -> tuple[str, bytes, bool]:
    """The default record of a message: (topic, payload bytes, retain flag)."""
    return msg.topic, bytes(msg.payload), bool(msg.retain)


class Subscriber:
    """A paho client subscribed to `topics` (QoS 1). Each message goes to `on_message(topic, payload)` if given,
    and `record(msg)` (unless None, or when it returns None) is appended to `messages`, in arrival order.

    `persistent=True` connects with clean_session=False (give a fixed `client_id`): a persistent broker then
    keeps the QoS 1 messages published while the subscriber was away. `ca_file` turns on TLS. Raises
    BrokerError when the broker cannot be reached or no SUBACK comes within `timeout` seconds.
    """

    def __init__(self, host: str, port: int, topics: Iterable[str] = ("#",), *,
                 record: Callable[[mqtt.MQTTMessage], Any] | None = topic_payload_retain,
                 on_message: Callable[[str, bytes], None] | None = None, client_id: str | None = None,
                 username: str | None = None, password: str | None = None, ca_file: str | os.PathLike | None = None,
                 persistent: bool = False, keepalive: int = 30, timeout: float = 10.0):
        self.messages: list[Any] = []
        self.received = 0
        self.topics = list(topics)
        self.cond = threading.Condition()
        self._record = record
        self._on_message = on_message
        self._subscribed = threading.Event()
        cid = client_id or f"firedamp-sub-{os.getpid()}-{id(self)}"
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, clean_session=not persistent)
        self.client.reconnect_delay_set(1, 1)
        if username:
            self.client.username_pw_set(username, password)
        if ca_file:
            self.client.tls_set(ca_certs=str(ca_file))
        self.client.on_connect = self._connected
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._message
        where = f"the MQTT broker at {host}:{port}"
        try:
            self.client.connect(host, port, keepalive=keepalive)
        except OSError as exc:
            raise BrokerError(f"cannot reach {where}: {exc}") from exc
        self.client.loop_start()
        if not self._subscribed.wait(timeout):
            self.close()
            raise BrokerError(f"{where} did not accept a subscription to {', '.join(self.topics)} within {timeout:g} s")

    def _connected(self, client, userdata, flags, rc, props) -> None:
        if not rc.is_failure:
            client.subscribe([(t, 1) for t in self.topics])

    def _message(self, client, userdata, msg) -> None:
        if self._on_message is not None:
            self._on_message(msg.topic, msg.payload)
        item = self._record(msg) if self._record is not None else None
        with self.cond:
            self.received += 1
            if item is not None:
                self.messages.append(item)
            self.cond.notify_all()

    def snapshot(self) -> list[Any]:
        """A copy of `messages` as they are now."""
        with self.cond:
            return list(self.messages)

    def wait(self, pred: Callable[[list[Any]], Any], timeout: float = 10.0) -> Any:
        """Wait until pred(messages) is truthy and return its value; on timeout its last (falsy) value. pred runs
        on each message and at least every 0.1 s (it may also look at something other than the messages)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                value = pred(self.messages)
                left = deadline - time.monotonic()
                if value or left <= 0:
                    return value
                self.cond.wait(min(left, 0.1))

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
