"""The control room in-process against a real Mosquitto, driven over HTTP as a browser would (no browser here:
tests/e2e/test_control_room_browser.py has the parts only a browser shows)."""

import json
import re
import socket
import time

from tests.control.kit import wait


def test_everything_needs_a_login_and_the_session_cookie_is_httponly_samesite(mosquitto, control_room, web):
    room = control_room(mosquitto())
    w = web(room)
    r = w.get("/")
    assert r.status == 303 and r.headers["Location"] == "/login?next=/"
    assert w.get("/index.json").status == 401 and w.get("/live").status == 401
    assert w.get("/board/mine/b1.csv").status == 401 and w.get("/report.json").status == 401
    assert w.get("/-/health").status == 200  # the liveness probe only
    r = w.post("/login", {"user": "victor", "password": "victor-viewer-pw", "next": "/report"})
    assert r.status == 303 and r.headers["Location"] == "/report"
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert w.get("/index.json").status == 200
    # never an open redirect after login
    r = web(room).post("/login", {"user": "victor", "password": "victor-viewer-pw", "next": "//evil.example/"})
    assert r.headers["Location"] == "/"


def test_failed_logins_are_refused_and_then_rate_limited(mosquitto, control_room, web, caplog):
    room = control_room(mosquitto(), web={"login_failures": 3, "login_window_s": 60})
    w = web(room)
    for _ in range(3):
        assert w.post("/login", {"user": "olga", "password": "wrong password"}).status == 401
    r = w.post("/login", {"user": "olga", "password": "olga-operator-pw"})
    assert r.status == 429 and "Too many failed logins" in r.text and "Set-Cookie" not in r.headers
    assert "failed login for 'olga'" in caplog.text and "too many failures" in caplog.text
    status = web(room).login("victor").json("/-/status.json")  # another person at the same address is not locked out
    assert status["auth"]["login_failures"] == 3 and status["auth"]["logins_refused_rate"] == 1
    for i in range(9):  # but an address that keeps guessing (names too) is, after 4 x login_failures
        web(room).post("/login", {"user": f"guess{i}", "password": "guess"})
    assert web(room).post("/login", {"user": "victor", "password": "victor-viewer-pw"}).status == 429


def test_an_edge_alert_is_on_the_page_once_and_an_operator_acknowledges_it_for_everyone(
        mosquitto, control_room, web, edge_sim):
    broker = mosquitto()
    room = control_room(broker)
    edge = edge_sim(broker)
    edge.telemetry("pico-01", ch4=1.12, state="ALARM")
    a = edge.alert("pico-01", "alarm", message="pico-01: methane 1.12 % vol, at or over the alarm level")
    edge.publish("firedamp/mine-a/pico-01/alert", a.to_json())  # the edge sent it again (no PUBACK seen)
    olga, victor = web(room).login("olga"), web(room).login("victor")
    page = wait(lambda: (d := victor.json("/index.json"))["alerts"]["active"] and d)
    assert [x["id"] for x in page["alerts"]["active"]] == [a.id]
    assert page["boards"][0]["state"] == "ALARM" and page["boards"][0]["data"] == "live"
    assert 'name="note"' not in victor.get("/").text  # a viewer has no acknowledge form
    assert 'name="note"' in olga.get("/").text

    # a viewer's POST is refused even with its own valid CSRF token
    token = victor.csrf("/")
    r = victor.post(f"/alerts/{a.id}/ack", {"csrf": token, "note": "seen"})
    assert r.status == 403 and "only an operator" in r.text
    # an operator's POST without the form's token, or from another site, is refused
    assert olga.post(f"/alerts/{a.id}/ack", {"note": "seen"}).status == 403
    r = olga.post(f"/alerts/{a.id}/ack", {"csrf": olga.csrf(), "note": "seen"}, headers={"Origin": "http://evil.example"})
    assert r.status == 403
    assert olga.post(f"/alerts/{a.id}/ack", {"csrf": olga.csrf(), "note": "  "}).status == 400
    r = olga.post(f"/alerts/{a.id}/ack", {"csrf": olga.csrf(), "note": "ventilation fan 2 restarted"})
    assert r.status == 303
    ack = victor.json("/index.json")["alerts"]["active"][0]["ack"]
    assert (ack["user"], ack["note"]) == ("olga", "ventilation fan 2 restarted") and ack["time"]
    assert "acknowledged by <b>olga</b>" in victor.get("/").text
    r = web(room).login("omar").post(f"/alerts/{a.id}/ack", {"csrf": olga.csrf(), "note": "again"})
    assert r.status == 403  # another session's token
    omar = web(room).login("omar")
    r = omar.post(f"/alerts/{a.id}/ack", {"csrf": omar.csrf(), "note": "again"})
    assert r.status == 409 and "already acknowledged by olga" in r.text
    # still active: an acknowledgement never clears anything (only the board's own state does)
    assert victor.json("/index.json")["alerts"]["active"][0]["active"] is True
    assert len(room.store.alerts(limit=100)) == 1


