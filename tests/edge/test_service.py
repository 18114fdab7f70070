"""The whole edge service in-process against a real Mosquitto and real ptys: alerts, telemetry, retained
state, status/last will, Home Assistant discovery, the live-view queue, garbage on the line, unplug/replug."""

import json
import random
import time

from tests.helpers import board_line as frame


def test_alerts_telemetry_state_status_and_the_live_view(edge_config, mosquitto, pty_pair, mqtt_subscriber,
                                                         service_factory):
    broker = mosquitto()
    board = pty_pair()
    sub = mqtt_subscriber(broker, ["firedamp/#"])
    svc = service_factory(edge_config(broker, [board.device]))
    live = svc.observe()
    svc.start()
    assert svc.wait_ready()
    assert sub.wait(lambda m: ("firedamp/testmine/pi-test/status", b"online", False) in m or
                    any(t.endswith("/status") and p == b"online" for t, p, _ in m))
    states = ["NORMAL"] * 5 + ["ALARM"] * 3 + ["POWEROFF"] * 3 + ["NORMAL"] * 3
    for i, s in enumerate(states):
        board.write(frame(i, s, ch4=1.2 if s != "NORMAL" else 0.45))
    assert sub.wait(lambda m: len([1 for t, *_ in m if t.endswith("/alert")]) >= 4)
    time.sleep(0.3)
    alerts = sub.payloads("/alert")
    board_alerts = [(a["kind"], a["state"], a["readings"]["seq"]) for a in alerts if not a["advisory"]]
    assert board_alerts == [("alarm", "raised", 5), ("power_off", "raised", 8), ("alarm", "cleared", 8),
                            ("power_off", "cleared", 11)]
    a = alerts[0]
    assert a["site"] == "testmine" and a["edge"] == "pi-test" and a["device"] == "b1" and a["severity"] == "critical"
    assert len({x["id"] for x in alerts}) == len(alerts)
    assert sub.wait(lambda m: len([1 for t, *_ in m if t.endswith("/telemetry")]) == len(states))
    tele = sub.payloads("/telemetry")
    assert [t["seq"] for t in tele] == list(range(len(states))) and "score" in tele[0]
    # a newcomer gets the retained state and status at once
    late = mqtt_subscriber(broker, ["firedamp/testmine/b1/state", "firedamp/testmine/pi-test/status"])
    assert late.wait(lambda m: len(m) >= 2, timeout=3)
    state = [json.loads(p) for t, p, r in late.messages if t.endswith("/state") and r][0]
    assert state["state"] == "NORMAL" and state["relay"] == 1 and state["link"] == "up"
    assert sub.wait(lambda m: any(t.endswith("/health") for t, *_ in m), timeout=3)
    health = sub.payloads("/health")[-1]
    assert health["frames_ok"] >= 1 and "outbox_depth" in health and "frames_rejected" in health
    kinds = set()
    while not live.empty():
        kinds.add(live.get().kind)
    assert {"reading", "alert", "link"} <= kinds
    svc.stop()
    assert sub.wait(lambda m: m[-1][0].endswith("/status") and m[-1][1] == b"offline", timeout=3)
    assert svc.outbox.depth == 0


def test_home_assistant_discovery_is_sent_and_resent_when_home_assistant_comes_online(
        edge_config, mosquitto, pty_pair, mqtt_subscriber, service_factory):
    broker = mosquitto()
    board = pty_pair()
    svc = service_factory(edge_config(broker, [board.device]))
    svc.start()
    assert svc.wait_ready()
    board.write(frame(1))
    ha = mqtt_subscriber(broker, ["homeassistant/+/+/+/config"])
    assert ha.wait(lambda m: len(m) >= 7)
    cfg = {t: json.loads(p) for t, p, _ in ha.messages}
    ch4 = cfg["homeassistant/sensor/firedamp_testmine/b1_ch4/config"]
    assert ch4["state_topic"] == "firedamp/testmine/b1/telemetry" and ch4["unit_of_measurement"] == "%"
    assert ch4["availability"][0]["topic"] == "firedamp/testmine/pi-test/status"
    n = len(ha.messages)
    ha.client.publish("homeassistant/status", b"online", qos=1)
    assert ha.wait(lambda m: len(m) >= n + 7), "discovery was not re-sent after homeassistant/status online"


