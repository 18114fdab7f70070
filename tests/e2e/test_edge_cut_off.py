"""Fault test 4: an edge cut off from every broker it knows, then back.

While cut off the edge keeps its alerts in its outbox, the control room's page shows its board as "no data",
and after the link is back the outbox drains (every alert stored once) and the board is live again. The path
between the edge and each broker address is a cuttable forwarder (tests/netcut.py): a cut drops the
connections and refuses every new one, so the edge tries each of its `[mqtt] servers` in turn and fails.

- `test_edge_cut_off_briefly_...`: the edge service in this process on a pty board, two server addresses
  (both to one Mosquitto), the control room with a 2 s no-data timeout, cut for a few seconds (make test).
- `test_fleet_edge_cut_off_from_every_node_for_60_s_...`: `firedamp fleet`'s processes (3-node NATS cluster,
  PostgreSQL, two replicas, real `firedamp run` edges on virtual boards); one edge reaches the three nodes
  only through cuttable paths, cut for 60 s while its story board alarms (make test-long).
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.control import kit
from tests.helpers import wait_until as wait
from tests.netcut import Cuttable

CUT_S = 4.0  # the short version's cut-off: twice its control room's no-data timeout (board_silent_s = 2)


class Board:
    """A board on a pty: one R frame every `period_s` in the state the test sets (NORMAL / ALARM)."""

    def __init__(self, pty, device: str = "cut-01", period_s: float = 0.1):
        self.pty, self.device, self.period_s = pty, device, period_s
        self.state = "NORMAL"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from edge.frames import Reading, format_reading

        seq = 0
        while not self._stop.wait(self.period_s):  # the board's own pace
            alarm = self.state == "ALARM"
            self.pty.write(format_reading(Reading(self.device, seq, 60_000 + 100 * seq, 1.25 if alarm else 0.3,
                                                  "VOL", 900.0, "m3/min", 0.25 * seq, self.state, 1, 0, 0)))
            seq += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def board_on_page(web, device: str) -> dict | None:
    return next((b for b in web.json("/index.json")["boards"] if b["device"] == device), None)


def test_edge_cut_off_briefly_keeps_its_alert_shows_no_data_then_drains_and_is_live(mosquitto, pty_pair, tmp_path):
    from edge.config import parse_config
    from edge.service import Service

    broker = mosquitto()
    room = kit.start(tmp_path / "room", broker, stale={"board_silent_s": 2, "edge_silent_s": 30})
    paths = [Cuttable(broker.host, broker.port) for _ in range(2)]
    pty = pty_pair()
    svc = Service(parse_config({
        "data_dir": str(tmp_path / "edge"), "site": "mine-a", "edge_id": "pi-cut", "boards": [{"port": pty.device}],
        "model": {"enabled": False}, "outbox": {"fsync": False},
        "mqtt": {"servers": [p.address for p in paths], "reconnect_min_s": 0.1, "reconnect_max_s": 0.5,
                 "discovery": False}}))
    board = None
    try:
        svc.start()
        board = Board(pty)
        web = kit.Web(room.http.server_address[1]).login("victor")
        wait(lambda: (b := board_on_page(web, "cut-01")) and b["data"] == "live", 20, "the board live on the page")

        for p in paths:
            p.cut()
        t_cut = time.time()
        wait(lambda: not svc.publisher.connected, 10, "the edge notices it is cut off")
        board.state = "ALARM"  # the board alarms while its edge reaches no broker
        wait(lambda: svc.outbox.depth >= 1, 10, "the alarm's alert kept in the outbox")
        wait(lambda: (b := board_on_page(web, "cut-01")) and b["data"] == "no data", 15,
             "the page shows the board as no data")
        wait(lambda: time.time() - t_cut >= CUT_S, CUT_S + 5, f"{CUT_S} s cut off")  # the fault's length
        gone = board_on_page(web, "cut-01")
        assert gone["data"] == "no data", "live again while cut off"
        assert svc.outbox.depth >= 1 and not room.store.alerts(device="cut-01")  # nothing reached the room
        switches = svc.publisher.counters["broker_switches"]
        assert switches >= 2, "the edge did not try its other server while cut off"
        for p in paths:
            p.mend()
        t_mend = time.time()
        print(f"cut off {t_mend - t_cut:.1f} s; page said: {gone['nodata_reason']}; the edge switched server "
              f"{switches} times meanwhile")

        wait(lambda: svc.outbox.depth == 0, 20, "the outbox drained")
        back = wait(lambda: (b := board_on_page(web, "cut-01")) and b["data"] == "live" and b, 20,
                    "the board live again on the page")
        assert back["state"] == "ALARM"
        alerts = wait(lambda: [a for a in room.store.alerts(device="cut-01") if a["source"] == "edge"], 10,
                      "the alarm stored")
        assert len(alerts) == 1 and alerts[0]["kind"] == "alarm"
        assert t_cut <= alerts[0]["raised_ts"] <= t_mend <= alerts[0]["received_at"]  # held, then delivered
    finally:
        if board is not None:
            board.stop()
        svc.stop()
        room.stop()
        for p in paths:
            p.close()


@pytest.mark.long  # ~2 min: make test-long; the short version above runs in make test
def test_fleet_edge_cut_off_from_every_node_for_60_s_then_drains_and_is_live(tmp_path):
    from control.fleet import SITE, Fleet
    from control.natscluster import MISSING, NATS_SERVER
    from control.pgserver import missing as pg_missing
    from control.watch import BOARD_KINDS, EDGE_KINDS  # the control room's own alerts (no_data, edge_offline)
    from tests.e2e.test_fleet_faults import Recorder

    pytest.importorskip("nats", reason="nats-py is not installed (pip install -e '.[fleet]')")
    if not NATS_SERVER:
        pytest.skip(MISSING)
    if why := pg_missing():
        pytest.skip(why)

    class CutFleet(Fleet):
        """edge-01 reaches the three nodes only through cuttable paths."""

        paths: list[Cuttable] = []

        def edge_data(self, e: int):
            data = super().edge_data(e)
            if e == 0:
                if not self.paths:
                    self.paths = [Cuttable(n.host, n.port) for n in self.cluster.nodes]
                data["mqtt"]["servers"] = [p.address for p in self.paths]
            return data

    # speed 2: the story's alarm (75 simulated s) comes ~37 s after the start, inside the 60 s cut
    fleet = CutFleet(tmp_path / "fleet", edges=2, boards=1, story=1, speed=2.0, store="postgresql",
                     control_port=0, model=False, note=print)
    rec: list[Recorder] = []
    try:
        fleet.start(before_edges=lambda fl: rec.append(Recorder(fl.cluster.nodes[1])))
        recorder = rec[0]
        dev = fleet.board_ids(0)[0]

        def state(device: str) -> dict | None:
            return next((b for b in fleet._store().boards() if b["site"] == SITE and b["device"] == device), None)

        def is_live(device: str) -> bool:
            b = state(device)
            return bool(b and b["heard_at"] and time.time() - b["heard_at"] <= fleet.board_silent_s
                        and not b["nodata"])

        wait(lambda: is_live(dev), 90, f"{dev} live")
        for p in fleet.paths:
            p.cut()
        t_cut = time.time()
        wait(lambda: (b := state(dev)) and b["nodata"], 60, f"{dev} shown as no data")
        nodata = state(dev)["nodata"]
        wait(lambda: time.time() - t_cut >= 60, 70, "60 s cut off")
        assert not is_live(dev), f"{dev} live while its edge is cut off"
        assert is_live(fleet.board_ids(1)[0]), "the other edge's board lost too: the cut was not one edge's"
        held = fleet.outbox_depths()["edge-01"]
        sent_before = {a["id"] for a in recorder.snapshot() if a["device"] == dev}
        for p in fleet.paths:
            p.mend()
        t_mend = time.time()
        print(f"{dev}: cut off {t_mend - t_cut:.0f} s, the page said {nodata!r}; edge-01's outbox held {held} "
              f"alert(s)")
        wait(lambda: fleet.outbox_depths()["edge-01"] == 0, 60, "edge-01's outbox drained")
        wait(lambda: is_live(dev), 60, f"{dev} live again")

        def settled():  # what the edge published (the recorder) and what is stored, the same set of ids
            sent = [a for a in recorder.snapshot() if a["device"] == dev]
            rows = [m for m in fleet.alert_messages() if m["device"] == dev and m["kind"] not in BOARD_KINDS]
            return (sent, rows) if sent and {a["id"] for a in sent} == {m["id"] for m in rows} else None

        mine, rows = wait(settled, 60, "every alert of the cut-off edge stored, nothing else")
        # the control room's own alert: no_data for the board, or edge_offline for its edge when the edge's last
        # will (the cut drops its connections) comes before the board's silence timeout; the other edge stays live
        ours = [m["kind"] for m in fleet.alert_messages()
                if (m["device"] == dev and m["kind"] in BOARD_KINDS) or m["kind"] in EDGE_KINDS]
        assert ours, "the control room raised neither no_data for the cut-off board nor edge_offline for its edge"
        late = [a for a in mine if a["id"] not in sent_before]
        assert held >= 1 and late, "no alert was held through the cut: the test proved nothing"
        assert len(rows) == len({m["id"] for m in rows}), "a duplicate row"
        assert [m["id"] for m in sorted(rows, key=lambda m: m["ts"])] == [a["id"] for a in mine], "order"
        assert any(t_cut <= a["ts"] <= t_mend for a in late), "none raised during the cut"
        print(f"{dev}: {len(mine)} alert(s) published ({len(late)} after the cut: "
              f"{[(a['kind'], a['state']) for a in late]}), each stored once in order; control room: {ours}")
    finally:
        for r in rec:
            r.close()
        fleet.stop()
        for p in fleet.paths:
            p.close()
