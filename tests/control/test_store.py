"""The store, SQLite and PostgreSQL alike (each test runs on both): each alert once by id, raised and cleared
paired per board and kind, acknowledgements once, readings kept raw and per minute, a schema that migrates by
number. PostgreSQL-only behaviour (replicas, restarts, partitions) is in test_store_postgres.py."""

import sqlite3
import time

import pytest

from control import messages as m
from control.store import AckError
from control.store.sqlite import MIGRATIONS, SqliteStore


def alert(i, kind="alarm", state="raised", ts=1000.0, device="b1", **kw):
    return m.Alert(f"id-{i:08d}", "mine", "pi", device, kind, "critical", state, ts, False, f"{kind} {state}", None, {},
                   **kw)


def tel(ts, ch4, device="b1", state="NORMAL", flow=900.0):
    return m.Telemetry("mine", device, ts, 1, ch4, "VOL", flow, "L/min", 0.0, state, 1, 0, 0, None, None, None, False)


@pytest.fixture(params=["sqlite", "postgresql"])
def make_store(request, tmp_path):
    """make_store(**kw): a new store of this test's kind (PostgreSQL: a fresh database on the private server)."""
    made = []

    def make(**kw):
        if request.param == "sqlite":
            s = SqliteStore(tmp_path / "c.sqlite", fsync=False, **kw)
        else:
            from control.store.postgres import PostgresStore

            s = PostgresStore(request.getfixturevalue("pg_dsn"), fsync=False, **kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


@pytest.fixture
def store(make_store):
    return make_store()


def rows(store, query):
    """Rows of a raw SQL query (the same SQL on both: plain SELECTs)."""
    if isinstance(store, SqliteStore):
        return [tuple(r) for r in store._r.execute(query).fetchall()]
    return [tuple(r) for r in store._read(query, dicts=False)]


def test_an_alert_sent_twice_is_one_row_and_its_clear_closes_it(store):
    ch = store.apply([alert(1), alert(1)], 2000.0)
    assert ch.duplicates == 1
    ch = store.apply([alert(1)], 2001.0)  # re-sent in a later batch (after an edge restart)
    assert ch.duplicates == 1
    assert [a["id"] for a in store.alerts()] == ["id-00000001"]
    assert store.alerts(active=True)[0]["active"]
    store.apply([alert(2, state="cleared", ts=1010.0)], 2002.0)
    (row,) = store.alerts()
    assert (row["active"], row["cleared_ts"], row["cleared_id"]) == (False, 1010.0, "id-00000002")


def test_a_clear_that_arrives_before_its_raise_still_closes_it(store):
    store.apply([alert(2, state="cleared", ts=1010.0)], 2000.0)
    store.apply([alert(1, ts=1000.0)], 2001.0)
    (row,) = store.alerts()
    assert (row["id"], row["active"], row["cleared_ts"]) == ("id-00000001", False, 1010.0)


def test_a_second_raise_of_the_same_kind_supersedes_the_first_and_one_shots_never_stay_active(store):
    store.apply([alert(1, kind="fault", ts=1000.0), alert(2, kind="fault", ts=1005.0),
                 alert(3, kind="frames_lost", ts=1006.0)], 2000.0)
    active = store.alerts(active=True)
    assert [a["id"] for a in active] == ["id-00000002"]
    first = store.alerts(ids=["id-00000001"])[0]
    assert first["cleared_ts"] == 1005.0 and "superseded" in first["cleared_message"]
    assert not store.alerts(ids=["id-00000003"])[0]["active"]


def test_alerts_of_two_boards_and_kinds_do_not_pair_with_each_other(store):
    store.apply([alert(1, device="b1"), alert(2, device="b2"), alert(3, kind="fault", device="b1")], 2000.0)
    store.apply([alert(4, state="cleared", device="b2", ts=1001.0)], 2001.0)
    active = {(a["device"], a["kind"]) for a in store.alerts(active=True)}
    assert active == {("b1", "alarm"), ("b1", "fault")}


def test_acknowledgement_is_stored_once_with_who_when_and_note(store):
    store.apply([alert(1)], 2000.0)
    store.acknowledge("id-00000001", "olga", "checked the face, ventilation restored", 2100.0)
    ack = store.alerts()[0]["ack"]
    assert ack == {"user": "olga", "ts": 2100.0, "note": "checked the face, ventilation restored"}
    with pytest.raises(AckError) as exc:
        store.acknowledge("id-00000001", "omar", "me too", 2101.0)
    assert exc.value.status == 409 and "olga" in str(exc.value)
    with pytest.raises(AckError) as exc:
        store.acknowledge("no-such-alert", "olga", "x", 2101.0)
    assert exc.value.status == 404


def test_readings_go_raw_and_per_minute_and_series_gives_min_mean_max(store):
    t0 = 1_800_000_000.0 - (1_800_000_000.0 % 60)
    store.apply([tel(t0 + i, 0.1 + 0.01 * i) for i in range(120)], t0 + 120)
    raw = store.series("mine", "b1", t0, t0 + 120, 2)
    assert [p["n"] for p in raw] == [60, 60]
    assert raw[0]["ch4_min"] == pytest.approx(0.1) and raw[0]["ch4_max"] == pytest.approx(0.69)
    assert raw[0]["ch4_mean"] == pytest.approx(sum(0.1 + 0.01 * i for i in range(60)) / 60)
    stats = store.stats(t0, t0 + 120)[("mine", "b1")]
    assert stats["ch4_max"] == pytest.approx(1.29) and stats["readings"] == 120
    assert stats["ch4_mean"] == pytest.approx(sum(0.1 + 0.01 * i for i in range(120)) / 120)
    assert store.board("mine", "b1")["ch4"] == pytest.approx(1.29)


def test_minutes_merge_across_batches_and_a_null_reading_does_not_hide_the_minimum(store):
    t0 = 1_800_000_000.0 - (1_800_000_000.0 % 60)
    store.apply([tel(t0 + 1, 0.5), tel(t0 + 2, None)], t0 + 3)
    store.apply([tel(t0 + 3, 0.2), tel(t0 + 4, 0.9)], t0 + 5)
    (row,) = rows(store, "SELECT n, ch4_n, ch4_min, ch4_max, ch4_sum FROM minutes")
    assert row == (4, 3, 0.2, 0.9, pytest.approx(1.6))


def test_readings_past_raw_retention_are_pruned_and_minutes_kept(make_store):
    s = make_store(raw_hours=1, minute_days=90)
    now = time.time() // 60 * 60 + 30  # mid-minute: the 10 old readings fall in one minute (not two, by the clock)
    s.apply([tel(now - 7200 + i, 0.3) for i in range(10)] + [tel(now - 10, 0.4)], now)
    assert s.prune(now) == 10
    assert rows(s, "SELECT count(*) FROM samples") == [(1,)]
    assert rows(s, "SELECT count(*) FROM minutes") == [(2,)]
    csv_rows = s.readings("mine", "b1", now - 7300, now)
    assert [r["kind"] for r in csv_rows] == ["minute", "raw"]


def state(aux=None, **kw):
    return m.State("mine", "pi", "b1", 1000.0, "up", [], "NORMAL", 1, [], False, 0.4, "VOL", 900.0, "L/min",
                   aux=aux, **kw)


def test_a_boards_last_a_frame_is_kept_from_its_state_and_not_wiped_by_a_state_without_one(store):
    from control.views.overview import aux_lines

    aux = {"ts": 995.0, "seq": 8, "p_kpa": 98.4, "t_c": 21.5, "std_flow": 1.2, "std_unit": "Nm3/min",
           "std_total": 5.0, "battery_mv": 3650, "run_min": 130}
    store.apply([state()], 2000.0)
    assert store.board("mine", "b1")["aux"] is None  # a board that sends no A frames
    store.apply([state(aux)], 2001.0)
    assert store.board("mine", "b1")["aux"] == aux
    # the edge restarted: its first state of the board carries no aux until an A frame comes; the last stays
    store.apply([state()], 2002.0)
    assert store.boards()[0]["aux"] == aux
    newer = aux | {"ts": 1060.0, "seq": 9, "p_kpa": None, "t_c": None, "std_flow": None, "battery_mv": 3600}
    store.apply([state(newer)], 2003.0)
    got = store.board("mine", "b1")["aux"]
    assert got == newer
    pt, battery = aux_lines(got)
    assert pt == "" and battery == "<small>battery 3,600 mV · 2 h 10 min left</small>"  # P/T gone: nothing shown


def test_schema_is_versioned_and_a_newer_database_is_refused(tmp_path):
    path = tmp_path / "c.sqlite"
    s = SqliteStore(path, fsync=False)
    s.apply([alert(1)], 2000.0)
    s.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    db.close()
    again = SqliteStore(path, fsync=False)  # re-opening migrates nothing and keeps the rows
    assert [a["id"] for a in again.alerts()] == ["id-00000001"]
    again.close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    db.commit()
    db.close()
    from control.store import StoreError

    with pytest.raises(StoreError, match="newer than this program"):
        SqliteStore(path)


def test_a_database_of_the_version_before_the_a_frames_migrates_and_keeps_its_boards(tmp_path):
    path = tmp_path / "c.sqlite"
    db = sqlite3.connect(path)
    for n, script in enumerate(MIGRATIONS[:2]):
        db.executescript(f"BEGIN; {script}; PRAGMA user_version = {n + 1}; COMMIT;")
    db.execute("INSERT INTO boards (site, device, edge, state) VALUES ('mine', 'b1', 'pi', 'NORMAL')")
    db.commit()
    db.close()
    s = SqliteStore(path, fsync=False)
    try:
        b = s.board("mine", "b1")
        assert b["state"] == "NORMAL" and b["aux"] is None
        s.apply([state({"ts": 995.0, "seq": 8, "p_kpa": None, "t_c": None, "std_flow": None, "std_unit": "NL/min",
                        "std_total": None, "battery_mv": 3650, "run_min": None})], 2000.0)
        assert s.board("mine", "b1")["aux"]["battery_mv"] == 3650
    finally:
        s.close()


def _edge_alert(i, edge, state="raised", ts=1000.0):
    return m.Alert(f"id-{i:08d}", "mine", edge, "", "edge_offline", "critical", state, ts, False, f"{edge} {state}",
                   None, {}, source="control-room")


def test_alerts_about_two_edges_of_one_site_are_kept_apart(store):
    store.apply([_edge_alert(1, "pi-a"), _edge_alert(2, "pi-b", ts=1001.0)], 2000.0)
    store.apply([_edge_alert(3, "pi-a", state="cleared", ts=1002.0)], 2001.0)
    assert [(a["edge"], a["active"]) for a in store.alerts(active=True)] == [("pi-b", True)]


def test_two_watchers_raising_the_same_silence_make_one_alert(store):
    """Two control-room replicas each see the board go quiet: the second raise is a no-op; the second clear
    finds nothing open, and the next silence, later, is a new alert."""
    silent = [m.Alert(f"id-{i:08d}", "mine", "pi", "b1", "no_data", "critical", "raised", 1000.0 + i, False,
                      "b1: no telemetry", None, {}, source="control-room") for i in (1, 2)]
    store.apply(silent, 2000.0)
    assert len(store.alerts()) == 1
    back = [m.Alert(f"id-{i:08d}", "mine", "pi", "b1", "no_data", "critical", "cleared", 1010.0 + i, False,
                    "b1: telemetry again", None, {}, source="control-room") for i in (3, 4)]
    store.apply(back, 2010.0)
    assert [a["active"] for a in store.alerts()] == [False]
    store.apply([m.Alert("id-00000005", "mine", "pi", "b1", "no_data", "critical", "raised", 1020.0, False,
                         "b1: no telemetry", None, {}, source="control-room")], 2020.0)  # quiet again, later
    assert [(a["id"], a["active"]) for a in store.alerts()] == [("id-00000005", True), ("id-00000001", False)]
