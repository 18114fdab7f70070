"""docs/mqtt.md is true to the code: every payload the service publishes matches its documented schema
(and carries no undocumented key), and every topic it uses is in the documented table."""

import json
import re
import time
from pathlib import Path

from edge.config import parse_config
from edge.frames import Aux, format_frame
from edge.service import Service
from tests.helpers import board_event, board_line

DOC = (Path(__file__).parents[2] / "docs" / "mqtt.md").read_text()
SCHEMAS = {m.group(1): json.loads(m.group(2)) for m in re.finditer(r"```json (\w+)\n(.*?)\n```", DOC, re.S)}


def check(value, schema, where="$"):
    types = schema.get("type")
    if types:
        types = [types] if isinstance(types, str) else types
        ok = {"string": isinstance(value, str), "number": isinstance(value, (int, float)) and not isinstance(value, bool),
              "integer": isinstance(value, int) and not isinstance(value, bool), "boolean": isinstance(value, bool),
              "null": value is None, "object": isinstance(value, dict), "array": isinstance(value, list)}
        assert any(ok[t] for t in types), f"{where}: {value!r} is not {types}"
    if "enum" in schema:
        assert value in schema["enum"], f"{where}: {value!r} not in {schema['enum']}"
    if isinstance(value, dict):
        for key in schema.get("required", []):
            assert key in value, f"{where}: required key {key!r} missing"
        props = schema.get("properties")
        if props is not None:
            extra = set(value) - set(props)
            assert not extra, f"{where}: undocumented key(s) {sorted(extra)}"
            for key, v in value.items():
                check(v, props[key], f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            check(v, schema["items"], f"{where}[{i}]")


def reading(seq, state="NORMAL", ch4=0.4, faults=0, flags=0, relay=1, uptime=None):
    return board_line(seq, state, ch4, relay=relay, flow=10.0, total=1.0, faults=faults, flags=flags, uptime_ms=uptime)


def test_every_published_payload_matches_the_documented_schema(edge_config, mosquitto, pty_pair, mqtt_subscriber):
    assert set(SCHEMAS) == {"alert", "telemetry", "aux", "state", "event", "health"}
    broker = mosquitto()
    board = pty_pair()
    sub = mqtt_subscriber(broker, ["#"])
    svc = Service(parse_config(edge_config(broker, [board.device], policy={"anomaly_raise_samples": 1})))
    svc.start()
    try:
        assert svc.wait_ready()
        lines = [reading(i, ch4=0.4 + 0.001 * (i % 3)) for i in range(70)]  # the model warms up
        lines += [reading(70, "ALARM", 1.2), reading(71, "POWEROFF", 1.6, relay=0, flags=4),  # A frames: all fields,
                  format_frame(Aux("b1", 72, 71_000, 98.4, 21.5, 1.205, "Nm3/min", 5120.25, 3912, 415)),  # then
                  format_frame(Aux("b1", 73, 72_000, None, None, None, "Nm3/min", 5120.25, 3650, None)),  # P/T failed
                  reading(75, "FAULT", None, faults=0x211, flags=0x33, relay=0), reading(76, ch4=9.99)]
        lines += [board_event(0, "BOOT", "fw 0.1.0 reset=power", uptime_ms=10), reading(1, uptime=1000)]
        board.write(b"".join(lines))
        assert sub.wait(lambda m: {t.rsplit("/", 1)[-1] for t, *_ in m} >= {"alert", "telemetry", "aux", "state", "event",
                                                                           "health", "status", "config"}, timeout=10)
        time.sleep(0.5)
    finally:
        svc.stop()
    seen = {}
    for topic, payload, _ in sub.messages:
        leaf = topic.rsplit("/", 1)[-1]
        if leaf in SCHEMAS:
            check(json.loads(payload), SCHEMAS[leaf], topic)
            seen.setdefault(leaf, []).append(json.loads(payload))
        elif leaf == "status":
            assert payload in (b"online", b"offline")
        elif leaf == "config":
            assert topic.startswith("homeassistant/") and "/firedamp_testmine/b1_" in topic
        else:
            raise AssertionError(f"undocumented topic {topic}")
        if not topic.startswith("homeassistant/"):
            assert topic.startswith("firedamp/testmine/") and len(topic.split("/")) == 4, topic
    kinds = {a["kind"] for a in seen["alert"]}
    assert {"alarm", "power_off", "fault", "low_flow", "calibration_due", "frames_lost", "reboot", "battery_low",
            "pt_fault"} <= kinds
    assert [(a["p_kpa"], a["battery_mv"], a["run_min"]) for a in seen["aux"]] == [(98.4, 3912, 415), (None, 3650, None)]
    assert any(s.get("aux", {}).get("battery_mv") == 3650 for s in seen["state"])
    assert any("BATTERY" in s.get("faults", []) and s["flags"]["battery_low"] for s in seen["state"])
    assert any(t["score"] is not None for t in seen["telemetry"])
