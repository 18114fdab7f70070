"""An MQTT subscriber for the demo: receives the alerts from the broker, as a control room would."""

from __future__ import annotations

import threading
from collections.abc import Callable

import paho.mqtt.client as mqtt

from edge.errors import BrokerError


class AlertSubscriber:
    """Subscribes to `topic` (QoS 1) and hands each message's (topic, payload) to `on_alert`."""

    def __init__(self, host: str, port: int, topic: str, on_alert: Callable[[str, bytes], None]):
        self.received = 0
        self._on_alert = on_alert
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="firedamp-demo-subscriber")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self._subscribed.set()
        self.client.on_message = self._message
        try:
            self.client.connect(host, port, keepalive=30)
        except OSError as exc:
            raise BrokerError(f"cannot reach the MQTT broker at {host}:{port}: {exc}") from exc
        self.client.loop_start()
        if not self._subscribed.wait(10):
            self.close()
            raise BrokerError(f"the MQTT broker at {host}:{port} did not accept a subscription to {topic}")

    def _message(self, client, userdata, msg) -> None:
        self.received += 1
        self._on_alert(msg.topic, msg.payload)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
