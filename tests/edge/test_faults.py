"""Fault tests: no alert is lost, and none is published twice without the same id, when the broker goes
away during a burst of alarms, when the edge process is killed with SIGKILL mid-burst (alone, and while
alerts wait for a broker that is down), and when the outbox's disk cannot be written (the SD card remounted
read-only, as ext4 does on errors; PRAGMA query_only makes every SQLite write fail the same way). Real
Mosquitto, real ptys, the real `firedamp run` process."""

import json
import logging
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import pytest

from edge.config import parse_config
from edge.service import Service
from tests.helpers import board_line, wait_for

ROOT = Path(__file__).parents[2]
DEVICES = ["d0", "d1", "d2", "d3"]


def frame(device, seq, alarm):
    return board_line(seq, "ALARM" if alarm else "NORMAL", ch4=1.2 if alarm else 0.4, device=device, flow=10.0,
                      total=1.0)


def burst(rounds):
    """Every device alternates NORMAL (even rounds) and ALARM (odd rounds): one alert per device per round."""
    return b"".join(frame(d, k, k % 2 == 1) for k in rounds for d in DEVICES)


def check_alerts(messages, must_include=()):
    """The promises, from what a subscriber received: same id ⇒ same payload; one id per event;
    per device and kind the distinct alerts alternate raised/cleared in order. Returns distinct alerts."""
    by_id = {}
    for topic, payload, _ in messages:
        if not topic.endswith("/alert"):
            continue
        a = json.loads(payload)
        if a["id"] in by_id:
            assert by_id[a["id"]] == a, "the same id was published with different contents"
            continue
        by_id[a["id"]] = a
    events = [(a["device"], a["kind"], a["state"], a["readings"]["seq"]) for a in by_id.values()]
    assert len(events) == len(set(events)), "one event was published twice under different ids"
    per = defaultdict(list)
    for a in by_id.values():
        if a["kind"] not in ("frames_lost", "reboot", "ingest_overflow"):  # one-shot kinds are only ever raised
            per[(a["device"], a["kind"])].append(a["state"])
    for key, states in per.items():
        assert states == ["raised", "cleared"] * (len(states) // 2) + ["raised"] * (len(states) % 2), (key, states)
    missing = set(must_include) - set(by_id)
    assert not missing, f"{len(missing)} alert(s) that were in the outbox never arrived"
    return list(by_id.values())


def test_broker_stopped_during_a_burst_then_restarted_loses_nothing_and_keeps_order(
        edge_config, mosquitto, pty_pair, mqtt_subscriber):
    broker = mosquitto(persistence=True)
    board = pty_pair()
    room = mqtt_subscriber(broker, ["firedamp/testmine/+/alert"], persistent=True, client_id="control-room")
    svc = Service(parse_config(edge_config(broker, [board.device], model={"enabled": False})))
    svc.start()
    try:
        assert svc.wait_ready()
        board.write(burst(range(0, 10)))
        assert room.wait(lambda m: len(m) >= 9 * 4)
        broker.stop()
        board.write(burst(range(10, 30)))  # 80 alarms while the broker is away
        deadline = time.monotonic() + 10
        while svc.decoder.ok < 30 * 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert wait_for(lambda: svc.outbox.depth >= 70)  # waiting on disk (a few may sit in paho's in-flight window)
        time.sleep(1.5)  # an outage longer than the reconnect backoff
        broker.start()
        board.write(burst(range(30, 40)))
        assert room.wait(lambda m: len({json.loads(p)["id"] for _, p, _ in m}) >= 39 * 4, timeout=20)
        alerts = check_alerts(room.messages)
        assert len(alerts) == 39 * 4
        for d in DEVICES:
            seqs = [a["readings"]["seq"] for a in alerts if a["device"] == d]
            assert seqs == list(range(1, 40)), f"{d}: alerts out of order or missing"
        deadline = time.monotonic() + 5
        while svc.outbox.depth and time.monotonic() < deadline:
            time.sleep(0.05)
        assert svc.outbox.depth == 0
    finally:
        svc.stop()


class EdgeProcess:
    """`firedamp run` as a child process (python -m edge.cli), logging to a file."""

    def __init__(self, toml: Path, log: Path):
        self.toml, self.log, self.proc = toml, log, None

    def start(self):
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "edge.cli", "run", "--config", str(self.toml)],
                                         cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        return self

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(5)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return None


