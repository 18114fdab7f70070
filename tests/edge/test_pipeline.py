"""The pipeline (edge/pipeline.py) inside the running service, against a real Mosquitto and real ptys: nothing
read from a board is dropped by an exception, alerts go out in frame order carrying the reading that caused
them, two boards sharing one device id are kept apart, and an ingest overflow is itself an alert."""

import json

import numpy as np

from edge.detector import Results
from models.runtime import Scores
from tests.helpers import board_line, wait_for


def alerts_of(sub, kind=None):
    return [a for a in sub.payloads("/alert") if kind is None or a["kind"] == kind]


def test_a_stage_that_raises_on_one_frame_or_on_commit_loses_no_alert(
        edge_config, mosquitto, pty_pair, mqtt_subscriber, service_factory, monkeypatch):
    import edge.payloads

    broker = mosquitto()
    board = pty_pair()
    sub = mqtt_subscriber(broker, ["firedamp/testmine/+/alert"])
    svc = service_factory(edge_config(broker, [board.device], policy={"anomaly_raise_samples": 1}))
    real_telemetry = edge.payloads.telemetry

    def buggy_telemetry(r, t, res):  # a bug that one reading triggers (here: the payload of seq 2)
        if r.seq == 2:
            raise ValueError("bug in a payload builder")
        return real_telemetry(r, t, res)

    monkeypatch.setattr(edge.payloads, "telemetry", buggy_telemetry)
    svc.start()
    assert svc.wait_ready()
    board.write(b"".join(board_line(k, "ALARM" if k in (2, 3) else "NORMAL", ch4=1.2 if k in (2, 3) else 0.4)
                         for k in range(1, 5)))  # one read(), one batch
    assert sub.wait(lambda m: len(m) >= 2, timeout=5), "the alerts of a batch that raised were dropped"
    assert [(a["kind"], a["state"], a["readings"]["seq"]) for a in alerts_of(sub)] == [
        ("alarm", "raised", 2), ("alarm", "cleared", 4)]
    assert svc.health()["pipeline_errors"] == 1

    # the model call raises once (an ONNX Runtime error): the board alerts of that batch still go out
    real_step = svc.detector.model.step
    calls = []

    def failing_step(states, rows):
        calls.append(len(rows))
        if len(calls) == 1:
            raise RuntimeError("onnxruntime: transient failure")
        return real_step(states, rows)

    svc.detector.model.step = failing_step
    board.write(board_line(5, "ALARM", ch4=1.3) + board_line(6, "NORMAL", ch4=0.4))
    assert sub.wait(lambda m: len(m) >= 4, timeout=5), "a failing model call dropped the batch's board alerts"
    assert [(a["kind"], a["state"], a["readings"]["seq"]) for a in alerts_of(sub)][2:] == [
        ("alarm", "raised", 5), ("alarm", "cleared", 6)]
    assert calls and svc.health()["score_errors"] == 1

    # the outbox write fails once with an unexpected error: the alerts are kept and stored on the next round
    real_put = svc.outbox.put
    fails = []

    def failing_put(*a, **kw):
        if not fails:
            fails.append(1)
            raise RuntimeError("unexpected")
        return real_put(*a, **kw)

    monkeypatch.setattr(svc.outbox, "put", failing_put)
    board.write(board_line(7, "ALARM", ch4=1.3) + board_line(8, "NORMAL", ch4=0.4))
    assert sub.wait(lambda m: len({json.loads(p)["id"] for _, p, _ in m}) >= 6, timeout=5), \
        "alerts of a commit that raised were dropped"
    assert [(a["kind"], a["state"], a["readings"]["seq"]) for a in alerts_of(sub)][-2:] == [
        ("alarm", "raised", 7), ("alarm", "cleared", 8)]
    assert fails and wait_for(lambda: svc.outbox.depth == 0)


def test_alerts_of_one_read_go_out_in_frame_order_each_with_the_reading_that_caused_it(
        edge_config, mosquitto, pty_pair, mqtt_subscriber, service_factory):
    broker = mosquitto()
    board = pty_pair()
    sub = mqtt_subscriber(broker, ["firedamp/testmine/+/alert"])
    svc = service_factory(edge_config(broker, [board.device], policy={"anomaly_raise_samples": 1}))
    spec = svc.detector.spec

    def score(due):  # the model finds seq 122 unusual and forecasts gas over the level (the detector is not
        n = len(due)  # under test here)
        return Results(Scores(np.full(n, 9.0), np.ones(n, bool), np.full(n, 3.0), np.zeros(n, np.int64),
                              np.ones(n, bool)), spec)

    svc.detector.score = score
    svc.start()
    assert svc.wait_ready()
    # a NORMAL frame that the model flags, and in the same chunk the next frame's ALARM
    board.write(board_line(122, "NORMAL", ch4=0.9) + board_line(123, "ALARM", ch4=1.3))
    assert sub.wait(lambda m: len(m) >= 3, timeout=5)
    got = [(a["kind"], a["readings"]["seq"], a["readings"]["state"]) for a in alerts_of(sub)]
    assert got == [("anomaly", 122, "NORMAL"), ("forecast", 122, "NORMAL"), ("alarm", 123, "ALARM")]


