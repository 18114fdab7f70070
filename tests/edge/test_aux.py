"""The A frame (pressure, temperature, standard flow and total, battery, run time left) through the edge: the
pipeline's aux payloads, retained state and history rows, its alerts (BATTERY_LOW, PT_FAULT, the BATTERY fault),
hostile A lines, history files from before it, `firedamp history`, Home Assistant discovery and Modbus."""

import re
import sqlite3

import pytest

from edge import cli, modbus
from edge.config import parse_config
from edge.discovery import configs
from edge.frames import Aux, Reading, format_frame
from edge.history import SCHEMA_VERSION, History
from edge.pipeline import AUX_STATE_REFRESH_S, Pipeline
from tests.edge.test_mqtt_doc import SCHEMAS, check

T0 = 1_800_000_000.0  # a minute boundary (1_800_000_000 = 30_000_000 × 60)


def cfg(tmp_path, **sections):
    return parse_config({"data_dir": str(tmp_path), "model": {"enabled": False}, "history": {"enabled": False},
                         **sections})


def r_line(seq, state="NORMAL", flags=0, faults=0, flow=72.3, device="d3", relay=None):
    relay = (0 if state in ("FAULT", "POWEROFF") else 1) if relay is None else relay
    return format_frame(Reading(device, seq, seq * 1000, 0.4, "VOL", flow, "m3/min", 5120.0, state, relay, faults,
                                flags))


def a_line(seq, p=98.4, t=21.5, std=1.205, total=5120.25, mv=3912, run=415, device="d3", unit="Nm3/min"):
    return format_frame(Aux(device, seq, seq * 1000, p, t, std, unit, total, mv, run))


def kinds(alerts):
    return [(a.kind, a.state) for a in alerts]


# ---------------------------------------------------------------------------------------------- pipeline

def test_r_and_a_lines_give_telemetry_aux_payloads_history_rows_and_a_state_with_the_aux_values(tmp_path):
    p = Pipeline(cfg(tmp_path))
    out = p.run([("p", r_line(1), T0 + 1), ("p", a_line(2), T0 + 1.01),
                 ("p", r_line(3), T0 + 2), ("p", a_line(4, p=None, t=None, std=None, run=None), T0 + 2.01)], T0 + 2.1)
    assert [d for d, _ in out.telemetry] == ["d3", "d3"]  # the A frames are not readings
    assert [(d, x["seq"], x["p_kpa"], x["t_c"], x["std_flow"], x["std_unit"], x["std_total"], x["battery_mv"],
             x["run_min"]) for d, x in out.aux] == [
        ("d3", 2, 98.4, 21.5, 1.205, "Nm3/min", 5120.25, 3912, 415),
        ("d3", 4, None, None, None, "Nm3/min", 5120.25, 3912, None)]  # empty fields are null, not 0
    for _, x in out.aux:
        check(x, SCHEMAS["aux"], "aux")
    assert [(f.type, f.seq) for f, _ in out.history] == [("R", 1), ("A", 2), ("R", 3), ("A", 4)]
    assert out.aux_devices == [("d3", "Nm3/min", True, True)]
    # the retained state: at the first reading, then with the first A values, then again because P, T, the
    # standard flow and the run time went empty (a dashboard must not keep showing the old ones)
    states = [s for _, s in out.states]
    assert ["aux" in s for s in states] == [False, True, True]
    assert states[1]["aux"]["p_kpa"] == 98.4 and states[1]["aux"]["battery_mv"] == 3912
    assert states[2]["aux"]["p_kpa"] is None and states[2]["aux"]["std_flow"] is None
    assert states[2]["aux"]["std_total"] == 5120.25 and states[2]["aux"]["seq"] == 4
    for s in states:
        check(s, SCHEMAS["state"], "state")
    assert p.decoder.lost_frames == 0 and p.errors == 0  # one sequence over R and A

    # stored and read back: raw rows and the minute's min/mean/max; None stays NULL
    h = History(tmp_path / "h.sqlite")
    h.write(out.history, now=T0 + 3)
    assert h.aux("d3", 0, T0 + 60) == [(T0 + 1.01, 98.4, 21.5, 1.205, "Nm3/min", 5120.25, 3912, 415, 2),
                                       (T0 + 2.01, None, None, None, "Nm3/min", 5120.25, 3912, None, 4)]
    assert [r[-1] for r in h.raw("d3", 0, T0 + 60)] == [1, 3]  # the readings' rows are as they were
    (m,) = h.aux_minutes("d3", 0, T0 + 60)
    assert m[0] == T0 and m[1:4] == (98.4, 98.4, 98.4) and m[10:13] == (3912, 3912.0, 3912)
    assert m[13:16] == (415, 415.0, 415) and m[16:] == ("Nm3/min", 5120.25, 2)
    h.close()