def outbox_ids(path: Path) -> list[str]:
    db = sqlite3.connect(str(path))
    try:
        return [i for (i,) in db.execute("SELECT id FROM alerts ORDER BY seq")]
    finally:
        db.close()


def status_is(value):
    """The edge's latest status message (retained `online` / last will `offline`) is `value`."""
    return lambda m: [p for t, p, _ in m if t.endswith("/pi-test/status")][-1:] == [value]


@pytest.fixture
def edge_proc(tmp_path):
    procs = []

    def make(toml):
        p = EdgeProcess(toml, tmp_path / "edge.log")
        procs.append(p)
        return p.start()

    yield make
    for p in procs:
        p.stop()


def test_edge_killed_with_sigkill_mid_burst_and_restarted(tmp_path, edge_config, edge_toml, mosquitto, socat_pty,
                                                          mqtt_subscriber, edge_proc):
    broker = mosquitto()
    line = socat_pty("board")
    sub = mqtt_subscriber(broker, ["firedamp/#"])
    settings = edge_config(broker, [line.device], model={"enabled": False}, mqtt={"telemetry": False})
    toml = edge_toml(settings)
    edge = edge_proc(toml)
    assert sub.wait(status_is(b"online"), timeout=15)
    rounds = 80

    def writer():
        for k in range(rounds):
            line.write(burst([k]))
            time.sleep(0.004)

    w = threading.Thread(target=writer)
    w.start()
    assert sub.wait(lambda m: sum(t.endswith("/alert") for t, *_ in m) >= 30, timeout=15)
    edge.kill()  # mid-burst: frames in its queue and alerts in flight are cut off
    assert sub.wait(status_is(b"offline"), timeout=5), "the broker did not publish the last will"
    pending = outbox_ids(Path(settings["data_dir"]) / "outbox.sqlite")
    edge.start()
    w.join(30)
    assert sub.wait(status_is(b"online"), timeout=15)
    time.sleep(0.5)
    line.write(b"".join(frame(d, rounds + 5, False) for d in DEVICES))  # all back to NORMAL at the end

    def all_cleared(m):
        last = {}
        for t, p, _ in m:
            if t.endswith("/alert"):
                a = json.loads(p)
                last[a["device"]] = a["state"]
        return all(last.get(d) == "cleared" for d in DEVICES)

    assert sub.wait(all_cleared, timeout=10), "a board's last alarm alert is not a clear"
    assert edge.stop() == 0
    assert sub.wait(status_is(b"offline"), timeout=5)
    alerts = check_alerts(sub.messages, must_include=pending)
    for d in DEVICES:
        mine = [a for a in alerts if a["device"] == d and a["kind"] == "alarm"]
        assert mine and mine[-1]["state"] == "cleared", f"{d}: the last alarm alert is not a clear"
    assert outbox_ids(Path(settings["data_dir"]) / "outbox.sqlite") == []
    log = (tmp_path / "edge.log").read_text()
    assert "Traceback" not in log


def test_alerts_waiting_for_a_dead_broker_survive_sigkill_and_go_out_in_order(
        tmp_path, edge_config, edge_toml, mosquitto, pty_pair, socat_pty, mqtt_subscriber, edge_proc):
    broker = mosquitto(persistence=True)
    line = socat_pty("board")
    room = mqtt_subscriber(broker, ["firedamp/testmine/+/alert"], persistent=True, client_id="control-room")
    settings = edge_config(broker, [line.device], model={"enabled": False}, mqtt={"telemetry": False})
    edge = edge_proc(edge_toml(settings))
    outbox = Path(settings["data_dir"]) / "outbox.sqlite"
    deadline = time.monotonic() + 15
    while not outbox.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # the port is open
    broker.stop()
    line.write(burst(range(0, 20)))
    deadline = time.monotonic() + 10
    while len(outbox_ids(outbox)) < 19 * 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    pending = outbox_ids(outbox)
    assert len(pending) == 19 * 4
    edge.kill()
    broker.start()
    edge.start()
    assert room.wait(lambda m: len({json.loads(p)["id"] for _, p, _ in m}) >= len(pending), timeout=20)
    alerts = check_alerts(room.messages, must_include=pending)
    assert [a["id"] for a in alerts] == pending  # in the order they were raised


