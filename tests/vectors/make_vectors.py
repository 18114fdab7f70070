"""Writes frames.json: the shared wire-protocol test vectors (see docs/protocol.md).

Run it only when the protocol changes; both the firmware and the edge tests read the JSON it writes.
It builds its lines itself from docs/protocol.md, not with edge.frames (the tests' one frame builder): the
vectors are the reference that edge.frames and the firmware are both checked against.
"""

import binascii
import json
from pathlib import Path


def seal(body: str) -> str:
    return f"{body}*{binascii.crc32(body.encode()) & 0xFFFFFFFF:08x}"


def reading(dev, seq, up, ch4, unit, flow, funit, total, state, relay, faults, flags):
    ch4_s = "" if ch4 is None else f"{ch4:.2f}"
    body = (f"$FD1,R,{dev},{seq},{up},{ch4_s},{unit},{flow:.3f},{funit},{total:.3f},"
            f"{state},{relay},{faults:04x},{flags:02x}")
    fields = dict(type="R", device=dev, seq=seq, uptime_ms=up, ch4=ch4, unit=unit, flow=flow,
                  flow_unit=funit, total=total, state=state, relay=relay, faults=faults, flags=flags)
    return seal(body), fields


def aux(dev, seq, up, p_kpa, t_c, std_flow, std_unit, std_total, battery_mv, run_min):
    def f(v, places):
        return "" if v is None else f"{v:.{places}f}"
    body = (f"$FD1,A,{dev},{seq},{up},{f(p_kpa, 2)},{f(t_c, 2)},{f(std_flow, 3)},{std_unit},{f(std_total, 3)},"
            f"{'' if battery_mv is None else battery_mv},{'' if run_min is None else run_min}")
    fields = dict(type="A", device=dev, seq=seq, uptime_ms=up, p_kpa=p_kpa, t_c=t_c, std_flow=std_flow,
                  std_unit=std_unit, std_total=std_total, battery_mv=battery_mv, run_min=run_min)
    return seal(body), fields


def text_frame(kind, dev, seq, up, code, text):
    key = "code" if kind == "E" else "status"
    fields = {"type": kind, "device": dev, "seq": seq, "uptime_ms": up, key: code, "text": text}
    return seal(f"$FD1,{kind},{dev},{seq},{up},{code},{text}"), fields


valid = [
    reading("pico-01", 42, 42000, 0.52, "VOL", 1250.0, "L/min", 53211.5, "NORMAL", 1, 0, 0),
    reading("pico-01", 43, 43000, 1.07, "VOL", 1100.25, "L/min", 53229.75, "ALARM", 1, 0, 0),
    reading("pico-01", 44, 43100, 1.52, "VOL", 900.0, "L/min", 53230.0, "POWEROFF", 0, 0, 0),
    reading("pico-01", 45, 44000, 0.95, "VOL", 1200.0, "L/min", 53250.0, "POWEROFF", 0, 0, 0x04),
    reading("pico-01", 0, 120, None, "VOL", 0.0, "L/min", 53250.0, "WARMUP", 0, 0, 0),
    reading("m_2", 4294967295, 9223372036854775807, 0.0, "VOL", 0.0, "m3/min", 0.0, "NORMAL", 1, 0, 0x01),
    reading("plant-a", 7, 7000, 12.30, "LEL", 3.2, "m3/min", 10.0, "WARNING", 1, 0, 0),
    reading("plant-a", 8, 8000, 21.00, "LEL", 3.2, "m3/min", 10.05, "POWEROFF", 0, 0, 0),
    reading("ESP32_B", 9, 9000, None, "VOL", 0.0, "L/min", 1.0, "FAULT", 0, 0x0001, 0x02),
    reading("ESP32_B", 10, 9100, 4.00, "VOL", 0.0, "L/min", 1.0, "FAULT", 0, 0x0008 | 0x0010, 0x03),
    reading("pico-01", 46, 44100, -0.50, "VOL", 9999999.999, "L/min", 999999999999.999, "FAULT", 0, 0x0004, 0x08),
    # every other fault bit (docs/protocol.md, firmware/bits.py): RAIL, then SETTINGS SELFTEST POWER LOOP together
    reading("pico-01", 47, 44200, None, "VOL", 0.0, "L/min", 1.0, "FAULT", 0, 0x0002, 0x00),
    reading("pico-01", 48, 44300, 0.10, "VOL", 0.0, "L/min", 1.0, "FAULT", 0, 0x0020 | 0x0040 | 0x0080 | 0x0100, 0x01),
    # the new flag and fault bits: PT_FAULT and BATTERY_LOW flags, the BATTERY fault
    reading("drain-3", 11, 11000, 0.40, "VOL", 72.3, "m3/min", 5120.0, "NORMAL", 1, 0, 0x10 | 0x20),
    reading("drain-3", 13, 13000, 0.40, "VOL", 72.3, "m3/min", 5121.0, "FAULT", 0, 0x0200, 0x20),
    # A frames: P/T and battery; P/T failed (empty P, T and standard flow); no P/T input; all at their limits
    aux("drain-3", 12, 12000, 98.40, 21.50, 1.205, "Nm3/min", 5120.25, 3912, 415),
    aux("drain-3", 14, 14000, None, None, None, "Nm3/min", 5120.25, 3650, None),
    aux("port-7", 3, 3000, None, None, None, "NL/min", None, 4100, 1200),
    aux("pico-01", 4294967295, 9223372036854775807, 9999.99, -50.0, 9999999.999, "NL/min", 999999999999.999,
        99999, 999999),
    aux("pico-01", 5, 5000, 0.0, 150.0, 0.0, "Nm3/min", 0.0, 0, 0),
    text_frame("E", "pico-01", 0, 15, "BOOT", "fw 0.1.0 reset=power"),
    text_frame("E", "pico-01", 1, 3015, "SELFTEST", "pass"),
    text_frame("E", "pico-01", 2, 3020, "SET", "ch4_alarm_pct 1.00 -> 0.80, uptime 3020 ms"),
    text_frame("E", "pico-01", 3, 3030, "NEW_THING", ""),
    text_frame("C", "pico-01", 43, 42100, "ERR", "ch4_alarm_pct must be 0.10..4.00"),
    text_frame("C", "pico-01", 44, 42110, "MORE", "commands: help, status, get, set <key> <value>"),
    text_frame("C", "pico-01", 45, 42120, "OK", "saved"),
]

