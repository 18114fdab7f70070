"""Silence is never normal: the watcher turns quiet boards and edges into "no data" and raises alerts for them.

Once a second it compares every board's last telemetry (the control room's own clock: when it arrived here)
with `[stale] board_silent_s`, and every edge's last message with `edge_silent_s` and its `online/offline`
status (the edge's last will). Then:
- an edge that is offline or silent: one `edge_offline` alert (critical) for the edge, and all its boards show
  no data with that reason;
- a board silent while its edge is heard: a `no_data` alert (critical) for that board;
- a board whose edge reports its serial link down: no data at once (the edge raised its own `link` alert).
- the source reports a problem of the broker itself (JetStream: a stream's replica not current, e.g. a node's
  disk full): one `broker` alert (critical, site "nats", edge "cluster") listing them.
Each clears (with its own cleared message) when data comes back. A control room that has just started gives
every board `board_silent_s` to be heard before calling it silent.
"""

from __future__ import annotations

import logging
import threading
import time

from control.live import Hub
from control.messages import Alert
from control.store import Store, StoreError
from control.store.sqlite import new_id

log = logging.getLogger("firedamp.control")

EDGE_KINDS = ("edge_offline",)
BOARD_KINDS = ("no_data",)
BROKER_KIND = "broker"  # the source reports a problem of the broker itself (a NATS stream not fully replicated)
BROKER_SITE, BROKER_EDGE = "nats", "cluster"  # what a broker alert is about (it belongs to no site or edge)


def _ago(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


class Watcher:
    def __init__(self, store: Store, hub: Hub, board_silent_s: float, edge_silent_s: float, clock=time.time,
                 problems=lambda: []):
        self.store = store
        self.problems = problems
        self.hub = hub
        self.board_silent_s = board_silent_s
        self.edge_silent_s = edge_silent_s
        self.clock = clock
        self.started = clock()
        self.raised = 0
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Watcher:
        self._thread = threading.Thread(target=self._run, name="watcher", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(10)

    def _run(self) -> None:
        last_prune = 0.0
        while not self._stop.wait(1.0):
            try:
                self.tick()
                if self.clock() - last_prune > 60:
                    last_prune = self.clock()
                    self.store.prune(last_prune)
            except StoreError as exc:
                self.errors += 1
                if self.errors == 1 or self.errors % 60 == 0:
                    log.error("watcher: %s (retrying every second)", exc)

    def _alert(self, site: str, edge: str, device: str, kind: str, state: str, now: float, message: str) -> Alert:
        return Alert(new_id(), site, edge, device, kind, "critical", state, now, False, message, None, {},
                     source="control-room")

    def tick(self) -> None:
        now = self.clock()
        since_start = now - self.started
        edges_down: dict[tuple[str, str], str] = {}
        for e in self.store.edges():
            heard = e["heard_at"] or 0.0
            if e["online"] is False:
                edges_down[(e["site"], e["edge"])] = f"edge {e['edge']} is offline (its last will or a clean stop)"
            elif since_start > self.edge_silent_s and now - heard > self.edge_silent_s:
                edges_down[(e["site"], e["edge"])] = f"nothing heard from edge {e['edge']} for " \
                                                     f"{_ago(now - heard)}"
        marks: dict[tuple[str, str], str | None] = {}
        silent: dict[tuple[str, str], tuple[str, str]] = {}
        for b in self.store.boards():
            key = (b["site"], b["device"])
            heard = b["heard_at"] or 0.0
            reason = None
            if b["edge"] and (b["site"], b["edge"]) in edges_down:
                reason = edges_down[(b["site"], b["edge"])]
            elif since_start > self.board_silent_s and now - heard > self.board_silent_s:
                reason = f"no telemetry for {_ago(now - heard)}" if b["heard_at"] else \
                    "no telemetry since the control room started"
                silent[key] = (b["edge"] or "", reason)
            elif b["link"] == "down":
                reason = "the edge hears nothing from this board (serial link down)"
            if reason != b["nodata"]:
                marks[key] = reason
        # open control-room alerts, keyed by what they are about: ("edge", site, edge) or ("board", site, device)
        open_: dict[tuple[str, str, str], dict] = {}
        for a in self.store.alerts(active=True, limit=100_000):
            if a["source"] == "control-room":
                open_[("broker", a["site"], a["edge"]) if a["kind"] == BROKER_KIND else
                      ("edge", a["site"], a["edge"]) if a["kind"] == "edge_offline" else
                      ("board", a["site"], a["device"])] = a
        out: list[Alert] = []
        problems = self.problems()
        broker = ("broker", BROKER_SITE, BROKER_EDGE)
        if problems and broker not in open_:
            out.append(self._alert(BROKER_SITE, BROKER_EDGE, "", BROKER_KIND, "raised", now,
                                   "NATS cluster degraded: " + "; ".join(problems)))
        elif not problems and broker in open_:
            out.append(self._alert(BROKER_SITE, BROKER_EDGE, "", BROKER_KIND, "cleared", now,
                                   "NATS cluster: every stream fully replicated again"))
        for (site, edge), reason in edges_down.items():
            if ("edge", site, edge) not in open_:
                out.append(self._alert(site, edge, "", "edge_offline", "raised", now,
                                       f"{reason}: its boards show no data"))
        for (what, site, name), a in open_.items():
            if what == "edge" and (site, name) not in edges_down:
                out.append(self._alert(site, name, "", "edge_offline", "cleared", now, f"edge {name} heard again"))
            elif what == "board" and (site, name) not in silent:
                covered = (site, a["edge"]) in edges_down
                out.append(self._alert(site, a["edge"], name, "no_data", "cleared", now,
                                       f"{name}: covered by its edge's alert" if covered else f"{name}: telemetry again"))
        for (site, device), (edge, reason) in silent.items():
            if ("board", site, device) not in open_:
                out.append(self._alert(site, edge, device, "no_data", "raised", now, f"{device}: {reason}"))
        ch = self.store.set_nodata(marks, now)
        if out:
            ch.merge(self.store.apply(out, now))
            self.raised += sum(a.state == "raised" for a in out)
            for a in out:
                (log.warning if a.state == "raised" else log.info)("control-room alert %s %s %s/%s: %s", a.kind,
                                                                   a.state, a.site, a.device or a.edge, a.message)
        self.hub.publish(ch)