def read_only(svc, on):
    with svc.outbox._lock:
        svc.outbox._db.execute(f"PRAGMA query_only = {'ON' if on else 'OFF'}")


def alert_ids(messages):
    return [json.loads(p)["id"] for t, p, _ in messages if t.endswith("/alert")]


def test_an_outbox_that_cannot_be_written_loses_no_alert_and_floods_nobody(
        edge_config, mosquitto, pty_pair, mqtt_subscriber, caplog):
    broker = mosquitto(persistence=True)
    board = pty_pair()
    room = mqtt_subscriber(broker, ["firedamp/testmine/+/alert"], persistent=True, client_id="control-room")
    svc = Service(parse_config(edge_config(broker, [board.device], model={"enabled": False},
                                           mqtt={"telemetry": False})))
    svc.start()
    try:
        assert svc.wait_ready()
        board.write(frame("b1", 1, False) + frame("b1", 2, True))
        assert room.wait(lambda m: len(m) == 1) and wait_for(lambda: svc.outbox.depth == 0)

        # 1. writes fail when the alerts are raised: they are held in memory and sent anyway (best effort)
        read_only(svc, True)
        with caplog.at_level(logging.ERROR):
            board.write(frame("b1", 3, False) + frame("b1", 4, True))
            assert room.wait(lambda m: len(set(alert_ids(m))) == 3, timeout=5), "alerts raised on a broken disk were not sent"
        assert "OUTBOX" in caplog.text and "held in memory" in caplog.text
        # the broker acknowledged them while they were held: nothing of them is left to store
        assert wait_for(lambda: svc.health()["alerts_unsaved"] == 0 and svc.outbox.depth == 0)
        assert svc.outbox.written == 1
        # 2. the disk is back: the policy state (alarm raised again) is stored on the next round
        read_only(svc, False)
        assert wait_for(lambda: not svc.outbox.last_error
                        and json.loads(svc.outbox.load_state()["device:b1"])["active"]["alarm"] is True)

        # 3. the alert is stored, but the disk breaks before its PUBACK can be recorded: it is not re-sent in a loop
        broker.stop()
        board.write(frame("b1", 5, False))
        assert wait_for(lambda: svc.outbox.depth == 1)
        read_only(svc, True)
        broker.start()
        assert room.wait(lambda m: len(set(alert_ids(m))) == 4, timeout=10)
        time.sleep(2.0)
        last = alert_ids(room.messages)[-1]
        assert alert_ids(room.messages).count(last) <= 2, "an acknowledged alert was sent again and again"
        assert svc.outbox.depth == 1  # still on disk: the delete could not be written
        read_only(svc, False)
        assert wait_for(lambda: svc.outbox.depth == 0)
        time.sleep(0.5)
        assert alert_ids(room.messages).count(last) <= 2

        alerts = check_alerts(room.messages)  # same id ⇒ same payload; one id per event; raised/cleared alternate
        assert [(a["kind"], a["state"], a["readings"]["seq"]) for a in alerts] == [
            ("alarm", "raised", 2), ("alarm", "cleared", 3), ("alarm", "raised", 4), ("alarm", "cleared", 5)]
    finally:
        read_only(svc, False)
        svc.stop()