def test_lines_dropped_at_a_full_ingest_queue_are_an_alert_and_counted_in_health(
        edge_config, mosquitto, pty_pair, mqtt_subscriber, service_factory, monkeypatch):
    import threading

    import edge.service

    monkeypatch.setattr(edge.service, "_INGEST_QUEUE", 20)
    broker = mosquitto()
    board = pty_pair()
    sub = mqtt_subscriber(broker, ["firedamp/testmine/+/alert"])
    svc = service_factory(edge_config(broker, [board.device], model={"enabled": False}, mqtt={"telemetry": False}))
    svc.ingest_wait_s = 0.05
    stalled, go = threading.Event(), threading.Event()

    def slow_view(kind, data):  # the pipeline thread stalls (a slow disk, a busy CPU) while a board keeps sending
        if kind == "reading" and not go.is_set():
            stalled.set()
            go.wait(10)

    svc.add_observer(slow_view)
    svc.start()
    assert svc.wait_ready()
    board.write(board_line(1))
    assert stalled.wait(5)
    board.write(b"".join(board_line(k) for k in range(2, 202)))
    assert wait_for(lambda: svc.health()["ingest_dropped"] > 0, 5)
    wait_for(lambda: svc.readers[0].stats.lines == 201, 5)  # every line read: kept in the queue or dropped
    go.set()
    assert sub.wait(lambda m: any(json.loads(p)["kind"] == "ingest_overflow" for _, p, _ in m), timeout=5), \
        "lines dropped at the full queue gave no alert"
    dropped = svc.health()["ingest_dropped"]
    over = alerts_of(sub, "ingest_overflow")
    assert len(over) == 1 and over[0]["details"]["lost"] == dropped and over[0]["device"] == "b1"
    assert over[0]["severity"] == "warning" and board.device in over[0]["message"]
    assert dropped + wait_for(lambda: svc.decoder.ok == 201 - dropped, 5) * svc.decoder.ok == 201


def test_two_boards_sharing_a_device_id_on_two_ports_are_kept_apart_and_stay_flagged_across_a_restart(
        edge_config, mosquitto, pty_pair, mqtt_subscriber, service_factory):
    broker = mosquitto()
    a, b = pty_pair(), pty_pair()
    sub = mqtt_subscriber(broker, ["firedamp/#"])
    settings = edge_config(broker, [a.device, b.device], policy={"frames_lost_holdoff_s": 0})
    other = "face-1@" + b.device.rsplit("/", 1)[-1]  # the second board's name: the id, @, its port's name

    def feed(svc, seqs):
        for k in seqs:  # board A steadily in ALARM, board B NORMAL, both configured as "face-1"
            a.write(board_line(k, "ALARM", ch4=1.3, device="face-1", uptime_ms=900_000 + k * 1000))
            b.write(board_line(k + 500, "NORMAL", ch4=0.4, device="face-1", uptime_ms=5_000 + k * 1000))
            if k == seqs[0]:
                assert wait_for(lambda: svc.decoder.ok >= 2, 5)

    svc = service_factory(settings)
    svc.start()
    assert svc.wait_ready()
    a.write(board_line(0, "ALARM", ch4=1.3, device="face-1", uptime_ms=900_000))  # A is heard first
    assert wait_for(lambda: svc.decoder.ok == 1, 5)
    feed(svc, range(1, 130))  # past the model's warm-up (120 samples) on both
    assert wait_for(lambda: svc.decoder.ok == 259, 10)
    assert sub.wait(lambda m: len([1 for t, *_ in m if t.endswith("/telemetry")]) == 259, 10)
    svc.stop()

    alerts = sub.payloads("/alert")
    assert [(x["device"], x["state"]) for x in alerts if x["kind"] == "alarm"] == [("face-1", "raised")]
    dup = [x for x in alerts if x["kind"] == "duplicate_id"]
    assert [(x["device"], x["state"]) for x in dup] == [("face-1", "raised")] and other in dup[0]["message"]
    assert not [x for x in alerts if x["kind"] in ("frames_lost", "reboot")]
    states = {}
    for t, p, _ in sub.messages:
        if t.endswith("/state"):
            states.setdefault(json.loads(p)["device"], []).append(json.loads(p)["state"])
    assert states["face-1"][-1] == "ALARM" and states[other][-1] == "NORMAL"
    assert len(states["face-1"]) <= 3 and len(states[other]) <= 3, "the retained state flips between two boards"
    tele = {}
    for x in sub.payloads("/telemetry"):
        tele.setdefault(x["device"], []).append(x)
    assert [x["seq"] for x in tele["face-1"]] == list(range(130)) and tele["face-1"][-1]["ready"]
    assert [x["seq"] for x in tele[other]] == list(range(501, 630)) and tele[other][-1]["ready"]
    from edge.history import History

    h = History(settings["data_dir"] + "/history.sqlite")
    try:
        assert h.devices() == sorted(["face-1", other])
        worst = {d: {m[9] for m in h.minutes(d, 0, 2e10)} for d in h.devices()}
        assert worst == {"face-1": {"ALARM"}, other: {"NORMAL"}}, "the per-minute history mixes two boards"
    finally:
        h.close()

    # restart: the two streams resume where they were (no false loss), duplicate_id stays raised, not repeated
    n = len(sub.messages)
    svc = service_factory(settings)
    svc.start()
    assert svc.wait_ready()
    feed(svc, range(130, 140))
    assert wait_for(lambda: svc.decoder.ok == 20, 10)
    assert sub.wait(lambda m: len([1 for t, *_ in m[n:] if t.endswith("/telemetry")]) == 20, 10)
    svc.stop()
    later = [json.loads(p) for t, p, _ in sub.messages[n:] if t.endswith("/alert")]
    assert [(x["kind"], x["device"], x["state"]) for x in later] == [], later
    last_state = [json.loads(p) for t, p, _ in sub.messages if t.endswith("face-1/state")][-1]
    assert "duplicate_id" in last_state["active"] and "alarm" in last_state["active"]


