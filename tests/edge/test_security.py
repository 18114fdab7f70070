"""Security against a real Mosquitto: wrong password and wrong CA fail with a clear error (alerts wait in
the outbox), a TLS-configured service never talks plaintext, an ACL-refused alert is not taken as
delivered, client certificates work, and no secret ever reaches the log."""

import json
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge.config import parse_config
from edge.service import Service
from tests.helpers import board_line, wait_for

ROOT = Path(__file__).parents[2]
ALARM = board_line(5, "ALARM", ch4=1.2, flow=10.0, total=1.0)


@pytest.fixture
def run_service():
    services = []

    def start(settings):
        svc = Service(parse_config(settings))
        services.append(svc)
        svc.start()
        return svc

    yield start
    for s in services:
        s.stop()


def test_wrong_password_is_a_clear_error_and_alerts_wait_in_the_outbox(
        edge_config, mosquitto, pty_pair, mqtt_subscriber, run_service, caplog):
    broker = mosquitto(auth=True)
    board = pty_pair()
    reader = mqtt_subscriber(broker, ["firedamp/#"], username="reader", password=broker.users["reader"])
    settings = edge_config(broker, [board.device], model={"enabled": False})
    settings["mqtt"]["password"] = "not-the-password"
    with caplog.at_level(logging.INFO):
        svc = run_service(settings)
        assert wait_for(lambda: svc.publisher.last_error) and svc.wait_ready(mqtt=False)
        board.write(ALARM)
        assert wait_for(lambda: svc.outbox.depth == 1)
    err = svc.publisher.last_error
    assert "refused" in err and ("password" in err.lower() or "authori" in err.lower()), err
    assert err in caplog.text and "not-the-password" not in caplog.text
    assert not svc.publisher.connected and svc.health()["mqtt_last_error"] == err
    time.sleep(0.5)
    assert reader.messages == []


def test_right_password_and_acl(edge_config, mosquitto, pty_pair, mqtt_subscriber, run_service):
    broker = mosquitto(auth=True)
    board = pty_pair()
    reader = mqtt_subscriber(broker, ["firedamp/+/+/alert"], username="reader", password=broker.users["reader"])
    svc = run_service(edge_config(broker, [board.device], model={"enabled": False}))
    assert svc.wait_ready()
    board.write(ALARM)
    assert reader.wait(lambda m: len(m) == 1)
    assert wait_for(lambda: svc.outbox.depth == 0)


def test_an_alert_the_acl_refuses_stays_in_the_outbox_and_is_reported(
        edge_config, mosquitto, pty_pair, run_service, caplog):
    broker = mosquitto(auth=True)
    board = pty_pair()
    svc = run_service(edge_config(broker, [board.device], model={"enabled": False}, mqtt={"topic_prefix": "elsewhere"}))
    assert svc.wait_ready()
    with caplog.at_level(logging.ERROR):
        board.write(ALARM)
        assert wait_for(lambda: svc.publisher.counters["alerts_refused"] >= 1)
    assert svc.outbox.depth == 1 and "refused alert" in caplog.text and "ACL" in caplog.text


def test_wrong_ca_is_a_clear_tls_error(edge_config, mosquitto, pty_pair, mqtt_subscriber, run_service, certs):
    broker = mosquitto(tls=True)
    board = pty_pair()
    sub = mqtt_subscriber(broker, ["#"])
    settings = edge_config(broker, [board.device], model={"enabled": False})
    settings["mqtt"]["ca_file"] = str(certs.other_ca_file)
    svc = run_service(settings)
    assert wait_for(lambda: svc.publisher.last_error)
    assert "TLS" in svc.publisher.last_error and "cannot be verified" in svc.publisher.last_error
    assert svc.wait_ready(mqtt=False)
    board.write(ALARM)
    assert wait_for(lambda: svc.outbox.depth == 1)
    assert sub.messages == []


def test_tls_service_never_falls_back_to_plaintext(edge_config, mosquitto, pty_pair, run_service, certs):
    plain = mosquitto()  # a plaintext listener where the config expects TLS
    board = pty_pair()
    settings = edge_config(plain, [board.device], model={"enabled": False})
    settings["mqtt"].update(tls=True, tls_required=True, ca_file=str(certs.ca_file))
    svc = run_service(settings)
    assert wait_for(lambda: svc.publisher.last_error)
    assert "TLS" in svc.publisher.last_error and "TLS listener" in svc.publisher.last_error
    assert wait_for(lambda: svc.publisher.counters["connect_failures"] >= 2, timeout=5)  # through a retry
    assert svc.publisher.counters["connects"] == 0 and not svc.publisher.connected
    assert "New client connected" not in plain.log()  # no MQTT CONNECT ever reached it in plaintext