def test_garbage_on_the_line_is_counted_and_never_becomes_a_reading(edge_config, mosquitto, pty_pair, service_factory):
    broker = mosquitto()
    board = pty_pair()
    svc = service_factory(edge_config(broker, [board.device]))
    readings = []
    svc.add_observer(lambda kind, data: readings.append(data["reading"]) if kind == "reading" else None)
    svc.start()
    assert svc.wait_ready()
    rng = random.Random(7)
    good = 0
    for i in range(200):
        if i % 4 == 0:
            board.write(frame(good))
            good += 1
        else:
            board.write(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))) + b"\n")
    bad_crc = bytearray(frame(good))
    bad_crc[20] ^= 0x01
    board.write(bytes(bad_crc) + b"$FD2,R,b1*00000000\n" + b"$FD1," + b"x" * 200 + b"\n")
    board.write(frame(good, state="ALARM", ch4=120.0).replace(b"120.00", b"12O.00"))  # unparsable gas value
    board.write(frame(good + 1))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (not readings or readings[-1].seq != good + 1):
        time.sleep(0.02)
    assert [r.seq for r in readings] == list(range(good)) + [good + 1]
    rej = svc.decoder.rejected
    assert rej["checksum"] >= 1 and rej["version"] >= 1 and rej["too_long"] >= 1 and sum(rej.values()) >= 150
    assert all(r.device == "b1" for r in readings)
    assert not any(a.kind == "alarm" for a in svc.policy.devices["b1"].active if svc.policy.devices["b1"].active[a])


def test_unplug_mid_frame_gives_link_lost_then_restored_and_no_partial_reading(
        edge_config, mosquitto, socat_pty, mqtt_subscriber, service_factory):
    broker = mosquitto()
    line = socat_pty("board")
    sub = mqtt_subscriber(broker, ["firedamp/testmine/+/alert"])
    svc = service_factory(edge_config(broker, [line.device]))
    readings = []
    svc.add_observer(lambda kind, data: readings.append(data["reading"].seq) if kind == "reading" else None)
    svc.start()
    assert svc.wait_ready()
    time.sleep(0.2)
    line.write(frame(1) + frame(2))
    line.write(frame(3)[:25])  # the cable is pulled in the middle of frame 3
    time.sleep(0.2)
    line.unplug()
    assert sub.wait(lambda m: any(json.loads(p)["kind"] == "link" for _, p, _ in m))
    line.replug()
    time.sleep(0.3)
    line.write(frame(4))
    assert sub.wait(lambda m: [json.loads(p)["state"] for _, p, _ in m if json.loads(p)["kind"] == "link"]
                    == ["raised", "cleared"], timeout=5)
    assert readings == [1, 2, 4]
    assert svc.health()["link_partial_lines_dropped"] == 1  # the start of frame 3, counted, never parsed
    assert sub.wait(lambda m: any(json.loads(p)["kind"] == "frames_lost" for _, p, _ in m))
    lost = [json.loads(p) for _, p, _ in sub.messages if json.loads(p)["kind"] == "frames_lost"]
    assert lost and lost[0]["details"]["lost"] == 1  # frame 3 never arrived whole


def test_stop_without_start_closes_cleanly(edge_config, service_factory):
    svc = service_factory(edge_config(None, ["/dev/does-not-exist"], model={"enabled": False}))
    svc.stop()
    assert svc.outbox.depth == 0


def test_prometheus_metrics_endpoint(edge_config, pty_pair, service_factory):
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    board = pty_pair()
    svc = service_factory(edge_config(None, [board.device], model={"enabled": False},
                                      metrics={"enabled": True, "port": port}))
    svc.start()
    assert svc.wait_ready(mqtt=False)
    board.write(frame(1) + b"garbage\n" + frame(2))
    deadline = time.monotonic() + 3
    while svc.decoder.ok < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3).read().decode()
    assert 'firedamp_frames_ok_total{edge="pi-test",site="testmine"} 2' in text
    assert 'firedamp_frames_rejected_total{edge="pi-test",site="testmine",reason="no_start"} 1' in text
    assert f'firedamp_link_up{{edge="pi-test",site="testmine",port="{board.device}"}} 1' in text
    assert "# TYPE firedamp_outbox_depth gauge" in text


def test_an_alert_paho_never_sent_is_sent_again_and_the_outbox_does_not_stall(
        edge_config, mosquitto, pty_pair, mqtt_subscriber, service_factory, monkeypatch):
    from types import SimpleNamespace

    from edge.publisher import Publisher

    monkeypatch.setattr(Publisher, "resend_after_s", 0.5)
    broker = mosquitto()
    board = pty_pair()
    sub = mqtt_subscriber(broker, ["firedamp/+/+/alert"])
    svc = service_factory(edge_config(broker, [board.device], model={"enabled": False}))
    real = svc.publisher.client.publish
    dropped = []

    def lossy(topic, payload=None, *a, **kw):
        if topic.endswith("/alert") and not dropped:
            dropped.append(payload)
            return SimpleNamespace(mid=65000, rc=0)  # "sent", but nothing went out
        return real(topic, payload, *a, **kw)

    svc.publisher.client.publish = lossy
    svc.start()
    assert svc.wait_ready()
    board.write(frame(1, "ALARM", ch4=1.2))
    assert sub.wait(lambda m: len(m) >= 1, timeout=5)
    time.sleep(1)
    assert len(sub.messages) == 1, sub.messages  # once: the resend is not repeated
    assert dropped and json.loads(sub.messages[0][1])["id"] == json.loads(dropped[0])["id"]
    deadline = time.monotonic() + 3
    while svc.outbox.depth and time.monotonic() < deadline:
        time.sleep(0.05)
    assert svc.outbox.depth == 0


