"""Live updates for open pages: the ingest and the watcher publish what changed; each page's event stream
(server-sent events, /live) takes it from its own bounded queue. A page that falls behind is told to reload
instead of being sent a backlog (and nothing waits on it)."""

from __future__ import annotations

import queue
import threading

from control.store import Changes

_PER_PAGE = 1000  # change sets queued for one page


class Hub:
    def __init__(self) -> None:
        self._pages: set[queue.Queue] = set()
        self._lock = threading.Lock()
        self.published = 0
        self.overflows = 0

    def subscribe(self) -> queue.Queue:
        q: queue.Queue = queue.Queue(_PER_PAGE)
        with self._lock:
            self._pages.add(q)
        return q

    def unsubscribe(self, q: queue.Queue) -> None:
        with self._lock:
            self._pages.discard(q)

    @property
    def pages(self) -> int:
        return len(self._pages)

    def publish(self, changes: Changes) -> None:
        if not changes:
            return
        self.published += 1
        with self._lock:
            pages = list(self._pages)
        for q in pages:
            try:
                q.put_nowait(changes)
            except queue.Full:
                self.overflows += 1
                with q.mutex:  # the page reloads everything: drop its backlog, leave one marker
                    q.queue.clear()
                q.put_nowait(None)