def test_frames_missed_and_a_reboot_while_the_edge_was_down_are_alerts_after_it_restarts(
        edge_config, mosquitto, pty_pair, mqtt_subscriber):
    broker = mosquitto()
    board = pty_pair()
    room = mqtt_subscriber(broker, ["firedamp/testmine/+/alert"])
    settings = edge_config(broker, [board.device], model={"enabled": False}, mqtt={"telemetry": False})

    def run_edge(lines, until):
        svc = Service(parse_config(settings))
        svc.start()
        try:
            assert svc.wait_ready()
            board.write(lines)
            assert room.wait(until, timeout=5), [json.loads(p) for _, p, _ in room.messages]
            deadline = time.monotonic() + 5
            while svc.outbox.depth and time.monotonic() < deadline:
                time.sleep(0.02)
        finally:
            svc.stop()

    def kinds(m):
        return [(a["kind"], a["details"].get("lost"), a["readings"]["seq"]) for a in map(json.loads, (p for _, p, _ in m))
                if a["kind"] in ("frames_lost", "reboot")]  # the readings: of the frame that showed the gap

    # frames 1..5 read, then the edge stops; the board sends 6..9 meanwhile (nobody reads them: lost)
    run_edge(b"".join(frame("b1", k, False) for k in range(1, 6)) + frame("b1", 6, True),
             lambda m: any(json.loads(p)["kind"] == "alarm" for _, p, _ in m))
    assert kinds(room.messages) == []
    run_edge(frame("b1", 10, True), lambda m: len(kinds(m)) == 1)
    assert kinds(room.messages) == [("frames_lost", 3, 10)]
    lost = [a for a in map(json.loads, (p for _, p, _ in room.messages)) if a["kind"] == "frames_lost"][0]
    assert "while the edge service was not reading" in lost["message"]
    # the board restarts while the edge is down (seq and uptime start again): a reboot alert, not a silent jump
    run_edge(frame("b1", 2, False),
             lambda m: len(kinds(m)) == 2)
    assert kinds(room.messages)[1] == ("reboot", 2, 2)


def test_sigterm_flushes_alerts_the_broker_has_not_acknowledged_then_says_offline(
        edge_config, edge_toml, mosquitto, socat_pty, mqtt_subscriber, edge_proc):
    broker = mosquitto()
    line = socat_pty("board")
    sub = mqtt_subscriber(broker, ["firedamp/#"])
    settings = edge_config(broker, [line.device], model={"enabled": False}, mqtt={"telemetry": False})
    outbox = Path(settings["data_dir"]) / "outbox.sqlite"
    edge = edge_proc(edge_toml(settings))
    assert sub.wait(status_is(b"online"), timeout=15)
    time.sleep(0.3)  # the port is open
    broker.proc.send_signal(signal.SIGSTOP)  # the broker hangs: no PUBACK comes back
    try:
        line.write(burst(range(0, 5)))
        deadline = time.monotonic() + 10
        while len(outbox_ids(outbox)) < 4 * 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        pending = outbox_ids(outbox)
        assert len(pending) == 4 * 4
        edge.proc.send_signal(signal.SIGTERM)  # systemctl stop, while every alert waits for its PUBACK
        time.sleep(0.5)
    finally:
        broker.proc.send_signal(signal.SIGCONT)
    assert edge.proc.wait(15) == 0
    assert outbox_ids(outbox) == []  # flushed: every alert acknowledged before the process ended
    assert sub.wait(lambda m: {json.loads(p)["id"] for t, p, _ in m if t.endswith("/alert")} >= set(pending))
    assert sub.wait(status_is(b"offline"), timeout=5)
    alerts = [t for t, *_ in sub.messages if t.endswith("/alert") or t.endswith("/status")]
    assert alerts[-1].endswith("/status"), "offline was published before the last alert"


def test_a_damaged_outbox_or_history_file_is_moved_aside_and_the_service_still_reports(
        edge_config, mosquitto, pty_pair, mqtt_subscriber, caplog):
    broker = mosquitto()
    board = pty_pair()
    room = mqtt_subscriber(broker, ["firedamp/testmine/+/alert"])
    settings = edge_config(broker, [board.device], model={"enabled": False})
    data = Path(settings["data_dir"])
    data.mkdir(parents=True)
    for name in ("outbox.sqlite", "history.sqlite"):
        (data / name).write_bytes(b"\x00garbage after a power cut" * 100)
    with caplog.at_level(logging.ERROR):
        svc = Service(parse_config(settings))
    svc.start()
    try:
        assert svc.wait_ready()
        board.write(frame("b1", 1, True))
        assert room.wait(lambda m: len(m) == 1)
        assert wait_for(lambda: svc.outbox.depth == 0)
    finally:
        svc.stop()
    aside = sorted(p.name for p in data.iterdir() if ".damaged-" in p.name)
    assert [n.split(".damaged-")[0] for n in aside] == ["history.sqlite", "outbox.sqlite"]
    assert caplog.text.count("is damaged") == 2 and "alerts that were waiting in it are not sent" in caplog.text