def test_a_boards_retained_state_goes_out_when_its_reading_or_alerts_change_and_only_then(tmp_path):
    # the pipeline skips the retained-state check on readings that change nothing it shows (edge/pipeline.py)
    from edge.config import parse_config
    from edge.frames import Reading, format_frame
    from edge.pipeline import Pipeline

    p = Pipeline(parse_config({"data_dir": str(tmp_path), "model": {"enabled": False},
                               "history": {"enabled": False}}))
    seq = iter(range(1, 100))

    def line(device="b1", state="NORMAL", relay=1, flags=0, unit="VOL", flow_unit="m3/min", ch4=0.5):
        n = next(seq)
        return format_frame(Reading(device, n, n * 1000, ch4, unit, 3.0, flow_unit, 1.0, state, relay, 0, flags))

    def shown(items):
        return [(d, s.get("state"), s.get("relay"), s["flags"]["ack_awaited"], s.get("flow_unit"), s["active"])
                for d, s in p.run(items, 0.0).states]

    assert shown([("p", line(), 1.0), ("p", line(ch4=0.7), 2.0)]) == [("b1", "NORMAL", 1, False, "m3/min", [])]
    assert shown([("p", line(ch4=0.9), 3.0)]) == []  # only the gas changed: no new retained state
    assert shown([("p", line(flags=0x04), 4.0), ("p", line(flags=0x04), 5.0), ("p", line(flags=0x04, relay=0), 6.0),
                  ("p", line(flags=0x04, relay=0, flow_unit="L/min"), 7.0)]) == [
        ("b1", "NORMAL", 1, True, "m3/min", []), ("b1", "NORMAL", 0, True, "m3/min", []),
        ("b1", "NORMAL", 0, True, "L/min", [])]
    # an alert raised by another board's frame (a second board under the id b1, on port q): b1's state says so
    # at b1's next frame, in frame order, with nothing else of b1's reading changed
    assert shown([("q", line(flags=0x04, relay=0, flow_unit="L/min"), 8.0),
                  ("p", line(flags=0x04, relay=0, flow_unit="L/min"), 9.0), ("r", line(device="b2"), 9.5)]) == [
        ("b1@q", "NORMAL", 0, True, "L/min", []), ("b1", "NORMAL", 0, True, "L/min", ["duplicate_id"]),
        ("b2", "NORMAL", 1, False, "m3/min", [])]
    assert shown([("p", line(state="ALARM", relay=0, flags=0x04, flow_unit="L/min", ch4=2.0), 10.0)]) == [
        ("b1", "ALARM", 0, True, "L/min", ["alarm", "duplicate_id"])]
