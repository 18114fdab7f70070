"""Publisher stage: decides topics and retention and talks MQTT (paho-mqtt 2.x); alerts come from the outbox.

Topics (docs/mqtt.md has every payload and its schema), `P` = [mqtt] topic_prefix:
  P/<site>/<device>/telemetry   QoS 0   every reading (+ model score)
  P/<site>/<device>/aux         QoS 0   every A frame (pressure, temperature, standard flow, battery)
  P/<site>/<device>/alert       QoS 1   alerts, from the SQLite outbox, deleted on PUBACK
  P/<site>/<device>/state       QoS 1, retained   board state, link, active alerts
  P/<site>/<device>/event       QoS 1   board events (BOOT, CAL, SET, ...)
  P/<site>/<edge>/status        QoS 1, retained   `online`; last will and clean stop `offline`
  P/<site>/<edge>/health        QoS 0, retained   counters, every status_interval_s
  <discovery_prefix>/...        retained   Home Assistant discovery, re-sent when HA announces itself

One sender thread owns the outbox → broker path: it publishes unsent alerts in order (at most
max_inflight at a time) and deletes each one when its PUBACK arrives. paho's callbacks only queue the
acknowledged message ids (on_publish runs under paho's own lock), so nothing here can deadlock. paho
reconnects with its backoff (`reconnect_delay_set`) and resends in-flight messages itself.

Several brokers (`[mqtt] servers`): paho's reconnect goes to the next address after a failed attempt or a
lost connection (chosen in on_pre_connect); its backoff grows only once every address has failed in turn.
Alerts the old broker had not acknowledged are resent to the new one by paho, then the outbox continues.
"""

from __future__ import annotations

import json
import logging
import queue
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge.config import Config, join_server
from edge.outbox import Outbox, OutboxError

log = logging.getLogger("firedamp.mqtt")


def explain(exc: BaseException, cfg: Config, where: str | None = None) -> str:
    """A connection error at broker `where` ("host:port"; default: the first one) → a sentence a technician
    can act on (never containing a password)."""
    m = cfg.mqtt
    where = where or join_server(*m.brokers[0])
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"TLS: the certificate of {where} cannot be verified ({exc.verify_message}); "
                f"check [mqtt] ca_file = {m.ca_file or '<system store>'!r} and the broker's host name")
    if isinstance(exc, ssl.SSLError) or (m.tls and isinstance(exc, ConnectionResetError | BrokenPipeError)):
        reason = getattr(exc, "reason", None) or exc.strerror or exc
        return f"TLS handshake with {where} failed ({reason}); is that port a TLS listener?"
    if isinstance(exc, ConnectionRefusedError):
        return f"nothing accepts connections on {where} (broker down or wrong [mqtt] port)"
    if isinstance(exc, TimeoutError | OSError) and "timed out" in str(exc):
        return f"connecting to {where} timed out"
    return f"cannot connect to {where}: {exc}"


class _Client(mqtt.Client):
    """paho's client, reporting why a (re)connect attempt failed (paho itself swallows the exception)."""

    on_attempt_failed: Callable[[BaseException], None] | None = None

    def reconnect(self) -> mqtt.MQTTErrorCode:
        try:
            return super().reconnect()
        except Exception as exc:
            if self.on_attempt_failed:
                self.on_attempt_failed(exc)
            raise