def full_disk(db, on):
    """SQLite's "database or disk is full", as on a full tmpfs: no page beyond those the file has now."""
    n = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {n if on else 2**30}")


def test_a_full_disk_with_the_broker_away_loses_no_alert_keeps_order_and_counts_history_drops(
        edge_config, mosquitto, pty_pair, mqtt_subscriber, caplog):
    broker = mosquitto(persistence=True)
    board = pty_pair()
    room = mqtt_subscriber(broker, ["firedamp/testmine/+/alert"], persistent=True, client_id="control-room")
    svc = Service(parse_config(edge_config(broker, [board.device], model={"enabled": False},
                                           mqtt={"telemetry": False})))
    svc.start()
    box = svc.outbox
    try:
        assert svc.wait_ready()
        board.write(frame("b1", 1, False))
        assert wait_for(lambda: svc.decoder.ok == 1)
        broker.stop()
        with caplog.at_level(logging.INFO):
            with box._lock:
                full_disk(box._db, True)
            full_disk(svc.history.history.db, True)
            # 1. 30 alerts while the disk is full and the broker away: sent when the broker returns, disk still full
            board.write(b"".join(frame("b1", k, k % 2 == 0) for k in range(2, 32)))
            assert wait_for(lambda: svc.decoder.ok == 31)
            assert wait_for(lambda: svc.health()["alerts_unsaved"] >= 20)  # (the file's free space took a few)
            broker.start()
            assert room.wait(lambda m: len(set(alert_ids(m))) == 30, timeout=10), \
                "alerts held in memory were not sent when the broker came back"
            assert wait_for(lambda: box.depth == 0)  # acknowledged: nothing is left to store
            # 2. 170 more while the broker is away again; a little room frees: some go to disk at once
            broker.stop()
            board.write(b"".join(frame("b1", k, k % 2 == 0) for k in range(32, 202)))
            assert wait_for(lambda: svc.decoder.ok == 201)
            assert wait_for(lambda: svc.health()["alerts_unsaved"] >= 150)
            written = box.written
            with box._lock:
                n = box._db.execute("PRAGMA page_count").fetchone()[0]
                box._db.execute(f"PRAGMA max_page_count = {n + 12}")  # ~48 KiB: room for a chunk, not all
            assert wait_for(lambda: box.written > written, 5), "a little free room let no held alert through"
            assert box.held > 0
            with box._lock:
                full_disk(box._db, False)
            assert wait_for(lambda: box.held == 0, 5)
            broker.start()
            assert room.wait(lambda m: len(set(alert_ids(m))) == 200, timeout=15)
            assert wait_for(lambda: svc.health()["history_dropped"] > 0)
        alerts = check_alerts(room.messages)
        assert [a["readings"]["seq"] for a in alerts] == list(range(2, 202)), "alerts lost or out of order"
        assert svc.health()["alerts_unsaved_dropped"] == 0 and svc.health()["outbox_dropped"] == 0
        history_errors = [r for r in caplog.records if r.name == "firedamp.history" and r.levelno >= logging.ERROR]
        assert len(history_errors) == 1 and "history_dropped" in history_errors[0].getMessage()
        assert "Traceback" not in caplog.text
    finally:
        full_disk(svc.history.history.db, False)
        svc.stop()