def test_tls_with_a_client_certificate(edge_config, mosquitto, pty_pair, mqtt_subscriber, run_service, certs):
    broker = mosquitto(tls=True, require_client_cert=True)
    board = pty_pair()
    settings = edge_config(broker, [board.device], model={"enabled": False})
    settings["mqtt"].update(cert_file=str(certs.client_cert), key_file=str(certs.client_key))
    svc = run_service(settings)
    assert svc.wait_ready(), svc.publisher.last_error
    board.write(ALARM)
    assert wait_for(lambda: svc.outbox.depth == 0 and svc.publisher.counters["alerts_acked"] == 1)


def test_secrets_never_appear_in_the_log_of_firedamp_run(tmp_path, edge_config, edge_toml, mosquitto, pty_pair):
    broker = mosquitto(auth=True, tls=True)
    board = pty_pair()
    pw_file = tmp_path / "mqtt-password"
    pw_file.write_text(broker.users["edge"] + "\n")
    settings = edge_config(broker, [board.device], model={"enabled": False}, log_level="debug")
    del settings["mqtt"]["password"]
    settings["mqtt"]["password_file"] = str(pw_file)
    log_path = tmp_path / "run.log"
    with open(log_path, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "edge.cli", "run", "--config", str(edge_toml(settings))],
                                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        assert wait_for(lambda: "MQTT: connected" in log_path.read_text(), timeout=15), log_path.read_text()
        board.write(ALARM)
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    log = log_path.read_text()
    assert broker.users["edge"] not in log
    assert "setting mqtt.password_file" in log and "setting mqtt.username = 'edge'" in log
    assert "alert alarm raised b1" in log and "firedamp edge stopped" in log
    # and the health message published on the broker carries no secret either
    assert json.dumps(settings["mqtt"]["password_file"])  # (the path is fine to show; the content is not)


def test_reconnect_backoff_follows_the_config_below_one_second(edge_config, run_service):
    """[mqtt] reconnect_min_s/max_s are used as given (0.2 s → 0.4 s), not rounded up to whole seconds."""
    svc = run_service(edge_config(None, [], model={"enabled": False},
                                  mqtt={"reconnect_min_s": 0.2, "reconnect_max_s": 0.4}))
    time.sleep(2.0)
    assert svc.publisher.counters["connect_failures"] >= 4, svc.publisher.counters  # 1 s steps would give ≤ 3
    assert "nothing accepts connections" in svc.publisher.last_error


def test_client_id_and_keepalive_reach_the_broker(edge_config, mosquitto, run_service):
    broker = mosquitto(auth=True)
    svc = run_service(edge_config(broker, [], model={"enabled": False},
                                  mqtt={"client_id": "edge-seven", "keepalive_s": 17}))
    assert wait_for(lambda: svc.publisher.connected)
    assert wait_for(lambda: "as edge-seven (p5, c1, k17, u'edge')" in broker.log()), broker.log()[-500:]


def test_a_broker_that_never_answers_the_tls_handshake_times_out_after_connect_timeout_s(edge_config, run_service,
                                                                                        certs):
    import socket

    with socket.socket() as silent:  # accepts TCP (the kernel's backlog) and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        settings = edge_config(None, [], model={"enabled": False})
        settings["mqtt"].update(port=silent.getsockname()[1], tls=True, ca_file=str(certs.ca_file),
                                connect_timeout_s=0.5, reconnect_min_s=5, reconnect_max_s=5)
        t0 = time.monotonic()
        svc = run_service(settings)
        assert wait_for(lambda: svc.publisher.last_error, timeout=3), "no timeout within 3 s (paho's default is 5 s)"
        assert "timed out" in svc.publisher.last_error and time.monotonic() - t0 < 3


def test_an_unresponsive_broker_does_not_hold_up_reading_the_boards(edge_config, run_service, certs, pty_pair):
    import socket

    board = pty_pair()
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        settings = edge_config(None, [board.device], model={"enabled": False})
        settings["mqtt"].update(port=silent.getsockname()[1], tls=True, ca_file=str(certs.ca_file),
                                connect_timeout_s=4)
        t0 = time.monotonic()
        svc = run_service(settings)
        assert svc.wait_ready(timeout=3, mqtt=False) and time.monotonic() - t0 < 1.5, "start() waited for the broker"
        board.write(ALARM)
        assert wait_for(lambda: svc.outbox.depth == 1, timeout=2)