def test_a_hostile_device_id_and_message_are_escaped_and_bad_payloads_counted(mosquitto, control_room, web, edge_sim):
    broker = mosquitto()
    room = control_room(broker)
    edge = edge_sim(broker)
    evil = '<img src=x onerror=alert(1)>'
    edge.telemetry(evil, ch4=0.2)
    edge.alert(evil, "fault", message='<script>alert("pwned")</script> & more')
    edge.publish("firedamp/mine-a/pico-01/telemetry", b"{broken")
    edge.publish("firedamp/mine-a/pico-01/telemetry", json.dumps({"device": "pico-01", "s": "x" * 100_000}).encode())
    w = web(room).login("victor")
    wait(lambda: w.json("/-/status.json")["counters"]["messages_rejected"]["too_large"] == 1)
    html = w.get("/").text
    assert "<img src=x" not in html and "<script>alert" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "&lt;script&gt;alert(&quot;pwned&quot;)" in html
    counters = w.json("/-/status.json")["counters"]
    assert counters["messages_rejected"]["json"] == 1 and counters["messages_rejected"]["too_large"] == 1
    board = w.get("/board/mine-a/" + "%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E")
    assert board.status == 200 and "<img src=x" not in board.text


def test_the_page_uses_no_outside_asset_and_sends_a_strict_content_security_policy(mosquitto, control_room, web):
    room = control_room(mosquitto())
    w = web(room).login("victor")
    r = w.get("/")
    refs = re.findall(r'(?:src|href|action)="([^"]*)"', r.text)
    assert refs and all(ref.startswith(("/", "?", "#")) and not ref.startswith("//") for ref in refs), refs
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "<script>" not in r.text  # no inline script
    for asset in ("/static/app.js", "/static/style.css"):
        assert web(room).get(asset).status == 200
    assert web(room).get("/static/../config.py").status == 404


