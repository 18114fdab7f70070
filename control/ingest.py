"""The ingest: source → messages → store → live pages, in one thread.

Each round takes a batch of deliveries, checks every message (control/messages.py: bad ones are counted and
dropped with a logged reason), stores the good ones in one transaction, and only then acknowledges the whole
batch to the broker. If the store cannot be written, the same batch is retried (with a growing pause, loud in
the log) and nothing is acknowledged: the broker keeps it.
"""

from __future__ import annotations

import logging
import threading
import time

from control.live import Hub
from control.messages import Checker
from control.source import Source
from control.store import Store, StoreError

log = logging.getLogger("firedamp.control")

_BATCH = 2000  # deliveries per transaction


class Ingest:
    def __init__(self, source: Source, store: Store, hub: Hub, prefix: str, clock=time.time):
        self.source = source
        self.store = store
        self.hub = hub
        self.checker = Checker(prefix)
        self.clock = clock
        self.batches = 0
        self.stored = 0
        self.duplicates = 0
        self.store_errors = 0
        self.last_error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Ingest:
        self._thread = threading.Thread(target=self._run, name="ingest", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self.source.fetch(_BATCH, timeout=0.2)
            if batch:
                self.handle(batch)

    def handle(self, batch) -> bool:
        """Check, store, then acknowledge one batch; retried while the store fails. False if stopped first."""
        msgs = [m for d in batch if (m := self.checker.check(d.topic, d.payload, d.retained)) is not None]
        pause = 0.1
        while True:
            try:
                changes = self.store.apply(msgs, self.clock())
                break
            except StoreError as exc:
                self.store_errors += 1
                self.last_error = str(exc)
                if self.store_errors == 1 or pause >= 5:
                    log.error("STORE %s: batch of %d message(s) not stored, not acknowledged; retrying", exc,
                              len(batch))
                if self._stop.wait(pause):
                    return False
                pause = min(pause * 2, 5.0)
        self.source.ack(batch)
        self.batches += 1
        self.stored += len(msgs)
        self.duplicates += changes.duplicates
        self.hub.publish(changes)
        return True
