"""Frames: the encoder reproduces every valid shared vector exactly; framing checks; text limits."""

import bits
import fwkit
import protocol


class Capture:
    """A stream that keeps each line written (as str): the encoder reuses its buffer, so this copies."""

    def __init__(self):
        self.lines = []

    def write(self, data):
        self.lines.append(bytes(data).decode())


def frames(device, seq, uptime_ms, unit="VOL", flow_unit="L/min"):
    up = protocol.Uptime()
    up.s, up.ms = uptime_ms // 1000, uptime_ms % 1000
    out = Capture()
    f = protocol.Frames(out, up)
    f.configure(device, unit, flow_unit)
    f.seq = seq
    return f, out


def reading(device, seq, uptime_ms, ch4_x100, unit, flow_x1000, flow_unit, total_x1000, state, relay, faults,
            flags):
    f, out = frames(device, seq, uptime_ms, unit, flow_unit)
    f.reading(ch4_x100, flow_x1000, total_x1000 // 1000000, total_x1000 % 1000000, protocol.STATES.index(state),
              relay, faults, flags)
    assert len(out.lines) == 1 and f.seq == (seq + 1) % 4294967296
    return out.lines[0]


def aux(device, seq, uptime_ms, p_kpa, t_c, std_flow, std_unit, std_total, battery_mv, run_min):
    """An A frame from the vector's fields (floats to the firmware's fixed point; None stays empty)."""
    f, out = frames(device, seq, uptime_ms, "VOL", "L/min" if std_unit == "NL/min" else "m3/min")
    p = None if p_kpa is None else int(round(p_kpa * 100))
    t = None if t_c is None else int(round(t_c * 100))
    std = None if std_flow is None else int(round(std_flow * 1000))
    total = None if std_total is None else int(round(std_total * 1000))
    if p is not None:
        assert t is not None and std is not None   # the firmware sends P, T and std flow together or none
    else:
        assert t is None and std is None
    f.auxiliary(p, t, std, None if total is None else total // 1000000, 0 if total is None else total % 1000000,
          battery_mv, run_min)
    assert len(out.lines) == 1 and f.seq == (seq + 1) % 4294967296
    return out.lines[0]


def text(kind, device, seq, uptime_ms, code, message):
    f, out = frames(device, seq, uptime_ms)
    f.text(kind.encode(), code, message)
    return out.lines[0]


def test_every_valid_vector_is_reproduced_from_its_fields():
    vectors = fwkit.load_vectors()
    assert vectors["protocol"] == 1 and vectors["max_line_bytes"] == protocol.MAX_LINE
    n = 0
    for item in vectors["valid"]:
        f = item["fields"]
        if f["type"] == "R":
            ch4 = None if f["ch4"] is None else int(round(f["ch4"] * 100))
            line = reading(f["device"], f["seq"], f["uptime_ms"], ch4, f["unit"], int(round(f["flow"] * 1000)),
                           f["flow_unit"], int(round(f["total"] * 1000)), f["state"], f["relay"], f["faults"],
                           f["flags"])
        elif f["type"] == "A":
            line = aux(f["device"], f["seq"], f["uptime_ms"], f["p_kpa"], f["t_c"], f["std_flow"], f["std_unit"],
                       f["std_total"], f["battery_mv"], f["run_min"])
        else:
            code = f["code"] if f["type"] == "E" else f["status"]
            line = text(f["type"], f["device"], f["seq"], f["uptime_ms"], code, f["text"])
        assert line == item["line"] + "\n", (line, item["line"])
        n += 1
    assert n == len(vectors["valid"]) and n >= 10
    assert len([v for v in vectors["valid"] if v["fields"]["type"] == "A"]) >= 4