def test_after_sigkill_frames_lost_counts_only_frames_the_edge_never_processed(
        edge_config, edge_toml, mosquitto, socat_pty, mqtt_subscriber, edge_proc):
    broker = mosquitto()
    line = socat_pty("board")
    sub = mqtt_subscriber(broker, ["firedamp/#"])
    settings = edge_config(broker, [line.device], model={"enabled": False}, mqtt={"telemetry": False})
    edge = edge_proc(edge_toml(settings))
    assert sub.wait(status_is(b"online"), timeout=15)
    time.sleep(0.3)  # the port is open
    line.write(b"".join(frame("b1", k, False) for k in range(1, 21)))
    time.sleep(1.5)  # the edge has stored where board b1 was (it does so about once a second)
    line.write(b"".join(frame("b1", k, k == 40) for k in range(21, 41)))  # 19 more NORMAL, then an ALARM
    assert sub.wait(lambda m: any(t.endswith("/alert") for t, *_ in m), timeout=10)
    edge.kill()  # at once: every frame up to 40 was processed (its alarm is out)
    edge.start()
    assert sub.wait(lambda m: [p for t, p, _ in m if t.endswith("/pi-test/status")][-1:] == [b"online"], timeout=15)
    time.sleep(0.3)
    line.write(frame("b1", 41, False))
    assert sub.wait(lambda m: any(t.endswith("/alert") and json.loads(p)["state"] == "cleared" for t, p, _ in m),
                    timeout=10)
    lost = [json.loads(p) for t, p, _ in sub.messages if t.endswith("/alert") and json.loads(p)["kind"] == "frames_lost"]
    assert lost == [], f"frames that were processed before the kill were reported lost: {lost}"


def two_broker_settings(edge_config, brokers, ports, **mqtt):
    settings = edge_config(None, ports, model={"enabled": False}, mqtt=mqtt)
    for key in ("host", "port"):
        del settings["mqtt"][key]
    settings["mqtt"]["servers"] = [f"{b.host}:{b.port}" for b in brokers]
    return settings


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_the_first_of_two_brokers_stopped_during_a_burst_every_alert_arrives_on_the_second_in_order(
        protocol, edge_config, mosquitto, pty_pair, mqtt_subscriber, caplog):
    """A control room subscribed to each broker: what the first acknowledged but had not delivered when it was
    stopped reaches its subscriber when it returns (persistent session); everything else goes to the second."""
    caplog.set_level(logging.INFO, logger="firedamp.mqtt")
    first, second = mosquitto(persistence=True), mosquitto()
    board = pty_pair()
    subs = [mqtt_subscriber(first, ["firedamp/testmine/+/alert"], persistent=True, client_id="room-a"),
            mqtt_subscriber(second, ["firedamp/testmine/+/alert"])]
    svc = Service(parse_config(two_broker_settings(edge_config, [first, second], [board.device], protocol=protocol)))
    svc.start()

    def alarms(sub):  # distinct alarm alerts in arrival order
        seen = {}
        for a in sub.payloads("/alert"):
            if a["kind"] == "alarm":
                seen.setdefault(a["id"], a)
        return seen

    try:
        assert svc.wait_ready()
        assert svc.health()["mqtt_broker"] == f"127.0.0.1:{first.port}"
        board.write(burst(range(0, 10)))
        assert subs[0].wait(lambda m: len(m) >= 4)
        first.stop()  # mid-burst: some alerts acknowledged by the first, some in flight, most not sent yet
        board.write(burst(range(10, 40)))
        assert wait_for(lambda: svc.outbox.depth == 0 and len(alarms(subs[1])) >= 30 * 4, timeout=20), \
            "the alerts raised after the stop did not all arrive on the second broker"
        first.start()  # its persistent session hands over what it had acknowledged before it stopped
        assert wait_for(lambda: len(alarms(subs[0]) | alarms(subs[1])) >= 39 * 4, timeout=20), \
            sorted((a["device"], a["readings"]["seq"]) for a in (alarms(subs[0]) | alarms(subs[1])).values())
        for d in DEVICES:  # order kept per board on each broker
            for sub in subs:
                seqs = [a["readings"]["seq"] for a in alarms(sub).values() if a["device"] == d]
                assert seqs == sorted(seqs), f"{d}: out of order on one broker: {seqs}"
        alerts = check_alerts(subs[0].messages + subs[1].messages)
        alarm_alerts = [a for a in alerts if a["kind"] == "alarm"]
        assert len(alarm_alerts) == 39 * 4  # none lost: every alarm the boards raised or ended arrived
        for d in DEVICES:
            assert sorted(a["readings"]["seq"] for a in alarm_alerts if a["device"] == d) == list(range(1, 40))
        on_second = alarms(subs[1])
        assert all(a["id"] in on_second for a in alarm_alerts if a["readings"]["seq"] >= 10), \
            "an alert raised after the stop missed the second broker"
        health = svc.health()
        assert health["mqtt_broker"] == f"127.0.0.1:{second.port}" and health["mqtt_connected"]
        assert health["mqtt_broker_switches"] >= 1
        assert f"connected to 127.0.0.1:{second.port}" in caplog.text
    finally:
        svc.stop()


