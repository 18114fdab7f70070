"""Two virtual boards on one edge service (`firedamp run`), each under its own MQTT topics.

Board A runs a normal mine, board B the story (ventilation loss, alarm, power-off). Telemetry of both
arrives under each device's own topic; B's alarm arrives on B's alert topic only, and A raises none. When
board A is unplugged and boots again on the same port, the edge reconnects and reports A's reboot.
"""

import signal


def test_two_boards_one_edge_each_with_its_own_topics(board, mosquitto, subscriber, firedamp, tmp_path):
    broker = mosquitto()
    sub = subscriber(broker.host, broker.port, "firedamp/#")
    a = board("board-a", "normal", 30.0)
    b = board("board-b", "story", 30.0)
    config = tmp_path / "edge.toml"
    config.write_text(f"""
edge_id = "e2e-edge"
site = "e2e"
data_dir = "{tmp_path / 'data'}"
[[boards]]
port = "{a.link}"
[[boards]]
port = "{b.link}"
[mqtt]
host = "{broker.host}"
port = {broker.port}
discovery = false
[outbox]
fsync = false
""")
    edge = firedamp.popen("run", "--config", str(config), log=tmp_path / "edge.log")
    try:
        def b_alarmed(msgs):
            return any(t == "firedamp/e2e/board-b/alert" and d.get("kind") == "alarm" and d.get("state") == "raised"
                       for t, d in msgs)

        assert sub.wait(b_alarmed, timeout=90), (tmp_path / "edge.log").read_text()[-3000:]

        # board A is unplugged and boots again on the same link: the edge finds it and says it rebooted
        a.stop()
        a.start()

        def a_rebooted(msgs):
            return any(t == "firedamp/e2e/board-a/alert" and d.get("kind") == "reboot" for t, d in msgs)

        assert sub.wait(a_rebooted, timeout=30), (tmp_path / "edge.log").read_text()[-3000:]
        seen = len(sub.snapshot())
        assert sub.wait(lambda msgs: any(t == "firedamp/e2e/board-a/telemetry" for t, _ in msgs[seen:]), 10)
    finally:
        edge.send_signal(signal.SIGTERM)
        assert edge.wait(20) == 0, (tmp_path / "edge.log").read_text()[-3000:]

    msgs = sub.snapshot()
    for name in ("board-a", "board-b"):
        tele = [d for t, d in msgs if t == f"firedamp/e2e/{name}/telemetry"]
        assert len(tele) >= 10 and all(d["device"] == name for d in tele), name
        states = [d for t, d in msgs if t == f"firedamp/e2e/{name}/state"]
        assert states and all(d["device"] == name for d in states), name
    alerts = [(t, d) for t, d in msgs if t.endswith("/alert")]
    assert all(d["device"] == t.split("/")[2] for t, d in alerts)
    assert not [d for t, d in alerts if d["device"] == "board-a" and not d.get("advisory")
                and d["kind"] in ("alarm", "power_off", "fault")]
    assert any(t.endswith("e2e-edge/status") for t, _ in msgs)
