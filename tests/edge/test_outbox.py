"""Outbox: in order, survives reopening (a restart), removes only what was acknowledged, bounded and loud."""

import logging

from edge.outbox import Outbox


def alerts(n, start=0):
    return [(f"id-{i}", "firedamp/s/d/alert", f'{{"n":{i}}}'.encode(), float(i)) for i in range(start, start + n)]


def test_pending_in_order_and_survives_a_restart(tmp_path):
    box = Outbox(tmp_path / "o.sqlite")
    box.put(alerts(5), {"device:d": '{"active":{}}'})
    first = box.pending()
    assert [p.id for p in first] == [f"id-{i}" for i in range(5)]
    box.remove(first[0].seq)
    box.remove(first[2].seq)
    box.close()
    again = Outbox(tmp_path / "o.sqlite")
    assert [p.id for p in again.pending()] == ["id-1", "id-3", "id-4"]
    assert again.depth == 3 and again.load_state() == {"device:d": '{"active":{}}'}
    assert [p.id for p in again.pending(after_seq=first[3].seq)] == ["id-4"]
    assert again.path.with_name("o.sqlite-wal").exists()  # WAL mode


def test_bounded_drops_the_oldest_and_says_so(tmp_path, caplog):
    box = Outbox(tmp_path / "o.sqlite", max_alerts=10)
    box.put(alerts(8))
    with caplog.at_level(logging.ERROR, logger="firedamp.outbox"):
        box.put(alerts(5, start=8))
    assert box.depth == 10 and box.dropped == 3
    assert [p.id for p in box.pending()][:2] == ["id-3", "id-4"]
    assert "OUTBOX FULL" in caplog.text and "dropped the 3 oldest" in caplog.text


def test_the_same_alert_id_is_stored_once(tmp_path):
    box = Outbox(tmp_path / "o.sqlite")
    box.put(alerts(2))
    box.put(alerts(1))
    assert len(box.pending()) == 2