def test_after_a_broker_switch_alerts_in_flight_go_out_before_newer_ones(edge_config, mosquitto, pty_pair,
                                                                       mqtt_subscriber):
    """paho re-sends what was in flight only after on_connect returns; on a busy machine the sender thread can
    publish newer alerts in that gap (CI saw d0 arrive as 10, 6, 7, 8, 9, 11). The gap is widened here on
    purpose (on_connect made slow): the alerts in flight at the switch still arrive before any newer one."""
    first, second = mosquitto(), mosquitto()
    board = pty_pair()
    sub = mqtt_subscriber(second, ["firedamp/testmine/+/alert"])
    svc = Service(parse_config(two_broker_settings(edge_config, [first, second], [board.device])))
    client = svc.publisher.client
    fast = client.on_connect

    def slow(*args):
        fast(*args)
        time.sleep(0.5)  # the gap before paho's own re-send, as a loaded machine makes it

    client.on_connect = slow
    svc.start()
    try:
        assert svc.wait_ready()
        first.proc.send_signal(signal.SIGSTOP)  # it takes the alerts and never acknowledges them
        board.write(burst(range(0, 4)))
        assert wait_for(lambda: svc.publisher.counters["alerts_sent"] >= 12, timeout=10)
        first.proc.kill()  # the connection drops with 12 alerts in flight (fewer than max_inflight, 20)
        first.proc.wait()
        assert wait_for(lambda: not svc.publisher.connected, timeout=10)
        board.write(burst(range(4, 10)))  # newer alerts, waiting in the outbox while the edge moves on
        assert wait_for(lambda: svc.outbox.depth >= 12 + 24, timeout=10)
        assert wait_for(lambda: svc.outbox.depth == 0, timeout=20)
        arrived = {}
        for a in sub.payloads("/alert"):
            if a["kind"] == "alarm":
                arrived.setdefault(a["id"], a)
        for d in DEVICES:
            seqs = [a["readings"]["seq"] for a in arrived.values() if a["device"] == d]
            assert seqs == sorted(seqs), f"{d}: newer alerts overtook the re-sent ones: {seqs}"
            assert len(seqs) == 9  # rounds 1..9 each raise or end an alarm: none lost
    finally:
        svc.stop()


def test_with_both_brokers_away_the_edge_goes_round_them_and_sends_to_whichever_comes_back(
        edge_config, mosquitto, pty_pair, mqtt_subscriber):
    first, second = mosquitto(), mosquitto(start=False)
    board = pty_pair()
    svc = Service(parse_config(two_broker_settings(edge_config, [first, second], [board.device])))
    svc.start()
    try:
        assert svc.wait_ready()
        first.stop()
        assert wait_for(lambda: svc.publisher.counters["connect_failures"] >= 4, timeout=15)  # both tried, twice
        board.write(burst(range(0, 10)))
        second.start()
        sub = mqtt_subscriber(second, ["firedamp/testmine/+/alert"])
        assert wait_for(lambda: svc.publisher.connected, timeout=15)
        assert svc.health()["mqtt_broker"] == f"127.0.0.1:{second.port}"
        assert sub.wait(lambda m: len(m) >= 9 * 4, timeout=10)
        assert [a["readings"]["seq"] for a in check_alerts(sub.messages)
                if a["device"] == "d0" and a["kind"] == "alarm"] == list(range(1, 10))
    finally:
        svc.stop()