def test_the_retained_state_renews_its_aux_values_only_every_refresh_period(tmp_path):
    p = Pipeline(cfg(tmp_path))
    seq = iter(range(1, 10_000))

    def second(t, **aux):
        return [("p", r_line(next(seq)), t), ("p", a_line(next(seq), **aux), t)]

    items = [x for k in range(int(AUX_STATE_REFRESH_S) + 5) for x in second(T0 + k, mv=3912 - k)]
    states = [s for _, s in p.run(items, T0).states]
    # the first reading, its first A values, then the A frame that came a refresh period after those
    assert [s.get("aux", {}).get("battery_mv") for s in states] == [None, 3912, 3912 - int(AUX_STATE_REFRESH_S)]
    # a flag changing publishes at once, with the latest A values
    out = p.run([("p", r_line(next(seq), flags=0x20), T0 + 70)], T0 + 70)
    assert [(s["flags"]["battery_low"], s["aux"]["battery_mv"]) for _, s in out.states] == [(True, 3912 - 64)]


def test_battery_low_and_pt_fault_raise_and_clear_once_and_the_battery_fault_is_a_fault_alert(tmp_path):
    p = Pipeline(cfg(tmp_path))
    seq = iter(range(1, 100))

    def run(*lines):
        return p.run([("p", x, T0) for x in lines], T0).alerts

    assert run(r_line(next(seq)), a_line(next(seq), mv=3650, run=40)) == []
    out = run(r_line(next(seq), flags=0x20), a_line(next(seq), mv=3640, run=38), r_line(next(seq), flags=0x20))
    assert kinds(out) == [("battery_low", "raised")]
    a = out[0].to_dict()
    assert a["severity"] == "warning" and not a["advisory"] and a["readings"]["flags"] == 0x20
    assert a["details"] == {"battery_mv": 3650, "run_min": 40}  # from the A frame before it
    assert "3650 mV" in a["message"] and "40 min" in a["message"]
    check(a, SCHEMAS["alert"], "alert")
    assert kinds(run(r_line(next(seq), flags=0x30))) == [("pt_fault", "raised")]
    assert kinds(run(r_line(next(seq), flags=0x30), r_line(next(seq), flags=0x30))) == []  # once
    assert kinds(run(r_line(next(seq), flags=0x20))) == [("pt_fault", "cleared")]
    # the cut-off: the BATTERY fault (FAULT, relay off) while BATTERY_LOW stays
    out = run(r_line(next(seq), "FAULT", flags=0x20, faults=0x0200))
    assert kinds(out) == [("fault", "raised")] and out[0].details == {"faults": ["BATTERY"]}
    check(out[0].to_dict(), SCHEMAS["alert"], "alert")
    out = run(r_line(next(seq), flags=0))  # a charged battery: both clear
    assert kinds(out) == [("fault", "cleared"), ("battery_low", "cleared")]
    assert p.policy.devices["d3"].active == {k: False for k in p.policy.devices["d3"].active}
    # an A frame never raises anything by itself, whatever its values
    assert run(a_line(next(seq), mv=0, run=0, p=None, t=None, std=None)) == []