class Publisher:
    resend_after_s = 60.0  # an in-flight alert unacknowledged this long after a connect is sent again

    def __init__(self, cfg: Config, outbox: Outbox, health: Callable[[], dict[str, Any]] | None = None):
        self.cfg = cfg
        m = cfg.mqtt
        self.outbox = outbox
        self.health = health or (lambda: {})
        self.base = f"{m.topic_prefix}/{cfg.site}"
        self.status_topic = f"{self.base}/{cfg.edge_id}/status"
        self.health_topic = f"{self.base}/{cfg.edge_id}/health"
        self.connected = False
        self.last_error = ""
        self.counters = {"alerts_sent": 0, "alerts_acked": 0, "alerts_refused": 0, "connects": 0, "connect_failures": 0,
                         "telemetry_sent": 0, "telemetry_skipped": 0, "aux_sent": 0, "alerts_not_queued": 0, "broker_switches": 0}
        self.brokers = m.brokers
        self._broker_i = 0  # index into brokers: the one connected to, or being tried (paho's thread moves it)
        self._move_on = False  # the last attempt failed or the connection was lost: the next goes elsewhere
        self._failures_in_round = 0  # failed attempts since the last good connect
        self._acks: queue.SimpleQueue[tuple[int, str]] = queue.SimpleQueue()  # (mid, "" or refusal reason)
        self._refused_until = 0.0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._inflight: dict[int, int] = {}  # paho mid -> outbox seq
        self._inflight_t: dict[int, float] = {}  # paho mid -> when handed to paho (monotonic)
        self._connected_at = 0.0  # paho resends in-flight messages at each connect: their clock restarts
        self._sent_upto = 0  # highest outbox seq handed to paho
        # At a (re)connect paho re-sends what was in flight, but only after on_connect returns, while this
        # sender thread may already publish newer alerts: those would reach the broker first. So at each
        # connect the alerts then in flight form a gate, and nothing newer is handed over until they are
        # acknowledged (or given up as stale and re-sent from the outbox in order).
        self._answered = False  # the broker sent a CONNACK (accepting or refusing) on the current attempt
        self._reconnected = False  # set by on_connect (paho's thread), taken by the sender thread
        self._gate: set[int] = set()  # paho mids in flight at the last connect
        self._states: dict[str, bytes] = {}  # device -> retained state payload (re-sent on connect)
        self._devices: dict[str, tuple[str, str]] = {}  # device -> (unit, flow_unit) for discovery
        self._aux: dict[str, tuple[str, bool, bool]] = {}  # device -> (std_unit, P/T input, battery): A frames
        self._discovered: dict[str, set[str]] = {}  # device -> discovery topics sent (to remove stale ones)
        self._discovery_due = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.client = self._make_client()

    # ------------------------------------------------------------------------------------------ set-up

    def _make_client(self) -> _Client:
        m = self.cfg.mqtt
        # MQTT 5: a PUBACK carries a reason code, so an alert the broker's ACL refuses is not taken as delivered
        # (with 3.1.1 Mosquitto acknowledges a denied publish and drops it silently)
        if m.protocol == "5":
            c = _Client(CallbackAPIVersion.VERSION2, client_id=self.cfg.client_id, protocol=mqtt.MQTTv5)
        else:
            c = _Client(CallbackAPIVersion.VERSION2, client_id=self.cfg.client_id, clean_session=True,
                        protocol=mqtt.MQTTv311)
        if m.username:
            c.username_pw_set(m.username, self.cfg.mqtt_password() or None)
        if m.tls:
            try:
                c.tls_set(ca_certs=m.ca_file or None, certfile=m.cert_file or None, keyfile=m.key_file or None,
                          cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
            except (ssl.SSLError, OSError) as exc:
                from edge.errors import ConfigError

                raise ConfigError(f"[mqtt] TLS files unusable: {exc}") from exc
            c.tls_insecure_set(False)
        c.will_set(self.status_topic, b"offline", qos=1, retain=True)
        c.reconnect_delay_set(min_delay=m.reconnect_min_s, max_delay=m.reconnect_max_s)  # (paho takes floats too)
        c.connect_timeout = m.connect_timeout_s  # TCP connect and TLS handshake
        c.max_inflight_messages_set(m.max_inflight)
        c.max_queued_messages_set(10_000)  # telemetry while a connection stalls: bounded
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        c.on_message = self._on_message
        c.on_connect_fail = self._on_connect_fail
        c.on_pre_connect = self._on_pre_connect
        c.on_attempt_failed = self._on_attempt_failed
        return c

    @property
    def broker(self) -> str:
        """"host:port" of the broker connected to (or being tried)."""
        return join_server(*self.brokers[self._broker_i])

    def start(self) -> None:
        m = self.cfg.mqtt
        spare = f" (then {', '.join(join_server(*b) for b in self.brokers[1:])} in turn)" if len(self.brokers) > 1 else ""
        log.info("MQTT: connecting to %s%s as %r%s%s", self.broker, spare, self.cfg.client_id,
                 " with TLS" if m.tls else " WITHOUT TLS", f", user {m.username!r}" if m.username else "")
        host, port = self.brokers[0]
        # connect in paho's thread: an unreachable or silent broker never holds up reading the boards; failures
        # are reported by _on_attempt_failed and retried with paho's backoff (MQTT 5: clean start on the first
        # connect only; paho resends in-flight alerts after a reconnect)
        self.client.connect_async(host, port, keepalive=m.keepalive_s)
        self.client.loop_start()
        self._thread = threading.Thread(target=self._run, name="mqtt sender", daemon=True)
        self._thread.start()

    def stop(self, flush_s: float = 3.0) -> None:
        """Flush unsent alerts (while connected, up to flush_s), publish `offline`, disconnect."""
        deadline = time.monotonic() + flush_s
        while self.connected and self.outbox.depth and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.02)
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(2)
        if self.connected:
            info = self.client.publish(self.status_topic, b"offline", qos=1, retain=True)
            try:
                info.wait_for_publish(2)
            except (RuntimeError, ValueError):
                pass
        self.client.disconnect()
        self.client.loop_stop()

    # ------------------------------------------------------------------------------------------ paho callbacks

    def _on_pre_connect(self, client, userdata) -> None:
        """paho is about to (re)connect: to the next broker if the last attempt failed or the link was lost."""
        if self._move_on and len(self.brokers) > 1:
            was = self.broker
            self._broker_i = (self._broker_i + 1) % len(self.brokers)
            self.counters["broker_switches"] += 1
            log.warning("MQTT: %s is not answering; trying %s (alerts wait in the outbox)", was, self.broker)
        self._move_on = False
        self._answered = False  # no CONNACK yet on this attempt
        # paho's public host/port setters refuse while "connecting", which it already is here; reconnect() opens its
        # socket from these two right after this hook (paho 2.x; the two-broker fault tests fail if that changes)
        client._host, client._port = self.brokers[self._broker_i]

    def _attempt_failed(self) -> None:
        self._move_on = True
        self._failures_in_round += 1
        if self._failures_in_round % len(self.brokers):
            # brokers not yet tried in this round: try the next after reconnect_min_s (resets paho's backoff),
            # so it grows only once every broker has failed
            m = self.cfg.mqtt
            self.client.reconnect_delay_set(min_delay=m.reconnect_min_s, max_delay=m.reconnect_max_s)

    def _on_attempt_failed(self, exc: BaseException) -> None:
        self.counters["connect_failures"] += 1
        msg = explain(exc, self.cfg, self.broker)
        if msg != self.last_error:
            log.error("MQTT: %s (retrying with backoff up to %g s)", msg, self.cfg.mqtt.reconnect_max_s)
        self.last_error = msg
        self._attempt_failed()

    def _on_connect_fail(self, client, userdata) -> None:
        pass  # _on_attempt_failed already said why

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self._answered = True
        if reason_code.is_failure:
            self.counters["connect_failures"] += 1
            self._attempt_failed()
            msg = f"the broker {self.broker} refused the connection: {reason_code}"
            if "password" in str(reason_code).lower() or "authori" in str(reason_code).lower():
                msg += " (check [mqtt] username and password / password_file, and the broker's ACL)"
            if msg != self.last_error:
                log.error("MQTT: %s", msg)
            self.last_error = msg
            return
        self._connected_at = time.monotonic()
        self._failures_in_round = 0
        self._reconnected = True  # before `connected`: the sender must see the gate first
        self.connected = True
        self.counters["connects"] += 1
        try:  # alerts are small packets: send them at once instead of waiting for Nagle's algorithm
            client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass
        if self.last_error:
            log.info("MQTT: connected to %s (was: %s)", self.broker, self.last_error)
        else:
            log.info("MQTT: connected to %s", self.broker)
        self.last_error = ""
        client.publish(self.status_topic, b"online", qos=1, retain=True)
        if self.cfg.mqtt.discovery:
            client.subscribe(f"{self.cfg.mqtt.discovery_prefix}/status", qos=1)  # renewed on every reconnect
            self._discovery_due.set()
        with self._lock:
            states = list(self._states.items())
        for device, payload in states:
            client.publish(self._topic(device, "state"), payload, qos=1, retain=True)
        self._wake.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self._stop.is_set():
            pass
        elif self.connected or self._answered:  # (a refused CONNACK was already counted in _on_connect)
            if self.connected:
                log.warning("MQTT: disconnected from %s (%s); alerts wait in the outbox", self.broker, reason_code)
            self._move_on = True  # the broker went away: with several, the next attempt goes to the next one
        else:
            # closed before its CONNACK (a broker that takes the connection and then refuses the session, or a
            # half-dead one): a failed attempt like any other, so the next one goes to the next server
            self.counters["connect_failures"] += 1
            msg = f"{self.broker} closed the connection before accepting it ({reason_code})"
            if msg != self.last_error:
                log.error("MQTT: %s (retrying with backoff up to %g s)", msg, self.cfg.mqtt.reconnect_max_s)
            self.last_error = msg
            self._attempt_failed()
        self.connected = False

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        refused = str(reason_code) if getattr(reason_code, "is_failure", False) else ""
        self._acks.put((mid, refused))  # runs under paho's lock: just hand the id over
        self._wake.set()

    def _on_message(self, client, userdata, msg) -> None:
        if msg.topic == f"{self.cfg.mqtt.discovery_prefix}/status" and msg.payload.strip() == b"online":
            log.info("Home Assistant came online: re-sending discovery")
            self._discovery_due.set()
            self._wake.set()

    # ------------------------------------------------------------------------------------------ sender thread

    def _run(self) -> None:
        next_health = time.monotonic() + 1.0
        while not self._stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            try:
                self._take_acks()
                if self.connected:
                    self._send_pending()
                    if self._discovery_due.is_set():
                        self._discovery_due.clear()
                        self._send_discovery()
                    if time.monotonic() >= next_health:
                        next_health = time.monotonic() + self.cfg.mqtt.status_interval_s
                        self.client.publish(self.health_topic, json.dumps(self.health()).encode(), qos=0, retain=True)
            except Exception:
                log.exception("MQTT sender: unexpected error (continuing)")
                time.sleep(0.5)
        self._take_acks()

    def _take_acks(self) -> None:
        done = []
        while True:
            try:
                mid, refused = self._acks.get_nowait()
            except queue.Empty:
                break
            seq = self._inflight.pop(mid, None)
            self._inflight_t.pop(mid, None)
            if seq is None:
                continue
            if refused:  # kept in the outbox and tried again later; loud, since nobody receives it meanwhile
                self.counters["alerts_refused"] += 1
                self._refused_until = time.monotonic() + self.cfg.mqtt.reconnect_max_s
                log.error("MQTT: the broker refused alert #%d (%s): check the broker's ACL for this user and "
                          "[mqtt] topic_prefix; it stays in the outbox and is retried in %g s", seq, refused,
                          self.cfg.mqtt.reconnect_max_s)
                continue
            done.append(seq)
        self.counters["alerts_acked"] += len(done)
        if done:
            self.outbox.remove(*done)  # (a delete the disk refuses is the outbox's to retry)

    def _send_pending(self) -> None:
        # safety net: an alert unacknowledged for long while connected is handed over again (same id), so a
        # message paho lost can never stall the outbox
        stale = time.monotonic() - self.resend_after_s
        for mid in [m for m, t in self._inflight_t.items() if max(t, self._connected_at) < stale]:
            log.warning("MQTT: alert #%d not acknowledged for %.0f s: sending it again", self._inflight.pop(mid),
                        time.monotonic() - self._inflight_t.pop(mid))
        if self._reconnected:
            self._reconnected = False
            self._gate = set(self._inflight)
        if self._gate:
            self._gate.intersection_update(self._inflight)
            if self._gate:
                return  # paho is re-sending older alerts: newer ones wait (per-board order on every broker)
        room = self.cfg.mqtt.max_inflight - len(self._inflight)
        if room <= 0:
            return
        if not self._inflight and time.monotonic() >= self._refused_until:
            self._sent_upto = 0  # nothing in flight: start over from the oldest unsent (refused ones included)
        try:
            items = self.outbox.pending(self._sent_upto, room)
        except OutboxError as exc:
            log.error("MQTT sender: %s (retrying)", exc)
            return
        for item in items:
            room -= 1
            info = self.client.publish(item.topic, item.payload, qos=1)
            # MQTT_ERR_NO_CONN: paho keeps it and sends it on reconnect; keep the mapping so its PUBACK removes it
            if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                # paho did not take it (its queue is full, or the message id is still in use): not in flight;
                # it stays in the outbox and is offered again next round
                self.counters["alerts_not_queued"] += 1
                self._wake.set()
                time.sleep(0.05)
                break
            if info.mid in self._inflight:  # paho's 16-bit message id came round while the old one is unacked:
                continue  # never remap it (a late PUBACK would remove the wrong alert); sent again when idle
            self._inflight[info.mid] = item.seq
            self._inflight_t[info.mid] = time.monotonic()
            self._sent_upto = item.seq
            self.counters["alerts_sent"] += 1

    # ------------------------------------------------------------------------------------------ publishing

    def _topic(self, device: str, leaf: str) -> str:
        return f"{self.base}/{device}/{leaf}"

    def alert_topic(self, device: str) -> str:
        return self._topic(device, "alert")

    def notify(self) -> None:
        """New alerts are in the outbox."""
        self._wake.set()

    def wants_telemetry(self) -> bool:
        if self.cfg.mqtt.telemetry and self.connected:
            return True
        self.counters["telemetry_skipped"] += 1
        return False

    def telemetry(self, device: str, payload: dict[str, Any]) -> None:
        self._qos0(device, "telemetry", "telemetry_sent", payload)

    def aux(self, device: str, payload: dict[str, Any]) -> None:
        """An A frame's values (QoS 0, not retained, like telemetry: the retained state carries the last ones)."""
        self._qos0(device, "aux", "aux_sent", payload)

    def _qos0(self, device: str, leaf: str, counter: str, payload: dict[str, Any]) -> None:
        """A telemetry-like message: QoS 0 while [mqtt] telemetry is on and connected (counted in `counter`),
        else counted as skipped."""
        if not (self.cfg.mqtt.telemetry and self.connected):
            self.counters["telemetry_skipped"] += 1
            return
        self.client.publish(self._topic(device, leaf), json.dumps(payload, separators=(",", ":")), qos=0)
        self.counters[counter] += 1

    def event(self, device: str, payload: dict[str, Any]) -> None:
        if self.connected:
            self.client.publish(self._topic(device, "event"), json.dumps(payload, separators=(",", ":")), qos=1)

    def state(self, device: str, payload: dict[str, Any]) -> None:
        data = json.dumps(payload, separators=(",", ":")).encode()
        with self._lock:
            if self._states.get(device) == data:
                return
            self._states[device] = data
        if self.connected:
            self.client.publish(self._topic(device, "state"), data, qos=1, retain=True)

    def device_seen(self, device: str, unit: str, flow_unit: str) -> None:
        """A device's units are known: (re)send its Home Assistant discovery if new or changed."""
        if self._devices.get(device) == (unit, flow_unit):
            return
        self._devices[device] = (unit, flow_unit)
        self._discovery_due.set()
        self._wake.set()

    def aux_seen(self, device: str, std_unit: str, pt: bool, battery: bool) -> None:
        """A device sends A frames (with a P/T input, a battery or both): its discovery gains those sensors."""
        if self._aux.get(device) == (std_unit, pt, battery):
            return
        self._aux[device] = (std_unit, pt, battery)
        if device in self._devices:  # otherwise they go out with its first reading's discovery
            self._discovery_due.set()
            self._wake.set()

    def _send_discovery(self) -> None:
        from edge.discovery import configs

        for device, (unit, flow_unit) in list(self._devices.items()):
            sent = set()
            for topic, payload in configs(self.cfg, device, unit, flow_unit, self.base, self.status_topic,
                                          self._aux.get(device)):
                self.client.publish(topic, json.dumps(payload, separators=(",", ":")), qos=1, retain=True)
                sent.add(topic)
            # an entity this edge announced that the board no longer has (its battery or P/T input gone from
            # its A frames): an empty retained config removes it from Home Assistant (and from the broker)
            for topic in sorted(self._discovered.get(device, set()) - sent):
                self.client.publish(topic, b"", qos=1, retain=True)
            self._discovered[device] = sent
