"""The PostgreSQL store where it differs from one SQLite file: two replicas writing the same alerts at once, the
server restarted under it, versioned migrations, partitions made ahead and dropped, a 90-day query's plan."""

import threading
import time

import pytest

from control import messages as m
from control.store import StoreError

psycopg = pytest.importorskip("psycopg", reason="needs psycopg 3: .venv/bin/pip install 'psycopg[binary]'")

from control.store.postgres import MIGRATIONS, PostgresStore  # noqa: E402


def alert(key, kind="alarm", state="raised", ts=1000.0, device="b1", source="edge"):
    return m.Alert(f"id-{key}-{state}", "mine", "pi", device, kind, "critical", state, ts, False, f"{kind} {state}",
                   None, {}, source=source)


def tel(ts, ch4, device="b1", seq=1):
    return m.Telemetry("mine", device, ts, seq, ch4, "VOL", 900.0, "L/min", 0.0, "NORMAL", 1, 0, 0, None, None, None,
                       False)


@pytest.fixture
def open_store(pg_dsn):
    made = []

    def make(dsn=pg_dsn, **kw):
        s = PostgresStore(dsn, fsync=False, **kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def q(store, query, args=()):
    return [tuple(r) for r in store._read(query, args, dicts=False)]


def test_two_replicas_applying_overlapping_batches_store_each_alert_once_and_pair_it(open_store):
    """A JetStream consumer shared by two replicas redelivers what one took and did not acknowledge: the same
    alert messages reach both at the same time. Each is one row; every raise is closed by its own clear."""
    source = "edge"
    a, b = open_store(), open_store()
    rounds, keys = 12, 24
    total_dups = 0
    for r in range(rounds):
        msgs = []
        for k in range(keys):  # per key: raise then clear (or, for every third key, a raise left standing)
            # one (site, board, kind) per key: a later round's raise would supersede this one
            where = {"device": f"b{r}-{k}", "source": source}
            msgs.append(alert(f"{r}-{k}", kind=("alarm", "fault", "low_flow", "warning")[k % 4], ts=1000.0 + r * 10,
                              **where))
            if k % 3:
                msgs.append(alert(f"{r}-{k}", kind=("alarm", "fault", "low_flow", "warning")[k % 4],
                                  state="cleared", ts=1001.0 + r * 10, **where))
        readings = [tel(2000.0 + r * 100 + i, 0.1 * i, device=f"b{i % 6}", seq=i) for i in range(60)
                    if source == "edge"]
        # overlap [p1, p2): both ends split a key, its raise in one replica's batch only, its clear in both
        # (p1) or its raise in both and its clear in one only (p2); the replicas race on those keys
        clears = [i for i, x in enumerate(msgs) if x.state == "cleared"]
        p1 = next(i for i in clears if i >= len(msgs) // 3)
        p2 = next(i for i in clears if i >= 2 * len(msgs) // 3)
        cut = p2 - p1
        batch_a, batch_b = msgs[:p2] + readings[:40], msgs[p1:] + readings[20:]
        out: dict[str, object] = {}
        go = threading.Barrier(2)

        def run(name, store, batch, now, go=go, out=out):
            go.wait()
            try:
                out[name] = store.apply(batch, now)
            except StoreError as exc:  # a deadlock detected by the server would land here: the ingest retries
                out[name] = exc

        threads = [threading.Thread(target=run, args=("a", a, batch_a, 3000.0 + r)),
                   threading.Thread(target=run, args=("b", b, batch_b, 3000.5 + r))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not isinstance(out["a"], Exception) and not isinstance(out["b"], Exception), out
        total_dups += out["a"].duplicates + out["b"].duplicates
        assert out["a"].duplicates + out["b"].duplicates == cut  # the overlap, counted once, by whichever lost

    raises = rounds * keys
    assert q(a, "SELECT count(*), count(DISTINCT id) FROM alerts") == [(raises, raises)]
    n_msgs = rounds * (keys + sum(1 for k in range(keys) if k % 3))
    assert q(a, "SELECT count(*) FROM alert_msgs") == [(n_msgs,)]
    assert total_dups == rounds * cut
    rows = a.alerts(limit=10_000)
    for row in rows:
        k = int(row["id"].split("-")[2])
        if k % 3:
            assert (row["active"], row["cleared_id"]) == (False, row["id"].replace("raised", "cleared")), row
        else:
            assert row["active"] and row["cleared_ts"] is None, row
    assert q(a, "SELECT count(*) FROM alert_msgs WHERE alert_id IS NULL") == [(0,)]
    # readings sent to both replicas are counted once in the per-minute table
    if source == "edge":
        assert q(a, "SELECT count(*) FROM samples") == q(a, "SELECT sum(n) FROM minutes") == [(rounds * 60,)]


def test_two_replicas_watchers_raising_the_same_silence_at_once_leave_one_active_alert(open_store):
    """Both replicas' stale-board watchers see the same board go quiet and raise no_data in the same instant
    (different ids). These alerts touch no board or edge row: only the per-(site, board, kind) lock orders them,
    so that one alert stays active per board (without it both were inserted as active)."""
    a, b = open_store(), open_store()
    for r in range(10):
        boards = [f"q{r}-{i}" for i in range(20)]
        out: dict[str, object] = {}
        go = threading.Barrier(2)

        def run(name, store, go=go, out=out, boards=boards, r=r):
            go.wait()
            out[name] = store.apply([alert(f"{name}{d}", kind="no_data", ts=1000.0 + r, device=d,
                                           source="control-room") for d in boards], 2000.0 + r)

        threads = [threading.Thread(target=run, args=(n, s)) for n, s in (("a", a), ("b", b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert set(out) == {"a", "b"}, out
        active = [x["device"] for x in a.alerts(active=True, limit=10_000) if x["device"] in boards]
        assert sorted(active) == sorted(boards), active


def test_the_server_restarted_between_two_applies_then_stopped_then_back(open_store, pg_server):
    s = open_store()
    s.apply([alert("r1"), tel(5000.0, 0.2)], 5001.0)
    s.boards()  # an idle reader connection too
    pg_server.restart()
    # the idle connections died with the server: found at BEGIN, replaced; the batch is stored
    ch = s.apply([alert("r1", state="cleared", ts=1002.0), tel(5001.0, 0.3)], 5002.0)
    assert ch.alerts == {"id-r1-raised"}
    assert [b["ch4"] for b in s.boards()] == [pytest.approx(0.3)]
    pg_server.stop()
    try:
        with pytest.raises(StoreError, match="PostgreSQL"):
            s.apply([alert("r2"), tel(5002.0, 0.4)], 5003.0)
        with pytest.raises(StoreError):
            s.alerts()
    finally:
        pg_server.start()
    s.apply([alert("r2"), tel(5002.0, 0.4)], 5003.0)  # the ingest's retry of the batch that failed
    assert [(r["id"], r["active"]) for r in s.alerts()] == [("id-r2-raised", True), ("id-r1-raised", False)]
    assert q(s, "SELECT count(*) FROM samples") == [(3,)]
    assert q(s, "SELECT sum(n) FROM minutes") == [(3,)]


def test_a_connection_killed_inside_the_server_is_a_store_error_once_then_the_store_works(open_store, pg_server):
    s = open_store()
    s.apply([alert("k1")], 2000.0)
    with psycopg.connect(pg_server.dsn(), autocommit=True) as admin:
        killed = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
                               "application_name = 'firedamp-control-room'").fetchone()[0]
    assert killed >= 1
    s.apply([alert("k2", kind="fault")], 2001.0)  # dead while idle: replaced at BEGIN
    assert {r["id"] for r in s.alerts(active=True)} == {"id-k1-raised", "id-k2-raised"}


def test_migrations_are_numbered_recorded_and_a_newer_schema_is_refused(open_store, pg_dsn):
    first = open_store()
    first.apply([alert("m1")], 2000.0)
    assert q(first, "SELECT version, name FROM schema_migrations ORDER BY version") == \
        [(n + 1, name) for n, (name, _) in enumerate(MIGRATIONS)]
    again = open_store()  # a second replica starting: nothing migrated twice, rows kept
    assert again.schema_version() == len(MIGRATIONS)
    assert [r["id"] for r in again.alerts()] == ["id-m1-raised"]
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, 'from the future')",
                      (len(MIGRATIONS) + 1,))
    with pytest.raises(StoreError, match="newer than this program"):
        PostgresStore(pg_dsn)


def test_two_replicas_starting_on_an_empty_database_at_once_migrate_it_once(pg_server):
    dsn = pg_server.dsn(pg_server.create_db())
    out: list = []
    go = threading.Barrier(3)

    def start():
        go.wait()
        try:
            out.append(PostgresStore(dsn, fsync=False))
        except StoreError as exc:
            out.append(exc)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(isinstance(s, PostgresStore) for s in out), out
    assert q(out[0], "SELECT count(*) FROM schema_migrations") == [(len(MIGRATIONS),)]
    for s in out:
        s.close()


def _parts(store, table):
    return sorted(int(name.rsplit("_p", 1)[1]) for (name,) in q(
        store, "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
               "WHERE i.inhparent = %s::regclass AND c.relname <> %s", (table, f"{table}_default")))


def test_partitions_are_made_ahead_dropped_past_retention_and_take_over_from_the_default(open_store):
    s = open_store(raw_hours=24, minute_days=90)
    now = time.time()
    weeks, days = _parts(s, "minutes"), _parts(s, "samples")
    assert weeks[0] <= (now - 90 * 86400) // 60 // 10080 and weeks[-1] >= now // 60 // 10080 + 2
    assert days[0] <= (now - 86400) // 86400 and days[-1] >= now // 86400 + 2
    # a reading stamped 30 days ahead (a wrong clock) goes to the default partition: stored, not refused
    s.apply([tel(now - 3600, 0.5), tel(now + 30 * 86400, 0.7, seq=2)], now)
    assert q(s, "SELECT tableoid::regclass::text FROM minutes ORDER BY minute")[1] == ("minutes_default",)
    # 30 days on: prune makes the partitions ahead (the early reading moves into its own), drops the old
    later = now + 30 * 86400
    old_days = [d for d in _parts(s, "samples") if (d + 1) * 86400 <= later - 86400]
    removed = s.prune(later)
    assert [d for d in _parts(s, "samples") if d in old_days] == old_days[2:]  # bounded: 2 partitions a call
    for _ in range(len(old_days)):
        removed += s.prune(later)
    assert removed == 1  # the raw reading of 30 days before, with its partition
    assert _parts(s, "minutes")[-1] >= later // 60 // 10080 + 2
    assert q(s, "SELECT tableoid::regclass::text FROM minutes ORDER BY minute")[-1][0].startswith("minutes_p")
    assert q(s, "SELECT count(*) FROM minutes_default") == [(0,)]
    assert _parts(s, "samples")[0] == (later - 86400) // 86400  # none wholly past retention is left
    assert q(s, "SELECT count(*) FROM samples WHERE ts < %s", (later - 86400,)) == [(0,)]
    assert q(s, "SELECT count(*) FROM minutes") == [(2,)]  # per-minute rows are kept 90 days


def test_a_90_day_board_series_reads_only_its_partitions_through_the_primary_key(open_store):
    s = open_store(minute_days=100)
    now = time.time()
    # 200 boards, one row an hour for 100 days (the planner's choice depends on the share of one board: 0.5 %)
    with psycopg.connect(s.dsn, autocommit=True) as db:
        db.execute("INSERT INTO boards (site, device) SELECT 'mine', 'b' || i FROM generate_series(1, 200) i")
        db.execute("INSERT INTO minutes SELECT b.bid, m, 60, 60, 0.1, 12.0, 0.4, 900, 54000, 910 FROM boards b, "
                   "generate_series(%s::bigint, %s::bigint, 60) m", (int((now - 99 * 86400) // 60), int(now // 60)))
        db.execute("ANALYZE minutes")
        bid = db.execute("SELECT bid FROM boards WHERE device = 'b7'").fetchone()[0]
        since = now - 90 * 86400
        plan = "\n".join(r[0] for r in db.execute(
            "EXPLAIN " + PostgresStore.SERIES_MINUTES.replace("%s", "{}").format(
                since, 3600.0 * 6, bid, int(since // 60), int(now // 60) + 1)))
    scanned = {line.split(" on ")[1].split()[0] for line in plan.splitlines() if " on minutes_" in line}
    scanned = {name for name in scanned if not name.endswith("_pkey")}
    assert plan.count("Index Scan") >= len(scanned), plan  # each partition through its (bid, minute) key
    assert "Seq Scan" not in plan, plan
    assert all(p.startswith("minutes_p") for p in scanned), plan
    assert 13 <= len(scanned) <= 15, plan  # 90 days = 13 weeks and a bit: the other partitions are pruned
    assert len(scanned) < len(_parts(s, "minutes")), plan
    s._lookup("mine", "b7")
    series = s.series("mine", "b7", since, now, 360)
    assert sum(p["n"] for p in series) == pytest.approx(60 * 90 * 24, rel=0.01)
