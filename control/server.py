"""The control room as one object: source → ingest → store, the watcher, the live hub and the web server.

`ControlRoom(cfg).start()` serves until `stop()`. In-process use (tests, the demo, the benchmarks) is the same
object the `firedamp control-room` command runs.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from control.app import App
from control.config import Config
from control.ingest import Ingest
from control.live import Hub
from control.source import Source, open_source
from control.store import Store, StoreError, open_store
from control.watch import Watcher
from control.web import Server
from edge.errors import ConfigError

log = logging.getLogger("firedamp.control")


class ControlRoom:
    def __init__(self, cfg: Config, store: Store | None = None, source: Source | None = None):
        self.cfg = cfg
        try:
            self.store = store or open_store(cfg)
        except StoreError as exc:
            raise ConfigError(f"{exc} (check [store] path, and that this user may write there)") from exc
        self.hub = Hub()
        self.source = source or open_source(cfg)
        self.ingest = Ingest(self.source, self.store, self.hub, cfg.source.topic_prefix)
        self.watcher = Watcher(self.store, self.hub, cfg.stale.board_silent_s, cfg.stale.edge_silent_s,
                               problems=lambda: list(getattr(self.source, "problems", [])))
        self.app = App(cfg, self.store, self.hub, self.counters)
        try:
            self.http = Server((cfg.web.host, cfg.web.port), self.app, cfg.web.threads_max)
        except OSError as exc:
            raise ConfigError(f"[web] cannot listen on {cfg.web.host}:{cfg.web.port}: {exc.strerror}") from exc
        self._http_thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.http.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> ControlRoom:
        for line in self.cfg.describe():
            log.info("setting %s", line)
        if not self.store.users():
            log.warning("no user can log in yet: add one with `firedamp control-room adduser NAME --role operator`")
        self.ingest.start()
        self.watcher.start()
        self.source.start()
        self._http_thread = threading.Thread(target=self.http.serve_forever, name="http", daemon=True)
        self._http_thread.start()
        log.info("control room serving %s; source %s", self.url, self.source.describe())
        return self

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()
        self.source.stop()
        self.ingest.stop()
        self.watcher.stop()
        self.store.close()
        log.info("control room stopped")

    def counters(self) -> dict[str, Any]:
        c = self.ingest.checker
        return {"source_connected": self.source.connected, "messages_accepted": c.accepted,
                "messages_ignored": c.ignored, "messages_rejected": dict(c.rejected),
                "batches_stored": self.ingest.batches, "alert_duplicates": self.ingest.duplicates,
                "store_errors": self.ingest.store_errors, "store_last_error": self.ingest.last_error or None,
                "source_problems": list(getattr(self.source, "problems", [])),
                "watcher_alerts_raised": self.watcher.raised, "live_overflows": self.hub.overflows,
                "http": dict(self.http.counters)}