class HangUp:
    """A listener that accepts each connection and closes it before any MQTT reply (as a NATS node that
    refuses sessions, or a half-dead broker, does)."""

    def __init__(self):
        import socket
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.host, self.port = "127.0.0.1", self.sock.getsockname()[1]
        self.accepted = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.recv(1024)  # the CONNECT
            conn.close()

    def close(self):
        self.sock.close()


def test_a_server_that_hangs_up_before_connack_is_left_for_the_next(edge_config, mosquitto, pty_pair,
                                                                     mqtt_subscriber):
    bad, good = HangUp(), mosquitto()
    board = pty_pair()
    sub = mqtt_subscriber(good, ["firedamp/testmine/+/alert"])
    svc = Service(parse_config(two_broker_settings(edge_config, [bad, good], [board.device])))
    svc.start()
    try:
        assert wait_for(lambda: svc.publisher.connected, timeout=15), \
            f"still not connected after {bad.accepted} hang-ups from the first server"
        assert svc.health()["mqtt_broker"] == f"127.0.0.1:{good.port}"
        board.write(burst(range(0, 4)))
        assert sub.wait(lambda m: len(m) >= 3 * 4, timeout=10)
    finally:
        svc.stop()
        bad.close()


def mqtt_endpoint(node):
    """A NATS node's MQTT listener, shaped like a Broker for mqtt_subscriber (MQTT 3.1.1, no TLS)."""
    return SimpleNamespace(host=node.host, port=node.port, tls=False)


def test_on_a_nats_cluster_mqtt_3_1_1_carries_alerts_retained_state_and_the_last_will_and_a_killed_node_is_left(
        tmp_path, edge_config, edge_toml, nats_cluster, socat_pty, mqtt_subscriber, edge_proc):
    cluster = nats_cluster()
    n1, n2, n3 = cluster.nodes
    line = socat_pty("board")
    settings = two_broker_settings(edge_config, [n1, n2], [line.device], protocol="3.1.1", telemetry=False)
    room = mqtt_subscriber(mqtt_endpoint(n3), ["firedamp/#"])
    edge = edge_proc(edge_toml(settings))
    assert room.wait(status_is(b"online"), timeout=20), "no retained `online` through NATS"

    def alarms(m):
        return [a for a in (json.loads(p) for t, p, _ in m if t.endswith("/alert")) if a["kind"] == "alarm"]

    line.write(burst(range(0, 5)))
    assert room.wait(lambda m: len({a["id"] for a in alarms(m)}) >= 4 * 4, timeout=15)
    # retained: a newcomer on another node gets every board's state at once. (NATS copies retained messages to
    # the other nodes asynchronously: a subscriber there within about a second of the publish may get none yet.)
    want = {f"firedamp/testmine/{d}/state" for d in DEVICES}
    deadline = time.monotonic() + 15
    while True:
        late = mqtt_subscriber(mqtt_endpoint(n2), ["firedamp/testmine/+/state"])
        if late.wait(lambda m: {t for t, _, retained in m if retained} >= want, timeout=1):
            break
        assert time.monotonic() < deadline, f"no retained state on another node: {late.messages}"
        late.close()
    n1.kill()  # the edge's node dies mid-burst: the edge moves to n2
    line.write(burst(range(5, 15)))
    assert room.wait(lambda m: len({a["id"] for a in alarms(m)}) >= 14 * 4, timeout=30), \
        sorted({(a["device"], a["readings"]["seq"]) for a in alarms(room.messages)})
    alerts = check_alerts(room.messages)
    for d in DEVICES:
        assert [a["readings"]["seq"] for a in alerts if a["device"] == d and a["kind"] == "alarm"] == list(range(1, 15))
    assert wait_for(lambda: f"connected to {n2.host}:{n2.port}" in (tmp_path / "edge.log").read_text(), timeout=5)
    edge.kill()  # no DISCONNECT: the node publishes the last will
    assert room.wait(status_is(b"offline"), timeout=15), "NATS did not publish the edge's last will"
