"""The edge service: wires link → frames → windows → detector → policy → outbox → publisher (+ history).

`firedamp run --config edge.toml` runs it until SIGTERM/SIGINT (then: flush, publish `offline`, close).
In-process use (the demo): `svc = Service(config); q = svc.observe(); svc.start(); ...; svc.stop()`;
`observe()` returns a bounded queue of `Observation(kind, data)` with kind "reading" (data: dict with the
reading, its model result or None and the arrival time), "alert" (a policy.Alert), "link" (port, up,
detail) or "frame" (board events and console replies). `add_observer(fn)` calls fn(kind, data) instead.

Threads: one reader per port → a bounded queue → one pipeline thread (parse, score, alert, commit to the
outbox) → the MQTT sender thread; the history writer has its own bounded queue.
"""

from __future__ import annotations

import argparse
import logging
import os
import queue
import signal
import sqlite3
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from edge import __version__, payloads
from edge.config import Config, load
from edge.errors import ConfigError
from edge.frames import Decoder, Reading
from edge.history import History, HistoryWriter
from edge.link import PortReader
from edge.outbox import Outbox
from edge.policy import Alert, Policy, iso
from edge.publisher import Publisher

log = logging.getLogger("firedamp")

_INGEST_QUEUE = 20_000  # lines; ~100 s of 8 boards at 1 Hz with room for bursts
_BATCH = 512  # lines handled per pipeline round (one batched model call, one outbox commit)
_MAX_UNSAVED = 10_000  # alerts held in memory while the outbox cannot be written


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
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.started = time.time()
        self.decoder = Decoder()
        self.detector = None
        self.windows = None
        if cfg.model.enabled:
            from edge.detector import Detector
            from edge.windows import Windows

            self.detector = Detector(cfg.model.path or None, threads=cfg.model.threads)
            self.windows = Windows(self.detector.spec, self.detector.new_state, cfg.policy.max_gap_samples)
        self.outbox = _open_store("outbox", cfg.outbox_path,
                                  lambda: Outbox(cfg.outbox_path, cfg.outbox.max_alerts, cfg.outbox.fsync))
        version = self.detector.spec.version if self.detector else ""
        self.policy = Policy(cfg.site, cfg.edge_id, cfg.policy, version, self.outbox.load_state())
        self.publisher = Publisher(cfg, self.outbox, self.health)
        self.history = (HistoryWriter(_open_store("history", cfg.history_path, lambda: History(
            cfg.history_path, cfg.history.raw_days, cfg.history.minute_days))) if cfg.history.enabled else None)
        if self.history:  # frames lost and reboots while the service was down are counted on the first frame
            self.decoder.seed(self.history.history.last_seqs())
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
        self.queue_dropped = 0
        self.observer_errors = 0
        self._unsaved: list[Alert] = []  # raised while the outbox could not be written; stored when it can
        self.unsaved_dropped = 0
        self._observers: list[Callable[[str, Any], None]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._states: dict[str, tuple] = {}
        self._links: dict[str, bool] = {}
        self._forecast_ok = bool(self.detector and self.detector.spec.forecast_feature == "ch4"
                                 and self.detector.spec.units[self.detector.spec.forecast_index].replace(" ", "").lower()
                                 in ("%vol", "vol%"))

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
            log.error("OUTBOX %s still cannot be written: %d alert(s) held in memory end with this process (they "
                      "were sent once, best effort)", self.outbox.path, len(self._unsaved))
        if self.history:
            self.history.stop()
        self.publisher.stop()
        if self.metrics:
            self.metrics.stop()
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
            self.q.put(item, timeout=1.0)  # back-pressure on the reader first; drop only if stuck for a second
        except queue.Full:
            self.queue_dropped += 1
            if self.queue_dropped in (1, 100) or self.queue_dropped % 10_000 == 0:
                log.error("ingest queue full: %d line(s) dropped (pipeline stalled?)", self.queue_dropped)

    def _on_line(self, port: str, line: bytes, t: float) -> None:
        self._put((port, line, t))

    def _on_status(self, port: str, up: bool, detail: str) -> None:
        (log.info if up else log.warning)("serial %s: %s", port, "open" if up else detail)
        self._put((port, up, time.time(), detail))

    # ------------------------------------------------------------------------------------------ pipeline

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
            try:
                alerts = self.process(items)
                if time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + 1.0
                    alerts += self.policy.tick(time.time())
                self._commit(alerts)
            except Exception:
                log.exception("pipeline: unexpected error on a batch of %d item(s) (continuing)", len(items))

    def _commit(self, alerts: list[Alert]) -> None:
        """Store new alerts (and any held back) in the outbox with the policy state, then log and show them.
        If the outbox cannot be written (disk full or remounted read-only), no alert is lost: they are held in
        memory (bounded, loud), sent at once without the outbox, and stored as soon as a write succeeds."""
        rows = self._unsaved + alerts
        if not rows:
            return
        state = self.policy.saved_state()
        try:
            self.outbox.put([(a.id, self.publisher.alert_topic(a.device), a.to_json(), a.time) for a in rows], state)
        except sqlite3.Error as exc:
            self.policy.dirty.update(key.split(":", 1)[1] for key in state)  # saved with the next write
            if not self._unsaved:
                log.error("OUTBOX %s cannot be written (%s): alerts are held in memory and sent without it, and "
                          "stored as soon as it can be written (disk full or read-only?)", self.outbox.path, exc)
            over = len(rows) - _MAX_UNSAVED
            if over > 0:
                self.unsaved_dropped += over
                log.error("OUTBOX unwritable for long: dropped the %d oldest alert(s) held in memory (%d in total)",
                          over, self.unsaved_dropped)
            self._unsaved = rows[max(0, over):]
            for a in alerts:
                self.publisher.send_unsaved(self.publisher.alert_topic(a.device), a.to_json())
        else:
            if self._unsaved:
                log.info("outbox writable again: %d alert(s) held in memory are stored", len(self._unsaved))
            self._unsaved = []
            self.publisher.notify()
        for a in alerts:
            (log.warning if a.state == "raised" and a.severity != "info" else log.info)(
                "alert %s %s %s [%s]: %s", a.kind, a.state, a.device, a.severity, a.message)
            self._emit("alert", a)
        for device in {a.device for a in alerts}:
            self._publish_state(device)

    def process(self, items: list[tuple]) -> list[Alert]:
        """One batch of (port, line, t) and (port, up, t, detail) items → alerts (not yet committed)."""
        alerts: list[Alert] = []
        due: list[tuple[Any, list[float]]] = []
        due_readings: list[tuple[Reading, float]] = []
        readings: list[tuple[Reading, float]] = []
        policy = self.policy
        for item in items:
            if len(item) == 4:
                port, up, t, detail = item
                self._links[port] = up
                alerts += policy.on_link(port, up, detail, t)
                self._emit("link", (port, up, detail))
                continue
            port, line, t = item
            frame = self.decoder.decode(line)
            if frame is None:
                continue
            gap = self.decoder.track(frame, port)
            if self.history:
                self.history.seen(frame.device, frame.seq, frame.uptime_ms)
            alerts += policy.on_frame(frame.device, port, t)
            if gap.lost or gap.rebooted:
                alerts += policy.on_gap(frame.device, gap, t, frame if frame.type == "R" else None)
                if gap.rebooted and self.windows:
                    self.windows.streams.pop(frame.device, None)
            if frame.type != "R":
                self._emit("frame", frame)
                if frame.type == "E":
                    self.publisher.event(frame.device, payloads.event(frame, t))
                continue
            alerts += policy.on_reading(frame, t)
            readings.append((frame, t))
            if self.history:
                self.history.put(frame, t)
            if self.windows:
                sample = self.windows.add(frame)
                if sample is not None:
                    due.append(sample)
                    due_readings.append((frame, t))
        scores: dict[int, Any] = {}
        if due:
            for (r, t), res in zip(due_readings, self.detector.score(due), strict=True):
                scores[id(r)] = res
                alerts += policy.on_score(r.device, res, t, self._forecast_ok and r.unit == "VOL")
        telemetry = self.publisher.wants_telemetry()
        for r, t in readings:
            res = scores.get(id(r))
            if telemetry:
                self.publisher.telemetry(r.device, payloads.telemetry(r, t, res))
            self.publisher.device_seen(r.device, r.unit, r.flow_unit)
            self._publish_state(r.device)
            self._emit("reading", {"reading": r, "result": res, "time": t})
        # the model scores a whole batch in one call after the board alerts of that batch were made: put the
        # advisory alerts back among them in frame-time order (stable: one frame's board alerts stay first)
        alerts.sort(key=lambda a: a.time)
        return alerts

    def _publish_state(self, device: str) -> None:
        r = self.policy.last.get(device)
        st = self.policy.devices.get(device)
        active = sorted(k for k, on in (st.active.items() if st else ()) if on)
        link_up = not (st and st.active.get("link"))
        key = (r.state, r.relay, r.faults, r.flags, r.unit, r.flow_unit) if r else None, link_up, tuple(active)
        if self._states.get(device) == key:
            return
        self._states[device] = key
        self.publisher.state(device, payloads.state(device, self.cfg.site, self.cfg.edge_id, time.time(), r,
                                                    link_up, active))

    # ------------------------------------------------------------------------------------------ health

    def health(self) -> dict[str, Any]:
        d = self.decoder
        det = self.detector
        return {
            "edge": self.cfg.edge_id, "site": self.cfg.site, "version": __version__, "time": iso(time.time()),
            "uptime_s": round(time.time() - self.started),
            "frames_ok": d.ok, "frames_rejected": dict(d.rejected), "frames_lost": d.lost_frames,
            "reboots": d.reboots,
            "links": {r.port: r.stats.up for r in self.readers}, "no_boards": not self.readers,
            "link_reconnects": sum(r.stats.reconnects for r in self.readers),
            "link_partial_lines_dropped": sum(r.stats.partial_lines_dropped for r in self.readers),
            "model_version": det.spec.version if det else None,
            "inference_calls": det.calls if det else 0,
            "inference_us_mean": round(det.mean_inference_us, 1) if det else 0.0,
            "samples_scored": det.samples if det else 0,
            "readings_unscored_units": self.windows.unscored if self.windows else 0,
            "alerts_raised": self.policy.raised, "outbox_depth": self.outbox.depth,
            "outbox_dropped": self.outbox.dropped, "alerts_acked": self.publisher.counters["alerts_acked"],
            "alerts_refused": self.publisher.counters["alerts_refused"],
            "mqtt_connects": self.publisher.counters["connects"],
            "mqtt_connect_failures": self.publisher.counters["connect_failures"],
            "mqtt_last_error": self.publisher.last_error or None,
            "ingest_queue": self.q.qsize(), "ingest_dropped": self.queue_dropped,
            "history_dropped": self.history.dropped if self.history else 0,
            "alerts_unsaved": len(self._unsaved), "alerts_unsaved_dropped": self.unsaved_dropped,
        }


# ---------------------------------------------------------------------------------------------- `firedamp run`

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = textwrap.fill(
        "Run the edge service: read every sensor board listed in edge.toml over serial, check each frame, "
        "score the readings with the anomaly model (advisory only), keep a local history, and publish "
        "telemetry, board state and alerts over MQTT. Alerts are stored on disk until the broker has them, "
        "so none is lost while the broker or network is down. The settings in effect are logged at start "
        "(passwords never). Normally started by systemd (deploy/firedamp.service).")
    p.epilog = ("Stops cleanly on Ctrl-C or SIGTERM (systemctl stop firedamp): sends waiting alerts, publishes\n"
                "`offline`, closes.  Example:  firedamp run --config /etc/firedamp/edge.toml\n"
                "Topics and payloads: docs/mqtt.md.  Example config: deploy/edge.toml.")
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--config", default="/etc/firedamp/edge.toml",
                   help="the edge.toml to use (default: /etc/firedamp/edge.toml; see deploy/edge.toml)")
    p.add_argument("--log-level", default=None, choices=["debug", "info", "warning", "error"],
                   help="override log_level from the config")


def setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper()), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("paho").setLevel(logging.WARNING)


def run(args: argparse.Namespace) -> int:
    cfg = load(args.config)
    setup_logging(args.log_level or cfg.log_level)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("%s received: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    svc = Service(cfg)
    svc.start()
    try:
        while not stop.wait(1.0):
            pass
    finally:
        svc.stop()
    return 0
