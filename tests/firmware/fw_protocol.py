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
        else:
            code = f["code"] if f["type"] == "E" else f["status"]
            line = text(f["type"], f["device"], f["seq"], f["uptime_ms"], code, f["text"])
        assert line == item["line"] + "\n", (line, item["line"])
        n += 1
    assert n == len(vectors["valid"]) and n >= 10


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
