"""What the edges publish is accepted as it is; anything else is refused with a counted reason, never stored raw."""

import json
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from control import messages as m
from edge import payloads
from edge.frames import Decoder, Reading, format_reading
from edge.policy import Alert


def _reading(**kw):
    base = dict(device="pico-01", seq=7, uptime_ms=7000, ch4=0.42, unit="VOL", flow=900.0, flow_unit="L/min",
                total=1234.5, state="NORMAL", relay=1, faults=0, flags=1)
    base.update(kw)
    r = Decoder().decode(format_reading(Reading(**base)))
    assert r is not None
    return r


def test_the_edges_own_payloads_are_accepted_field_for_field():
    r = _reading()
    tel = m.parse("firedamp/mine-a/pico-01/telemetry", json.dumps(payloads.telemetry(r, 1795632431.7, None)).encode(),
                  "firedamp")
    assert isinstance(tel, m.Telemetry)
    assert (tel.site, tel.device, tel.ch4, tel.flow, tel.state, tel.relay, tel.seq, tel.ts) == \
        ("mine-a", "pico-01", 0.42, 900.0, "NORMAL", 1, 7, 1795632431.7)
    state = m.parse("firedamp/mine-a/pico-01/state", json.dumps(
        payloads.state("pico-01", "mine-a", "pi-01", 1795632431.7, _reading(faults=0x0009), False, ["fault", "link"])
    ).encode(), "firedamp")
    assert isinstance(state, m.State)
    assert (state.edge, state.link, state.active, state.faults, state.calibration_due) == \
        ("pi-01", "down", ["fault", "link"], ["LINE", "STUCK"], True)
    a = Alert(str(uuid.uuid4()), "mine-a", "pi-01", "pico-01", "power_off", "critical", "raised", 1795632431.7,
              "pico-01: board cut the power at 1.52 % vol", False, {"ch4": 1.52}, {"ack_awaited": False})
    alert = m.parse("firedamp/mine-a/pico-01/alert", a.to_json(), "firedamp")
    assert isinstance(alert, m.Alert)
    assert (alert.id, alert.kind, alert.state, alert.message, alert.details) == \
        (a.id, "power_off", "raised", a.message, {"ack_awaited": False})
    assert m.parse("firedamp/mine-a/pi-01/status", b"offline", "firedamp") == m.Status("mine-a", "pi-01", False)


def _reject(topic, payload):
    checker = m.Checker("firedamp")
    assert checker.check(topic, payload) is None
    (reason,) = [r for r, n in checker.rejected.items() if n]
    return reason


def test_hostile_and_malformed_payloads_are_refused_with_their_reason():
    good = payloads.telemetry(_reading(), 1795632431.7, None)
    topic = "firedamp/mine-a/pico-01/telemetry"
    assert _reject(topic, b"{not json") == "json"
    assert _reject(topic, b"\xff\xfe") == "encoding"
    assert _reject(topic, b"[1, 2]") == "not_object"
    assert _reject(topic, json.dumps({**good, "message": "x" * 1_000_000}).encode()) == "too_large"
    assert _reject(topic, json.dumps({k: v for k, v in good.items() if k != "state"}).encode()) == "field"
    assert _reject(topic, json.dumps({**good, "state": "<script>"}).encode()) == "field"
    assert _reject(topic, json.dumps(good).replace('"ch4": 0.42', '"ch4": NaN').encode()) == "json"  # not JSON
    assert _reject(topic, json.dumps(good).replace('"ch4": 0.42', '"ch4": 1e999').encode()) == "field"  # inf
    assert _reject(topic, json.dumps({**good, "device": "pico-02"}).encode()) == "topic_mismatch"
    assert _reject("firedamp/mine-a/pico-01/extra/telemetry", json.dumps(good).encode()) == "topic"
    assert _reject("firedamp/mine-a/" + "x" * 65 + "/telemetry", json.dumps(good).encode()) == "id"
    assert _reject("firedamp/mine-a/pico-01/status", b"maybe") == "field"
    assert _reject(topic, b"[" * 100_000) in ("json", "too_large")
    # other prefixes (Home Assistant discovery) are not ours: ignored, not rejected
    checker = m.Checker("firedamp")
    assert checker.check("homeassistant/sensor/x/config", b"{}") is None and checker.ignored == 1


def test_html_in_a_device_id_is_kept_as_text_for_the_page_to_escape():
    device = '<img src=x onerror=alert(1)>'
    good = payloads.telemetry(_reading()._replace(device=device), 1795632431.7, None)
    tel = m.parse(f"firedamp/mine-a/{device}/telemetry", json.dumps(good).encode(), "firedamp")
    assert tel.device == device  # stored as it is; tests/control/test_web.py checks the page escapes it


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(["telemetry", "state", "alert", "status", "health", "event"]))
def test_any_bytes_are_a_message_or_a_counted_rejection_never_an_exception(payload, leaf):
    checker = m.Checker("firedamp")
    checker.check(f"firedamp/mine-a/pico-01/{leaf}", payload)
    assert checker.accepted + sum(checker.rejected.values()) == 1


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["device", "ts", "seq", "ch4", "unit", "flow", "flow_unit", "total", "state",
                                        "relay", "faults", "flags", "id", "kind", "site", "edge", "severity",
                                        "advisory", "message", "details", "readings", "link", "active", "time"]),
                       st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                                 st.text(max_size=20), st.lists(st.text(max_size=5), max_size=3),
                                 st.dictionaries(st.text(max_size=5), st.integers(), max_size=3))),
       st.sampled_from(["telemetry", "state", "alert", "event"]))
