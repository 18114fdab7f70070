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


def test_alerts_written_while_pubacks_come_back_all_arrive_once_each_in_order(tmp_path, mosquitto, mqtt_subscriber,
                                                                             edge_config):
    """The race between the pipeline inserting alerts and the sender deleting acknowledged ones: 1500 alerts in
    random batches, at random moments, through a real Mosquitto. Every one arrives, in insertion order, none
    twice under a different id, the outbox ends empty and each was acknowledged once."""
    import json
    import random
    import threading
    import time

    from edge.config import parse_config
    from edge.publisher import Publisher

    broker = mosquitto()
    sub = mqtt_subscriber(broker, ["firedamp/testmine/+/alert"])
    cfg = parse_config(edge_config(broker, [], model={"enabled": False}, mqtt={"max_inflight": 5}))
    box = Outbox(tmp_path / "outbox.sqlite", fsync=False)
    pub = Publisher(cfg, box)
    pub.start()
    n = 1500
    try:
        deadline = time.monotonic() + 5
        while not pub.connected and time.monotonic() < deadline:
            time.sleep(0.01)
        rng = random.Random(3)
        sent = 0

        def writer():
            nonlocal sent
            while sent < n:
                k = min(n - sent, rng.choice((1, 1, 2, 3, 8, 30)))
                box.put([(f"a{i}", "firedamp/testmine/d/alert", json.dumps({"id": f"a{i}"}).encode(), float(i))
                         for i in range(sent, sent + k)])
                sent += k
                pub.notify()
                if rng.random() < 0.5:
                    time.sleep(rng.uniform(0, 0.002))

        w = threading.Thread(target=writer)
        w.start()
        w.join(60)
        assert sub.wait(lambda m: len({json.loads(p)["id"] for _, p, _ in m}) >= n, timeout=30)
        deadline = time.monotonic() + 5
        while box.depth and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        pub.stop()
    got = [json.loads(p)["id"] for _, p, _ in sub.messages]
    first = list(dict.fromkeys(got))
    assert first == [f"a{i}" for i in range(n)]  # all of them, in the order they were written
    assert box.depth == 0 and pub.counters["alerts_acked"] == n
    assert len(got) - n <= 5  # a repeat (same id) only for a resend; none here beyond the in-flight window
    box.close()