def test_aux_frame_clamped_and_at_its_widest_fits_the_line():
    # the widest fields the firmware can send (all clamped), a 16-character id, the last seq and 34 years of
    # uptime (Uptime.s reaches 2**30 s): the longest A line the board can write
    f, out = frames("abcdefghijklmnop", 4294967295, (2 ** 30 - 1) * 1000 + 999, "VOL", "m3/min")
    f.auxiliary(10 ** 9, -10 ** 6, 10 ** 13, 999999999, 999999, 10 ** 6, 10 ** 8)  # (the total rolls over)
    line = out.lines[0]
    assert len(line) <= protocol.MAX_LINE and fwkit.check(line[:-1]) is None, (len(line), line)
    fields = line[: line.rindex("*")].split(",")
    assert fields[5:] == ["9999.99", "-50.00", "9999999.999", "Nm3/min", "999999999999.999", "99999", "999999"]
    print("A frame at its widest: %d bytes with the newline" % len(line))
    f.auxiliary(-5, 20000, -1, 0, 0, -1, -1)
    assert out.lines[1][: out.lines[1].rindex("*")].split(",")[5:] == ["0.00", "150.00", "0.000", "Nm3/min",
                                                                      "0.000", "0", "0"]
    f.auxiliary(None, 0, None, None, 0, None, None)     # no P/T input, no battery: the empty fields stay in place
    assert out.lines[2][: out.lines[2].rindex("*")].split(",")[5:] == ["", "", "", "Nm3/min", "", "", ""]
    f.configure("d", "VOL", "L/min")
    f.auxiliary(None, 0, None, 0, 1500, 3700, None)     # P/T failed: std total still shown (it stopped counting)
    assert out.lines[3][: out.lines[3].rindex("*")].split(",")[5:] == ["", "", "", "NL/min", "1.500", "3700", ""]


def test_framing_check_agrees_with_the_invalid_vectors_it_can_judge():
    # the board only checks framing (its own lines); field values are the edge's job
    framing = ("too_long", "no_start", "version", "no_checksum", "checksum")
    seen = 0
    for item in fwkit.load_vectors()["invalid"]:
        if item["reason"] in framing:
            assert fwkit.check(item["line"]) == item["reason"], item
            seen += 1
    assert seen >= 10
    for item in fwkit.load_vectors()["valid"]:
        assert fwkit.check(item["line"]) is None


def test_fixed_point_formatting():
    assert protocol.fixed(0, 2) == "0.00"
    assert protocol.fixed(-50, 2) == "-0.50"
    assert protocol.fixed(-5, 2) == "-0.05"
    assert protocol.fixed(10000, 2) == "100.00"
    assert protocol.fixed(1250000, 3) == "1250.000"
    assert protocol.fixed(999999999999999, 3) == "999999999999.999"


def test_free_text_is_cleaned_and_cut_to_the_line_limit():
    line = text("C", "abcdefghijklmnop", 4294967295, 9223372036854775807, "MORE", "x*y$z\t" + "w" * 300)
    assert len(line) == protocol.MAX_LINE and line.endswith("...*" + line[-9:-1] + "\n")
    assert fwkit.check(line[:-1]) is None
    body = line[: line.rindex("*")]
    assert "x?y?z?" in body and body.count("*") == 0 and body.count("$") == 1


def test_fault_names():
    assert bits.fault_names(0) == "none"
    assert bits.fault_names(0x0011) == "LINE NOFLOW"
    assert bits.fault_names(0x0100) == "LOOP"


def test_reading_values_are_clamped_to_the_protocol_ranges():
    line = reading("d", 1, 2, -400, "VOL", 20000000000, "L/min", 1000000000000500, "FAULT", 0, 4, 0)
    fields = line[: line.rindex("*")].split(",")
    assert fields[5:10] == ["-0.50", "VOL", "9999999.999", "L/min", "0.500"]
    line = reading("d", 1, 2, 25000, "LEL", 0, "m3/min", 0, "FAULT", 0, 4, 0)
    assert ",100.00,LEL," in line


def test_seq_wraps_after_32_bits_and_uptime_carries_into_seconds():
    f, out = frames("d", 4294967295, 999)
    f.text(b"E", "BOOT", "x")
    f.uptime.update(1)
    f.text(b"E", "BOOT", "y")
    assert out.lines[0].startswith("$FD1,E,d,4294967295,999,BOOT,x*")
    assert out.lines[1].startswith("$FD1,E,d,0,1000,BOOT,y*")
    f.uptime.update(9000)
    f.reading(None, 0, 0, 0, 0, 0, 0, 0)
    assert out.lines[2].startswith("$FD1,R,d,1,10000,,VOL,0.000,L/min,0.000,WARMUP,0,0000,00*")


def test_room_is_what_a_more_line_can_hold():
    f, out = frames("abcdefghijklmnop", 99, 9999)
    room = f.room()
    f.text(b"C", "MORE", "x" * room)
    assert len(out.lines[0]) <= protocol.MAX_LINE and "..." not in out.lines[0]
