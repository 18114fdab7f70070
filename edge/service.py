"""The edge service: wires link → frames → windows → detector → policy → outbox → publisher (+ history).

`firedamp run --config edge.toml` (edge/commands/run.py) runs it until SIGTERM/SIGINT (then: flush, publish
`offline`, close).
In-process use (the demo): `svc = Service(config); q = svc.observe(); svc.start(); ...; svc.stop()`;
`observe()` returns a bounded queue of `Observation(kind, data)` with kind "reading" (data: dict with the
reading, its model result or None and the arrival time), "alert" (a policy.Alert), "link" (port, up,
detail) or "frame" (A frames, board events and console replies). `add_observer(fn)` calls fn(kind, data)
instead.

Threads: one reader per port → a bounded queue → one pipeline thread (edge/pipeline.py makes every decision:
parse, score, alert; this module commits its alerts to the outbox and hands the rest out) → the MQTT sender
thread; the history writer has its own bounded queue.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from edge import __version__
from edge.config import Config
from edge.errors import ConfigError
from edge.history import History, HistoryWriter
from edge.link import PortReader
from edge.outbox import Outbox
from edge.pipeline import Batch, LinkChange, Overflow, Pipeline
from edge.policy import Alert
from edge.publisher import Publisher
from firedamp.times import iso

log = logging.getLogger("firedamp")

_INGEST_QUEUE = 20_000  # lines; ~100 s of 8 boards at 1 Hz with room for bursts
_BATCH = 512  # lines handled per pipeline round (one batched model call, one outbox commit)


def _open_store(section: str, path: Any, open_: Callable[[], Any]) -> Any:
    """Open the outbox or history database; a path that cannot be used is a ConfigError naming it. A file
    that is not a readable SQLite database (e.g. an SD card damaged by a power cut) is moved aside, loudly,
    and a fresh one is started: a monitor that refuses to start would report nothing at all."""
    try:
        return open_()
    except sqlite3.DatabaseError as exc:
        if not Path(path).is_file() or isinstance(exc, sqlite3.OperationalError):
            raise ConfigError(f"cannot open the {section} database {path}: {exc} (check data_dir and [{section}] "
                              "path, and that the service's user may write there)") from exc
        aside = f"{path}.damaged-{time.strftime('%Y%m%dT%H%M%S')}"
        for suffix in ("", "-wal", "-shm"):
            if Path(f"{path}{suffix}").exists():
                os.replace(f"{path}{suffix}", f"{aside}{suffix}")
        log.error("the %s database %s is damaged (%s): moved to %s and starting a fresh one%s", section, path, exc,
                  aside, "; alerts that were waiting in it are not sent" if section == "outbox" else "")
        try:
            return open_()
        except (OSError, sqlite3.Error) as exc2:
            raise ConfigError(f"cannot open the {section} database {path}: {exc2}") from exc2
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(f"cannot open the {section} database {path}: {getattr(exc, 'strerror', None) or exc} "
                          f"(check data_dir and [{section}] path, and that the service's user may write there)") from exc


class Observation(NamedTuple):
    kind: str  # "reading", "alert", "link", "frame"
    data: Any


class Service:
    """Threads, queues and lifecycle around the pipeline (edge/pipeline.py), which makes every decision."""

    ingest_wait_s = 1.0  # a full ingest queue holds the reader back this long before a line is dropped

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.started = time.time()
        detector = None
        if cfg.model.enabled:
            from edge.detector import Detector

            detector = Detector(cfg.model.path or None, threads=cfg.model.threads)
        self.outbox = _open_store("outbox", cfg.outbox_path,
                                  lambda: Outbox(cfg.outbox_path, cfg.outbox.max_alerts, cfg.outbox.fsync))
        self.history = (HistoryWriter(_open_store("history", cfg.history_path, lambda: History(
            cfg.history_path, cfg.history.raw_days, cfg.history.minute_days))) if cfg.history.enabled else None)
        # frames lost and reboots while the service was down are counted on each board's first frame: its last
        # sequence number is stored with the alerts (older versions kept it in the history database)
        saved = self.outbox.load_state()
        seqs = self.history.history.last_seqs() if self.history else {}
        seqs.update((k[4:], tuple(json.loads(v))) for k, v in saved.items() if k.startswith("seq:"))
        self.pipeline = Pipeline(cfg, detector, saved, seqs)
        self.publisher = Publisher(cfg, self.outbox, self.health)
        self.metrics = None
        if cfg.metrics.enabled:
            from edge.metrics import MetricsServer

            try:
                self.metrics = MetricsServer(cfg.metrics.host, cfg.metrics.port, self.health)
            except OSError as exc:
                raise ConfigError(f"[metrics] cannot listen on {cfg.metrics.host}:{cfg.metrics.port}: "
                                  f"{exc.strerror}") from exc
        self.q: queue.Queue = queue.Queue(_INGEST_QUEUE)
        self.readers = [PortReader(b.port, self._on_line, self._on_status, baudrate=b.baudrate) for b in cfg.boards]
        self.modbus = None
        if cfg.modbus.enabled:
            from edge.modbus import ModbusServer

            ups = {r.port: r.stats for r in self.readers}
            self.modbus = ModbusServer(cfg, lambda port: ups[port].up)
        self.queue_dropped = 0
        self._dropped: dict[str, int] = {}  # port -> lines dropped at the full ingest queue (reader threads)
        self._overflow_told: dict[str, tuple[int, float]] = {}  # port -> (dropped, when) in the last alert
        self._overflowing = False
        self.observer_errors = 0
        self._unsaved: list[Alert] = []  # the outbox raised unexpectedly: kept for the next round
        self._seqs: dict[str, tuple[int, int]] = {}  # device -> last (seq, uptime_ms), stored with the next commit
        self._states: list[tuple[str, dict]] = []  # retained states to publish after the next commit
        self._observers: list[Callable[[str, Any], None]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # the stages, for tools and tests that read their counters
    decoder = property(lambda self: self.pipeline.decoder)
    policy = property(lambda self: self.pipeline.policy)
    detector = property(lambda self: self.pipeline.detector)
    windows = property(lambda self: self.pipeline.windows)
    # ------------------------------------------------------------------------------------------ lifecycle

    def start(self) -> Service:
        for line in self.cfg.describe():
            log.info("setting %s", line)
        if self.detector:
            log.info("%s", self.detector.describe())
        else:
            log.warning("model disabled ([model] enabled = false): no advisory scoring; board alarms are reported")
        if self.history:
            self.history.start()
        self.publisher.start()
        if self.metrics:
            self.metrics.start()
        self._thread = threading.Thread(target=self._run, name="pipeline", daemon=True)
        self._thread.start()
        if self.modbus:
            self.modbus.start()
        for r in self.readers:
            r.start()
        log.info("firedamp edge %s started: edge %r at site %r, %d board port(s)", __version__, self.cfg.edge_id,
                 self.cfg.site, len(self.readers))
        if not self.readers:  # a safety monitor watching nothing must not look like one that sees all is well
            log.warning("NO BOARDS: the config has no [[boards]] section, so this edge monitors NOTHING (health "
                        "no_boards = true); add one [[boards]] with port = \"/dev/serial/by-id/...\" per sensor board")
        return self

    def stop(self) -> None:
        """Stop reading, finish the queued lines, flush alerts and history, publish `offline`, close."""
        for r in self.readers:
            r.stop()
        self._stop.set()
        if self._thread:
            self._thread.join(10)
        if self._unsaved:
            log.error("OUTBOX %s: %d alert(s) could not be stored and end with this process", self.outbox.path,
                      len(self._unsaved))
        if self.history:
            self.history.stop()
        self.publisher.stop()
        if self.metrics:
            self.metrics.stop()
        if self.modbus:
            self.modbus.stop()
        self.outbox.close()
        log.info("firedamp edge stopped")

    def wait_ready(self, timeout: float = 5.0, mqtt: bool = True) -> bool:
        """True once every serial port is open (and MQTT connected, if `mqtt`); False after `timeout` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(r.stats.up for r in self.readers) and (self.publisher.connected or not mqtt):
                return True
            time.sleep(0.01)
        return False

    def observe(self, maxsize: int = 10_000) -> queue.Queue:
        """A bounded queue of Observation items for a live view (items are dropped when it is full)."""
        q: queue.Queue = queue.Queue(maxsize)

        def put(kind: str, data: Any) -> None:
            try:
                q.put_nowait(Observation(kind, data))
            except queue.Full:
                pass

        self._observers.append(put)
        return q

    def add_observer(self, fn: Callable[[str, Any], None]) -> None:
        self._observers.append(fn)

    def write(self, port: str, data: bytes) -> None:
        """Send bytes to a board (console commands typed by a person; the service itself never does)."""
        for r in self.readers:
            if r.port == port:
                r.write(data)
                return
        raise KeyError(port)

    # ------------------------------------------------------------------------------------------ link callbacks

    def _put(self, item: tuple) -> None:
        try:
            if self._overflowing:  # already dropping: no second of waiting per line (the port would back up)
                self.q.put_nowait(item)
            else:
                self.q.put(item, timeout=self.ingest_wait_s)  # back-pressure on the reader first
            self._overflowing = False
        except queue.Full:
            self._overflowing = True
            self.queue_dropped += 1
            self._dropped[item[0]] = self._dropped.get(item[0], 0) + 1
            if self.queue_dropped in (1, 100) or self.queue_dropped % 10_000 == 0:
                log.error("ingest queue full: %d line(s) dropped (pipeline stalled?)", self.queue_dropped)

    def _on_line(self, port: str, line: bytes, t: float) -> None:
        self._put((port, line, t))

    def _on_status(self, port: str, up: bool, detail: str) -> None:
        (log.info if up else log.warning)("serial %s: %s", port, "open" if up else detail)
        self._put(LinkChange(port, up, time.time(), detail))

    def _overflows(self, t: float) -> list[Overflow]:
        """Lines dropped at the full queue since the last report, per port (one alert per hold-off)."""
        out = []
        for port, n in list(self._dropped.items()):
            told, when = self._overflow_told.get(port, (0, -1e18))
            if n > told and t - when >= self.cfg.policy.frames_lost_holdoff_s:
                out.append(Overflow(port, n - told, t))
                self._overflow_told[port] = (n, t)
        return out

    # ------------------------------------------------------------------------------------------ pipeline thread

    def _emit(self, kind: str, data: Any) -> None:
        for fn in self._observers:
            try:
                fn(kind, data)
            except Exception:
                self.observer_errors += 1
                if self.observer_errors == 1:
                    log.exception("observer failed (further failures are only counted)")

    def _run(self) -> None:
        next_tick = time.monotonic() + 1.0
        while True:
            try:
                items = [self.q.get(timeout=0.2)]
            except queue.Empty:
                items = []
                if self._stop.is_set():
                    break
            while items and len(items) < _BATCH:
                try:
                    items.append(self.q.get_nowait())
                except queue.Empty:
                    break
            alerts: list[Alert] = []
            try:
                tick = time.monotonic() >= next_tick
                if tick:
                    next_tick = time.monotonic() + 1.0
                    items += self._overflows(time.time())
                alerts = self.process(items)
                if tick:
                    alerts += self._deliver(self.pipeline.tick(time.time()))
            except Exception:  # the pipeline guards each frame itself; this is a last resort, never a loss
                log.exception("pipeline: unexpected error on a batch of %d item(s) (its alerts are kept)", len(items))
            self._commit(alerts, tick)
        # the last frames' sequence numbers too, or a restart would read the outbox's older ones over the
        # history's and count frames as lost that were processed
        self._commit([], tick=True)

    def process(self, items: list[Any]) -> list[Alert]:
        """One batch of (port, line, t) tuples, LinkChange and Overflow items → the alerts to commit; telemetry,
        events and history go out at once, retained states after the commit."""
        pub = self.publisher
        self.pipeline.telemetry = bool(pub.cfg.mqtt.telemetry and pub.connected)  # as pub.telemetry() would decide
        self.pipeline.observe = bool(self._observers)
        return self._deliver(self.pipeline.run(items, time.time()))

    def _deliver(self, batch: Batch) -> list[Alert]:
        """Hand a batch's telemetry, events, history rows and observations out; its alerts are returned for
        the commit whatever happens here."""
        try:
            self._hand_out(batch)
        except Exception:
            log.exception("pipeline: handing out telemetry/history of a batch failed (its alerts are kept)")
        return batch.alerts

    def _hand_out(self, batch: Batch) -> None:
        self._seqs.update(batch.seqs)
        if self.history:
            for r, t in batch.history:
                self.history.put(r, t)
        if (batch.telemetry or batch.telemetry_unbuilt) and self.publisher.wants_telemetry():
            for device, payload in batch.telemetry:
                self.publisher.telemetry(device, payload)
            # MQTT came up while this batch ran without payloads: those readings were skipped
            self.publisher.counters["telemetry_skipped"] += batch.telemetry_unbuilt
        for device, payload in batch.aux:  # built only while telemetry goes out (Pipeline.telemetry)
            self.publisher.aux(device, payload)
        for device, unit, flow_unit in batch.devices:
            self.publisher.device_seen(device, unit, flow_unit)
        for device, std_unit, pt, battery in batch.aux_devices:
            self.publisher.aux_seen(device, std_unit, pt, battery)
        for device, payload in batch.events:
            self.publisher.event(device, payload)
        for kind, data in batch.observations:
            self._emit(kind, data)
        if self.modbus and (batch.snapshots or batch.aux_snapshots):
            self.modbus.publish(batch.snapshots, self._advisory, batch.aux_snapshots)
        self._states += batch.states

    def _commit(self, alerts: list[Alert], tick: bool = False) -> None:
        """Store new alerts in the outbox with the policy state and each board's last sequence number (one
        transaction), then log and show them. Disk trouble is the outbox's to handle (it holds them, never
        loses them); an unexpected error keeps them here and they are stored on the next round."""
        rows = self._unsaved + alerts
        if rows or (tick and (self._seqs or self.outbox.unwritten)):
            state = self.policy.saved_state()
            state.update((f"seq:{d}", json.dumps(v)) for d, v in self._seqs.items())
            try:
                self.outbox.put([(a.id, self.publisher.alert_topic(a.device), a.to_json(), a.time) for a in rows],
                                state)
            except Exception:
                self.policy.dirty.update(key.split(":", 1)[1] for key in state if key.startswith("device:"))
                if not self._unsaved:
                    log.exception("OUTBOX: storing %d alert(s) failed unexpectedly; kept, retried next round", len(rows))
                self._unsaved = rows
            else:
                self._unsaved = []
                self._seqs = {}
                self.publisher.notify()
        for a in alerts:
            (log.warning if a.state == "raised" and a.severity != "info" else log.info)(
                "alert %s %s %s [%s]: %s", a.kind, a.state, a.device, a.severity, a.message)
            self._emit("alert", a)
        states, self._states = self._states, []
        for device, payload in states:
            self.publisher.state(device, payload)

    def _advisory(self, device: str) -> bool:
        """A model alert (anomaly or forecast) is raised for this board now (the Modbus advisory register)."""
        st = self.pipeline.policy.devices.get(device)
        return bool(st and (st.active.get("anomaly") or st.active.get("forecast")))

    # ------------------------------------------------------------------------------------------ health

    def health(self) -> dict[str, Any]:
        p = self.pipeline.health()
        return {
            "edge": self.cfg.edge_id, "site": self.cfg.site, "version": __version__, "time": iso(time.time()),
            "uptime_s": round(time.time() - self.started),
            "frames_ok": p["frames_ok"], "frames_rejected": p["frames_rejected"], "frames_lost": p["frames_lost"],
            "reboots": p["reboots"],
            "links": {r.port: r.stats.up for r in self.readers}, "no_boards": not self.readers,
            "link_reconnects": sum(r.stats.reconnects for r in self.readers),
            "link_partial_lines_dropped": sum(r.stats.partial_lines_dropped for r in self.readers),
            "model_version": p["model_version"], "inference_calls": p["inference_calls"],
            "inference_us_mean": p["inference_us_mean"], "samples_scored": p["samples_scored"],
            "readings_unscored_units": p["readings_unscored_units"],
            "pipeline_errors": p["pipeline_errors"], "score_errors": p["score_errors"],
            "alerts_raised": p["alerts_raised"], "outbox_depth": self.outbox.depth,
            "outbox_dropped": self.outbox.dropped, "alerts_acked": self.publisher.counters["alerts_acked"],
            "alerts_refused": self.publisher.counters["alerts_refused"],
            "mqtt_broker": self.publisher.broker, "mqtt_connected": self.publisher.connected,
            "mqtt_broker_switches": self.publisher.counters["broker_switches"],
            "mqtt_connects": self.publisher.counters["connects"],
            "mqtt_connect_failures": self.publisher.counters["connect_failures"],
            "mqtt_last_error": self.publisher.last_error or None,
            "ingest_queue": self.q.qsize(), "ingest_dropped": self.queue_dropped,
            "history_dropped": self.history.dropped if self.history else 0,
            "alerts_unsaved": self.outbox.held + len(self._unsaved), "alerts_unsaved_dropped": self.outbox.held_dropped,
            **(self.modbus.health() if self.modbus else {"modbus_requests": {}, "modbus_exceptions": {},
                                                         "modbus_connections": 0, "modbus_connections_closed": 0}),
        }