def test_a_board_without_a_frames_has_no_aux_anywhere(tmp_path):
    p = Pipeline(cfg(tmp_path))
    out = p.run([("p", r_line(1), T0), ("p", r_line(2, flags=0x02), T0 + 1)], T0 + 1)
    assert out.aux == [] and out.aux_devices == [] and all("aux" not in s for _, s in out.states)
    assert set(out.states[0][1]["flags"]) == {"calibration_due", "low_flow", "ack_awaited", "console_unlocked",
                                              "pt_fault", "battery_low"}


def test_hostile_a_lines_are_counted_and_never_stop_the_pipeline(tmp_path):
    p = Pipeline(cfg(tmp_path))
    good = a_line(2).decode()
    body = good[:good.rindex("*")]
    from edge.frames import seal

    junk = [seal(body.replace("98.40", "-98.40")), seal(body.replace("3912", "3912.5")), seal(body + ",9"),
            seal(body.replace("Nm3/min", "m3/min")), good[:-5].encode() + b"0000\n", b"$FD1,A,,,,,,,,,,,*00000000\n",
            seal(body.replace("415", "1" * 30)), bytes(range(256))[:120] + b"\n"]
    out = p.run([("p", r_line(1), T0)] + [("p", x, T0) for x in junk] + [("p", a_line(3), T0)], T0)
    h = p.health()
    assert h["frames_ok"] == 2 and sum(h["frames_rejected"].values()) == len(junk)
    assert h["frames_rejected"]["value"] == 4 and h["frames_rejected"]["fields"] == 1
    assert h["pipeline_errors"] == 0 and [x["seq"] for _, x in out.aux] == [3]
    assert h["frames_lost"] == 1  # seq 2 never came


# ---------------------------------------------------------------------------------------------- history

OLD_SCHEMA = """
CREATE TABLE raw (device TEXT NOT NULL, t REAL NOT NULL, seq INTEGER, uptime_ms INTEGER, ch4 REAL, unit TEXT,
    flow REAL, flow_unit TEXT, total REAL, state TEXT, relay INTEGER, faults INTEGER, flags INTEGER);
CREATE TABLE minutes (device TEXT NOT NULL, minute INTEGER NOT NULL, unit TEXT, flow_unit TEXT,
    n INTEGER NOT NULL, n_ch4 INTEGER NOT NULL, ch4_min REAL, ch4_sum REAL, ch4_max REAL,
    flow_min REAL, flow_sum REAL, flow_max REAL, worst_state TEXT, PRIMARY KEY (device, minute));
CREATE TABLE last_seq (device TEXT PRIMARY KEY, seq INTEGER NOT NULL, uptime_ms INTEGER NOT NULL);
INSERT INTO raw VALUES ('old', 1800000000.0, 7, 7000, 0.5, 'VOL', 1.0, 'm3/min', 2.0, 'NORMAL', 1, 0, 0);
INSERT INTO minutes VALUES ('old', 1800000000, 'VOL', 'm3/min', 1, 1, 0.5, 0.5, 0.5, 1.0, 1.0, 1.0, 'NORMAL');
INSERT INTO last_seq VALUES ('old', 7, 7000);
"""