def test_an_alert_paho_refuses_to_queue_is_offered_again_at_once_not_after_the_resend_delay(
        edge_config, mosquitto, pty_pair, mqtt_subscriber, service_factory):
    """paho's publish() can refuse a message (its queue full, or the message id still in use); the alert must
    not be taken as in flight (it would wait the 60 s resend delay, or a late PUBACK could remove another)."""
    import signal

    broker = mosquitto()
    board = pty_pair()
    sub = mqtt_subscriber(broker, ["firedamp/+/+/alert"])
    svc = service_factory(edge_config(broker, [board.device], model={"enabled": False}, mqtt={"telemetry": False}))
    svc.publisher.client.max_queued_messages_set(1)  # one unacknowledged QoS 1 message at a time
    svc.start()
    assert svc.wait_ready()
    board.write(frame(1))
    time.sleep(0.5)  # its state message is acknowledged
    broker.proc.send_signal(signal.SIGSTOP)  # no PUBACK comes back
    try:
        board.write(frame(2, "ALARM", ch4=1.2))  # its state message takes the only place; the alert is refused
        time.sleep(0.5)
    finally:
        broker.proc.send_signal(signal.SIGCONT)
    assert sub.wait(lambda m: len(m) >= 1, timeout=3), "the refused alert was not offered again"
    deadline = time.monotonic() + 3
    while svc.outbox.depth and time.monotonic() < deadline:
        time.sleep(0.05)
    assert svc.outbox.depth == 0


def test_a_config_without_boards_is_loud_in_the_log_and_in_health(edge_config, pty_pair, service_factory, caplog):
    import logging

    with caplog.at_level(logging.WARNING, logger="firedamp"):
        svc = service_factory(edge_config(None, [], model={"enabled": False})).start()
    assert "monitors NOTHING" in caplog.text and "[[boards]]" in caplog.text
    assert svc.health()["no_boards"] is True
    from edge.metrics import render

    assert 'firedamp_no_boards{edge="pi-test",site="testmine"} 1' in render(svc.health())
    caplog.clear()
    board = pty_pair()
    with caplog.at_level(logging.WARNING, logger="firedamp"):
        other = service_factory(edge_config(None, [board.device], model={"enabled": False},
                                            data_dir=str(edge_config(None, [])["data_dir"]) + "-2")).start()
    assert other.health()["no_boards"] is False and "monitors NOTHING" not in caplog.text


def test_a_fault_that_changes_type_while_the_board_stays_in_fault_says_which_faults_are_present_now(
        edge_config, mosquitto, pty_pair, mqtt_subscriber, service_factory):
    broker = mosquitto()
    board = pty_pair()
    sub = mqtt_subscriber(broker, ["firedamp/testmine/+/alert"])
    svc = service_factory(edge_config(broker, [board.device], model={"enabled": False}))
    svc.start()
    assert svc.wait_ready()
    # LINE -> STUCK -> STUCK+NOFLOW -> RAIL, the board in FAULT all along, then healthy again
    masks = [0x01, 0x01, 0x08, 0x18, 0x18, 0x02]
    board.write(frame(1) + b"".join(frame(2 + i, "FAULT", ch4=None, faults=m) for i, m in enumerate(masks))
                + frame(8))
    assert sub.wait(lambda m: len(m) >= 5, timeout=5)
    faults = [(a["state"], a["details"].get("faults"), a["readings"]["seq"]) for a in sub.payloads("/alert")
              if a["kind"] == "fault"]
    assert faults == [("raised", ["LINE"], 2), ("raised", ["STUCK"], 4), ("raised", ["STUCK", "NOFLOW"], 5),
                      ("raised", ["RAIL"], 7), ("cleared", [], 8)]
    updates = [a for a in sub.payloads("/alert") if a["kind"] == "fault" and "was" in a["details"]]
    assert [u["details"]["was"] for u in updates] == [["LINE"], ["STUCK"], ["STUCK", "NOFLOW"]]
    assert "now STUCK+NOFLOW (was STUCK)" in updates[1]["message"]