good = valid[0][0]
body = good[: good.rindex("*")]
aux_line = valid[[v[1]["type"] for v in valid].index("A")][0]
aux_body = aux_line[: aux_line.rindex("*")]
invalid = [
    (good[:-1] + ("0" if good[-1] != "0" else "1"), "checksum"),
    (good.replace("0.52", "0.53"), "checksum"),
    (body, "no_checksum"),
    (body + "*1234", "no_checksum"),
    (body + "*XYZ12345", "no_checksum"),
    (seal(body.replace("$FD1", "$FD2")), "version"),
    (seal(body.replace("$FD1", "$FDx")), "version"),
    (seal(body.replace("$FD1", "FD1")), "no_start"),
    ("hello world", "no_start"),
    ("", "no_start"),
    (seal(body + ",extra"), "fields"),
    (seal(body.rsplit(",", 1)[0]), "fields"),
    (seal(body.replace(",R,", ",X,")), "fields"),
    (seal(body.replace("NORMAL", "CALM")), "value"),
    (seal(body.replace("0.52", "abc")), "value"),
    (seal(body.replace("0.52", "100.01")), "value"),
    (seal(body.replace("0.52", "-0.51")), "value"),
    (seal(body.replace("0.52", "nan")), "value"),
    (seal(body.replace("0.52", "inf")), "value"),
    (seal(body.replace(",VOL,", ",PPM,")), "value"),
    (seal(body.replace("L/min", "gal/h")), "value"),
    (seal(body.replace("1250.000", "-1.000")), "value"),
    (seal(body.replace(",1,0000,", ",2,0000,")), "value"),
    (seal(body.replace(",0000,", ",00G0,")), "value"),
    (seal(body.replace(",42,", ",-1,")), "value"),
    (seal(body.replace(",42,", ",4294967296,")), "value"),
    (seal(body.replace("pico-01", "pico 01")), "value"),
    (seal(body.replace("pico-01", "")), "value"),
    (seal(body.replace("pico-01", "a-very-long-device-id")), "value"),
    (seal("$FD1,E,pico-01,1,10,boot,lower case code"), "value"),
    (seal("$FD1,C,pico-01,1,10,MAYBE,text"), "value"),
    (seal("$FD1,E,pico-01,1,10"), "fields"),
    (seal(body) + " " * (129 - len(seal(body))), "too_long"),
    (seal(aux_body + ",1"), "fields"),
    (seal(aux_body.rsplit(",", 1)[0]), "fields"),
    (seal(aux_body.replace(",98.40,", ",-1.00,")), "value"),
    (seal(aux_body.replace(",98.40,", ",10000.00,")), "value"),
    (seal(aux_body.replace(",21.50,", ",150.01,")), "value"),
    (seal(aux_body.replace(",21.50,", ",-50.01,")), "value"),
    (seal(aux_body.replace(",21.50,", ",nan,")), "value"),
    (seal(aux_body.replace(",1.205,", ",-1.205,")), "value"),
    (seal(aux_body.replace("Nm3/min", "m3/min")), "value"),
    (seal(aux_body.replace(",5120.250,", ",1e3,")), "value"),
    (seal(aux_body.replace(",3912,", ",3.9,")), "value"),
    (seal(aux_body.replace(",3912,", ",100000,")), "value"),
    (seal(aux_body.replace(",415", ",-5")), "value"),
    (seal(aux_body.replace(",415", ",1000000")), "value"),
    ("$FD1,R," + "9" * 200, "too_long"),
]

out = {
    "protocol": 1,
    "max_line_bytes": 128,
    "valid": [{"line": line, "fields": fields} for line, fields in valid],
    "invalid": [{"line": line, "reason": reason} for line, reason in invalid],
}
for item in out["valid"]:
    assert len(item["line"]) + 1 <= 128, item["line"]
Path(__file__).with_name("frames.json").write_text(json.dumps(out, indent=1) + "\n")
print(f"{len(out['valid'])} valid, {len(out['invalid'])} invalid vectors")