def test_any_json_object_is_a_message_or_a_counted_rejection(doc, leaf):
    checker = m.Checker("firedamp")
    checker.check(f"firedamp/mine-a/pico-01/{leaf}", json.dumps(doc).encode())
    assert checker.accepted + sum(checker.rejected.values()) == 1


def test_the_kinds_states_and_faults_checked_are_those_docs_mqtt_md_documents():
    """docs/mqtt.md is the contract: a kind the edge may send must never be refused here as unknown."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "mqtt.md").read_text()
    schemas = {g.group(1): json.loads(g.group(2)) for g in re.finditer(r"```json (\w+)\n(.*?)\n```", doc, re.S)}
    alert = schemas["alert"]["properties"]
    assert tuple(alert["kind"]["enum"]) == m.KINDS
    assert tuple(alert["severity"]["enum"]) == m.SEVERITIES
    state = schemas["state"]["properties"]
    assert tuple(state["faults"]["items"]["enum"]) == m.FAULT_NAMES
    assert tuple(state["state"]["enum"]) == m.STATES
    one_shot = re.search(r"One-shot kinds \(([^)]*)\)", doc)
    assert one_shot and set(re.findall(r"`(\w+)`", one_shot.group(1))) == set(m.ONE_SHOT)


def test_the_a_frame_messages_and_bits_are_taken_and_shown_by_name():
    """An edge's aux message is not refused (nor stored); its new alert kinds, the BATTERY fault and the
    battery-low / P/T-fault flags reach the page by name."""
    from control.views.overview import board_row
    from edge.frames import Aux

    checker = m.Checker("firedamp")
    aux = payloads.aux(Aux("pico-01", 8, 8000, 98.4, 21.5, 1.2, "Nm3/min", 5.0, 3650, 40), 1795632431.7)
    assert checker.check("firedamp/mine-a/pico-01/aux", json.dumps(aux).encode()) is None
    assert sum(checker.rejected.values()) == 0
    r = _reading(state="FAULT", relay=0, faults=0x0200, flags=0x30)
    state = m.parse("firedamp/mine-a/pico-01/state", json.dumps(payloads.state(
        "pico-01", "mine-a", "pi-01", 1795632431.7, r, True, ["battery_low", "fault", "pt_fault"],
        (Aux("pico-01", 8, 8000, None, None, None, "Nm3/min", 5.0, 3650, None), 1795632431.7))).encode(), "firedamp")
    assert isinstance(state, m.State) and state.faults == ["BATTERY"]
    assert state.aux == {"ts": 1795632431.7, "seq": 8, "p_kpa": None, "t_c": None, "std_flow": None,
                         "std_unit": "Nm3/min", "std_total": 5.0, "battery_mv": 3650, "run_min": None}
    doc = payloads.state("pico-01", "mine-a", "pi-01", 1795632431.7, r, True, [],
                         (Aux("pico-01", 8, 8000, None, None, None, "Nm3/min", 5.0, 3650, None), 1795632431.7))
    for key, bad, says in (("battery_mv", -1, "aux: battery_mv must be an integer"),
                           ("std_unit", "gal/min", "aux: std_unit must be one of NL/min, Nm3/min"),
                           ("p_kpa", "98", "aux: p_kpa must be a number or null"),
                           ("time", 5, "aux: time must be an ISO 8601 string")):
        hostile = json.loads(json.dumps(doc))
        hostile["aux"][key] = bad
        with pytest.raises(m.Rejected, match=says):
            m.parse("firedamp/mine-a/pico-01/state", json.dumps(hostile).encode(), "firedamp")
    with pytest.raises(m.Rejected, match="aux must be an object"):
        m.parse("firedamp/mine-a/pico-01/state", json.dumps(doc | {"aux": [1]}).encode(), "firedamp")
    assert state.active == ["battery_low", "fault", "pt_fault"]
    for kind in ("battery_low", "pt_fault"):
        a = Alert(str(uuid.uuid4()), "mine-a", "pi-01", "pico-01", kind, "warning", "raised", 1795632431.7, "x", False,
                  None, {"battery_mv": 3650, "run_min": None})
        assert isinstance(m.parse("firedamp/mine-a/pico-01/alert", a.to_json(), "firedamp"), m.Alert)
    d = {"site": "mine-a", "device": "pico-01", "data": "live", "state": "FAULT", "ch4": 0.4, "unit": "VOL",
         "flow": 1.0, "flow_unit": "m3/min", "relay": 0, "faults": ["BATTERY"], "calibration_due": False,
         "low_flow": False, "pt_fault": True, "battery_low": True, "levels": {"warning": 1.0, "alarm": 1.0,
                                                                             "poweroff": 1.5},
         "score": None, "threshold": None, "forecast": None, "ready": False, "heard_at": None, "heard_s_ago": None}
    from control import html

    assert html.fault_names(0x0201) == ["LINE", "BATTERY"]  # the overview's names of the telemetry's fault mask
    row = board_row(None, d, 1795632431.7)
    assert ">BATTERY<" in row and ">BATTERY LOW<" in row and ">P/T FAULT<" in row
    assert "battery" not in row.replace("BATTERY", "")  # no aux on this board: no battery line
    d["aux"] = {"time": "x", "seq": 8, "p_kpa": 98.4, "t_c": 21.46, "std_flow": 1.25, "std_unit": "Nm3/min",
                "std_total": 5.0, "battery_mv": 3650, "run_min": 40}
    row = board_row(None, d, 1795632431.7)
    assert "<small>std 1.2 Nm3/min · 98.4 kPa · 21.5 °C</small>" in row
    assert "<small>battery 3,650 mV · 40 min left</small>" in row