def test_malformed_http_gets_a_4xx_and_the_server_keeps_serving(mosquitto, control_room, web):
    room = control_room(mosquitto())
    port = room.http.server_address[1]

    def raw(data: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(data)
            out = b""
            while chunk := s.recv(4096):
                out += chunk
            return out

    assert raw(b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.1 400")
    assert raw(b"GET /\x00 HTTP/9.9\r\n\r\n").startswith(b"HTTP/1.1 505")
    assert raw(b"BREW / HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 501")
    assert raw(b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X: " + b"a" * 70_000 + b"\r\n\r\n")[:12] in \
        (b"HTTP/1.1 431", b"HTTP/1.1 400")
    big = raw(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n"
              b"Content-Type: application/x-www-form-urlencoded\r\n\r\nuser=a")
    assert big.startswith(b"HTTP/1.1 413")
    assert raw(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n").startswith(b"HTTP/1.1 411")
    assert raw(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Type: text/plain\r\n\r\nuser"
               ).startswith(b"HTTP/1.1 415")
    w = web(room).login("victor")
    assert w.get("/board/nope/nothing").status == 404 and w.get("/alerts?span=zz").status == 400
    assert w.get("/report?shift=2026-13-01.1").status == 400 and w.get("/report?shift=2026-12-01.4").status == 400
    assert w.get("/").status == 200
    assert w.json("/-/status.json")["counters"]["http"]["http_400"] >= 1


def test_a_silent_board_and_an_offline_edge_show_no_data_and_raise_alerts_that_clear(
        mosquitto, control_room, web, edge_sim):
    broker = mosquitto()
    room = control_room(broker, stale={"board_silent_s": 2, "edge_silent_s": 5})
    edge = edge_sim(broker)
    edge.state("pico-01")
    edge.state("pico-02")
    edge.telemetry("pico-01")
    edge.telemetry("pico-02")
    w = web(room).login("victor")
    boards = lambda: {b["device"]: b for b in w.json("/index.json")["boards"]}  # noqa: E731
    wait(lambda: len(boards()) == 2 and all(b["data"] == "live" for b in boards().values()))
    # pico-02 goes quiet; pico-01 keeps talking
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        edge.telemetry("pico-01")
        time.sleep(0.3)
    b = boards()
    assert b["pico-01"]["data"] == "live"
    assert b["pico-02"]["data"] == "no data" and "no telemetry" in b["pico-02"]["nodata_reason"]
    active = w.json("/index.json")["alerts"]["active"]
    assert [(a["kind"], a["device"], a["source"]) for a in active] == [("no_data", "pico-02", "control-room")]
    assert "NO DATA" in w.get("/").text
    edge.telemetry("pico-02")
    wait(lambda: not w.json("/index.json")["alerts"]["active"])
    cleared = w.json("/alerts.json")["alerts"]
    assert [a["cleared_message"] for a in cleared if a["kind"] == "no_data"] == ["pico-02: telemetry again"]

    # the edge dies: its last will (retained "offline") turns all its boards to no data, one alert for the edge
    edge.offline()
    wait(lambda: all(b["data"] == "no data" for b in boards().values()))
    assert all("offline" in b["nodata_reason"] for b in boards().values())
    active = w.json("/index.json")["alerts"]["active"]
    assert [(a["kind"], a["edge"], a["device"]) for a in active] == [("edge_offline", "pi-01", "")]
    edge.publish("firedamp/mine-a/pi-01/status", b"online", retain=True)
    edge.telemetry("pico-01")
    edge.telemetry("pico-02")
    wait(lambda: not w.json("/index.json")["alerts"]["active"] and
         all(b["data"] == "live" for b in boards().values()))


def test_alerts_sent_while_the_control_room_was_down_arrive_after_it_restarts(mosquitto, control_room, web, edge_sim):
    broker = mosquitto()
    room = control_room(broker)
    edge = edge_sim(broker)
    edge.alert("pico-01", "alarm")
    w = web(room).login("victor")
    wait(lambda: w.json("/index.json")["alerts"]["active"])
    cid, path = room.cfg.source.client_id, room.cfg.store.path
    room.stop()
    while_down = [edge.alert("pico-01", "power_off"), edge.alert("pico-02", "fault")]
    again = control_room(broker, source={"client_id": cid}, store={"path": path})
    w = web(again).login("victor")
    ids = wait(lambda: {a["id"] for a in w.json("/index.json")["alerts"]["active"]} >= {a.id for a in while_down})
    assert ids


def test_a_store_that_cannot_write_loses_nothing_and_acknowledges_nothing_until_it_can(
        mosquitto, control_room, web, edge_sim, caplog):
    from control.store import StoreError

    broker = mosquitto()
    room = control_room(broker)
    real_apply, failing = room.store.apply, {"n": 5}

    def flaky(msgs, now):
        if failing["n"] > 0:
            failing["n"] -= 1
            raise StoreError("cannot write control.sqlite: disk I/O error")
        return real_apply(msgs, now)

    room.store.apply = flaky
    edge = edge_sim(broker)
    sent = [edge.alert("pico-01", kind) for kind in ("alarm", "power_off", "fault")]
    w = web(room).login("victor")
    wait(lambda: {a["id"] for a in w.json("/index.json")["alerts"]["active"]} == {a.id for a in sent})
    assert failing["n"] == 0 and room.ingest.store_errors == 5
    assert "not stored, not acknowledged; retrying" in caplog.text
    assert len(room.store.alerts(limit=100)) == 3


def test_board_page_csv_and_report_are_the_same_data_as_their_json(mosquitto, control_room, web, edge_sim):
    broker = mosquitto()
    room = control_room(broker)
    edge = edge_sim(broker)
    for ch4 in (0.3, 0.6, 1.2, 1.6, 0.9):
        edge.telemetry("pico-01", ch4=ch4, state="ALARM" if ch4 >= 1.0 else "NORMAL")
    a = edge.alert("pico-01", "alarm")
    w = web(room).login("victor")
    wait(lambda: w.json("/board/mine-a/pico-01.json?span=1h")["series"])
    d = w.json("/board/mine-a/pico-01.json?span=1h")
    assert max(p["ch4_max"] for p in d["series"]) == 1.6 and [x["id"] for x in d["alerts"]] == [a.id]
    page = w.get("/board/mine-a/pico-01?span=1h").text
    assert re.search(r'data-level="alarm" data-value="1.0"', page) and 'data-level="power-off" data-value="1.5"' in page
    assert f'data-alert="{a.id}"' in page
    rows = w.get("/board/mine-a/pico-01.csv?span=1h").text.splitlines()
    assert rows[0].startswith("time,kind,ch4") and len(rows) == 6 and rows[4].split(",")[2] == "1.6"
    rep = w.json("/report.json?span=1h")
    (b,) = rep["boards"]
    assert (b["device"], b["ch4_max"], b["alerts"], b["unacknowledged"]) == ("pico-01", 1.6, 1, 1)
    assert w.get("/report.csv?span=1h").text.splitlines()[1].startswith("mine-a,pi-01,pico-01,VOL,1.6,")
    assert "Shift report" in w.get("/report").text
    # a battery-powered board with a P/T input: its last A frame, carried by its retained state, is shown
    from edge.frames import Aux

    edge.state("pico-01", aux=(Aux("pico-01", 41, 41000, 98.4, 21.5, 950.25, "Nm3/min", 12345.0, 3710, 250),
                               time.time() - 3))
    wait(lambda: w.json("/index.json")["boards"][0]["aux"] is not None)
    aux = w.json("/board/mine-a/pico-01.json?span=1h")["board"]["aux"]
    assert (aux["seq"], aux["battery_mv"], aux["run_min"], aux["std_unit"]) == (41, 3710, 250, "Nm3/min")
    assert "<small>std 950.2 Nm3/min · 98.4 kPa · 21.5 °C</small>" in w.get("/").text
    page = w.get("/board/mine-a/pico-01?span=1h").text
    assert re.search(r"Last A frame \d+ s ago: <small>std 950.2 Nm3/min .*battery 3,710 mV · 4 h 10 min left", page)