def test_a_history_file_from_before_the_a_frame_opens_keeps_its_rows_and_takes_a_frames(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    db.close()
    h = History(path)
    assert h.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 1
    assert h.raw("old", 0, T0 + 1)[0][1] == 0.5 and h.last_seqs() == {"old": (7, 7000)}
    h.write([(Aux("old", 8, 8000, 101.3, 15.0, 2.0, "NL/min", 10.0, None, None), T0 + 5)], now=T0 + 5)
    h.close()
    h = History(path)  # and again, now at the latest version: nothing to do
    assert h.aux("old", 0, T0 + 60) == [(T0 + 5, 101.3, 15.0, 2.0, "NL/min", 10.0, None, None, 8)]
    assert h.devices() == ["old"]
    h.close()


def test_aux_rows_expire_with_the_readings(tmp_path):
    h = History(tmp_path / "h.sqlite", raw_days=1, minute_days=90)
    h.write([(Aux("b1", i, i, 1.0, 1.0, 1.0, "NL/min", 1.0, 1, 1), T0 - 2 * 86400 + i) for i in range(3)],
            now=T0 - 2 * 86400)
    h.write([], now=T0)
    assert h.aux("b1", 0, T0) == [] and len(h.aux_minutes("b1", 0, T0)) == 1  # the minute stays 90 days
    h.write([], now=T0 + 91 * 86400)
    assert h.aux_minutes("b1", 0, T0) == []
    h.close()


def test_firedamp_history_shows_the_a_values_beside_their_readings_only_for_boards_that_send_them(tmp_path, capsys):
    import time

    db = tmp_path / "h.sqlite"
    h = History(db)
    t0 = (time.time() // 60 - 5) * 60
    rows = [(Reading("d3", 1, 1000, 0.4, "VOL", 72.3, "m3/min", 5120.0, "NORMAL", 1, 0, 0), t0),
            (Aux("d3", 2, 1000, 98.4, 21.5, 1.205, "Nm3/min", 5120.25, 3912, 415), t0 + 0.01),
            (Reading("d3", 3, 1500, 0.5, "VOL", 72.3, "m3/min", 5120.0, "ALARM", 1, 0, 0), t0 + 0.5),  # on change
            (Reading("d3", 4, 2000, 0.4, "VOL", 72.3, "m3/min", 5121.0, "NORMAL", 1, 0, 0x10), t0 + 1),
            (Aux("d3", 5, 2000, None, None, None, "Nm3/min", 5120.25, 3900, None), t0 + 1.01),
            (Reading("plain", 1, 1000, 0.4, "VOL", 1.0, "L/min", 1.0, "NORMAL", 1, 0, 0), t0)]
    h.write(rows)
    h.close()
    assert cli.main(["history", "--db", str(db), "--device", "d3", "--since", "1h"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[-7:] == ["p_kpa", "t_c", "std_flow", "std_unit", "std_total", "battery_mv", "run_min"]
    assert lines[1].split()[-7:] == ["98.4", "21.5", "1.205", "Nm3/min", "5120.25", "3912", "415"]
    assert lines[2].split()[-2:] == ["00", "3"]  # the state-change reading has no A frame: its cells are empty
    assert lines[3].split()[-3:] == ["Nm3/min", "5120.25", "3900"]  # P, T, standard flow, run time: empty
    assert cli.main(["history", "--db", str(db), "--device", "d3", "--since", "1h", "--minutes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[-7:] == ["p_kpa", "t_c", "std_flow", "std_unit", "std_total", "battery_mv", "run_min"]
    assert lines[1].split()[-7:] == ["98.4", "21.5", "1.205", "Nm3/min", "5120.25", "3906", "415"]
    assert cli.main(["history", "--db", str(db), "--device", "d3", "--since", "1h", "--csv"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "time,ch4,flow,label"  # what train/evaluate read
    assert cli.main(["history", "--db", str(db), "--device", "plain", "--since", "1h"]) == 0
    assert "p_kpa" not in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------- discovery, Modbus

def test_discovery_has_the_a_sensors_only_for_boards_that_send_them(tmp_path):
    c = cfg(tmp_path)
    plain = configs(c, "d3", "VOL", "m3/min", "firedamp/testmine", "firedamp/testmine/pi/status")
    assert len(plain) == 7 and not any("aux" in p["state_topic"] for _, p in plain)
    both = configs(c, "d3", "VOL", "m3/min", "firedamp/testmine", "s", ("Nm3/min", True, True))
    extra = {re.sub(r"^d3_", "", t.split("/")[-2]): p for t, p in both[7:]}
    assert set(extra) == {"pressure", "temperature", "std_flow", "std_total", "battery", "run_time_left",
                          "battery_low"}
    assert extra["pressure"]["unit_of_measurement"] == "kPa" and extra["pressure"]["device_class"] == "pressure"
    assert extra["temperature"]["unit_of_measurement"] == "°C"
    assert extra["std_flow"]["unit_of_measurement"] == "Nm³/min" and extra["std_total"]["unit_of_measurement"] == "Nm³"
    assert extra["std_total"]["state_class"] == "total_increasing"
    assert extra["battery"]["unit_of_measurement"] == "mV" and extra["run_time_left"]["unit_of_measurement"] == "min"
    assert extra["battery"]["state_topic"] == "firedamp/testmine/d3/aux"
    # an empty field (null) renders None, which Home Assistant shows as unknown (as the ch4 sensor's), never 0
    assert extra["battery"]["value_template"] == "{{ value_json.battery_mv }}"
    battery_only = configs(c, "d3", "VOL", "L/min", "firedamp/testmine", "s", ("NL/min", False, True))
    assert [t.split("/")[-2] for t, _ in battery_only[7:]] == ["d3_battery", "d3_run_time_left", "d3_battery_low"]


def _u32(regs, name):
    a = next(a for a, n, *_ in modbus.MAP if n == name)
    return regs[a] << 16 | regs[a + 1]


def _reg(regs, name):
    return regs[next(a for a, n, *_ in modbus.MAP if n == name)]


def test_modbus_serves_the_a_values_and_none_for_empty_fields():
    snap = modbus.Snapshot(Reading("d3", 1, 1000, 0.4, "VOL", 72.3, "m3/min", 5120.0, "NORMAL", 1, 0, 0x30),
                           1000.0, None, 1, False)
    a = Aux("d3", 2, 1000, 98.4, -21.5, 1.21, "Nm3/min", 5120.75, 3912, 415)
    regs = modbus.registers(snap, "drainage", True, 1001.0, 3.0, (a, 1000.0))
    assert _u32(regs, "standard_flow") == 121 and _reg(regs, "standard_flow_valid") == 1
    assert _u32(regs, "pressure") == 9840 and _reg(regs, "temperature") == (-2150) & 0xFFFF
    assert _u32(regs, "standard_total") == 5120 and _reg(regs, "battery_mv") == 3912
    assert _u32(regs, "run_time_left") == 415 and _reg(regs, "aux_valid") == 1 and _reg(regs, "flags") == 0x30
    stale = modbus.registers(snap, "drainage", True, 1004.5, 3.0, (a, 1000.0))
    assert _reg(stale, "standard_flow_valid") == 0 and _reg(stale, "aux_valid") == 0
    empty = Aux("d3", 4, 2000, None, None, None, "Nm3/min", None, None, None)
    regs = modbus.registers(snap, "drainage", True, 1001.0, 3.0, (empty, 1000.0))
    assert _u32(regs, "standard_flow") == 0 and _reg(regs, "standard_flow_valid") == 0
    assert _u32(regs, "pressure") == _u32(regs, "standard_total") == _u32(regs, "run_time_left") == 0xFFFFFFFF
    assert _reg(regs, "temperature") == 0x8000 and _reg(regs, "battery_mv") == 0xFFFF
    assert _reg(regs, "aux_valid") == 1  # the frame is live; its fields are empty
    assert modbus.registers(snap, "drainage", True, 1001.0, 3.0)[31:] == \
        [0xFFFF, 0xFFFF, 0x8000, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF, 0]


@pytest.mark.parametrize("name", ["pressure", "temperature", "standard_total", "battery_mv", "run_time_left",
                                  "aux_valid"])
def test_the_new_registers_come_after_the_old_map(name):
    assert next(a for a, n, *_ in modbus.MAP if n == name) > 30


def test_the_console_shows_a_frames_and_the_new_flags_and_never_fails_on_them():
    import io

    from edge.console import Printer, describe_reading
    from edge.frames import parse

    out = io.StringIO()
    printer = Printer(out, readings="all")
    for line in (a_line(2), a_line(4, p=None, t=None, std=None, run=None), a_line(6, total=None, p=None, t=None,
                                                                                    std=None, unit="NL/min")):
        printer.frame(parse(line))
    shown = [x.split(" ", 1)[1] for x in out.getvalue().splitlines()]
    assert shown == ["d3  P 98.40 kPa  T 21.50 °C  std flow 1.205 Nm3/min  std total 5120.250 Nm3  battery 3912 mV"
                     "  415 min left",
                     "d3  std flow ----  std total 5120.250 Nm3  battery 3912 mV",
                     "d3  battery 3912 mV  415 min left"]
    quiet = io.StringIO()
    Printer(quiet, readings="changes").frame(parse(a_line(2)))
    assert quiet.getvalue() == ""
    text = describe_reading(parse(r_line(1, "FAULT", flags=0x30, faults=0x0200)))
    assert "FAULT BATTERY" in text and "[P/T fault, battery low]" in text


# ---------------------------------------------------------------------------------------------- the service

def test_a_running_edge_publishes_aux_discovers_the_a_sensors_serves_them_over_modbus_and_stores_them(
        edge_config, mosquitto, pty_pair, mqtt_subscriber, service_factory):
    import json

    from pymodbus.client import ModbusTcpClient

    from tests.conftest import free_port
    from tests.helpers import wait_for

    broker = mosquitto()
    board = pty_pair()
    sub = mqtt_subscriber(broker, ["firedamp/testmine/#", "homeassistant/+/+/+/config"])
    mb_port = free_port()
    settings = edge_config(broker, [board.device], model={"enabled": False},
                           modbus={"enabled": True, "host": "127.0.0.1", "port": mb_port})
    settings["boards"][0].update(modbus_unit=3, profile="drainage")
    svc = service_factory(settings).start()
    assert svc.wait_ready()
    board.write(r_line(1) + a_line(2, total=5120.0, run=None) + r_line(3) + a_line(4, p=101.33, total=5121.5))

    def topics():
        return {t for t, *_ in sub.messages}

    wanted = {"d3_pressure", "d3_temperature", "d3_std_flow", "d3_std_total", "d3_battery", "d3_run_time_left",
              "d3_battery_low", "d3_ch4"}
    assert sub.wait(lambda m: wanted <= {t.split("/")[-2] for t in topics() if t.startswith("homeassistant/")}
                    and len([1 for t, *_ in m if t.endswith("/d3/aux")]) == 2, timeout=10), topics()
    aux = [json.loads(p) for t, p, _ in sub.messages if t == "firedamp/testmine/d3/aux"]
    assert [(a["seq"], a["p_kpa"], a["run_min"]) for a in aux] == [(2, 98.4, None), (4, 101.33, 415)]
    c = ModbusTcpClient("127.0.0.1", port=mb_port, timeout=2)
    assert c.connect()
    try:
        assert wait_for(lambda: _u32(c.read_input_registers(0, count=modbus.SIZE, device_id=3).registers,
                                     "pressure") == 10133)
        regs = c.read_input_registers(0, count=modbus.SIZE, device_id=3).registers
        assert _u32(regs, "standard_total") == 5121 and _u32(regs, "run_time_left") == 415
        assert _reg(regs, "aux_valid") == 1 and _reg(regs, "standard_flow_valid") == 1
    finally:
        c.close()
    # the battery is taken out (its A fields go empty): its three entities are removed from Home Assistant
    # (an empty retained config), the P/T ones stay
    board.write(r_line(5) + a_line(6, mv=None, run=None))
    gone = {"d3_battery", "d3_run_time_left", "d3_battery_low"}

    def removed():
        return {t.split("/")[-2] for t, p, _ in sub.messages if t.startswith("homeassistant/") and p == b""}

    assert sub.wait(lambda m: removed() == gone, timeout=10), removed()
    assert "d3_pressure" not in removed()
    svc.stop()
    h = History(svc.cfg.history_path)
    assert [(r[0] > 0, r[-1], r[-2]) for r in h.aux("d3", 0, 1e10)] == [(True, 2, None), (True, 4, 415),
                                                                      (True, 6, None)]
    h.close()
