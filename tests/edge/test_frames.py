"""Frames stage against the shared vectors (docs/protocol.md), plus garbage and random bytes (hypothesis)."""

import binascii
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.frames import (
    FAULT_NAMES,
    FLAG_BATTERY_LOW,
    FLAG_PT_FAULT,
    REASONS,
    STATES,
    Aux,
    BadFrame,
    Decoder,
    Event,
    Reading,
    Reply,
    checked_parse,
    format_frame,
    format_reading,
    parse,
    seal,
)

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "frames.json").read_text())


@pytest.mark.parametrize("item", VECTORS["valid"], ids=lambda i: i["line"][:40])
def test_every_valid_vector_decodes_to_exactly_its_fields(item):
    for ending in (b"", b"\n", b"\r\n"):
        frame = parse(item["line"].encode() + ending)
        assert frame._asdict() == item["fields"]


@pytest.mark.parametrize("item", VECTORS["invalid"], ids=lambda i: f"{i['reason']}:{i['line'][:30]}")
def test_every_invalid_vector_is_rejected_with_exactly_its_reason(item):
    with pytest.raises(BadFrame) as exc:
        parse(item["line"].encode() + b"\n")
    assert exc.value.reason == item["reason"], exc.value


def test_non_ascii_is_an_encoding_reject_and_counted():
    d = Decoder()
    body = "$FD1,E,pico-01,1,10,SET,température".encode()
    assert d.decode(b"%s*%08x\n" % (body, binascii.crc32(body))) is None
    assert d.rejected["encoding"] == 1 and d.ok == 0


def test_line_of_128_bytes_is_accepted_and_129_rejected():
    body = "$FD1,E,pico-01,1,10,SET,"
    pad = 128 - len(body) - 9
    line = seal(body + "x" * pad)
    assert len(line) == 129  # 128 + newline
    assert parse(line).text == "x" * pad
    longer = seal(body + "x" * (pad + 1))
    with pytest.raises(BadFrame, match="too_long"):
        parse(longer)


def test_text_may_hold_commas_but_not_control_characters():
    assert parse(seal("$FD1,C,d,1,1,MORE,a, b, c")).text == "a, b, c"
    with pytest.raises(BadFrame, match="value"):
        parse(seal("$FD1,C,d,1,1,OK,bell\x07"))


def test_format_reading_roundtrips():
    r = Reading("dev_1", 5, 5000, 1.23, "VOL", 12.5, "m3/min", 100.0, "ALARM", 1, 0x18, 0x03)
    assert parse(format_reading(r)) == r


def test_the_edge_numbers_board_states_as_the_firmware_does():
    """One state order on both sides of the wire (firmware/protocol.py cannot import edge): the Modbus `state`
    register (edge/modbus.py) gives a state as its index in edge.frames.STATES, the firmware's own numbering."""
    import ast

    tree = ast.parse((Path(__file__).parents[2] / "firmware" / "protocol.py").read_text())
    firmware = [ast.literal_eval(n.value) for n in tree.body
                if isinstance(n, ast.Assign) and [getattr(t, "id", "") for t in n.targets] == ["STATES"]]
    assert firmware == [STATES]


def test_format_frame_roundtrips_every_frame_type():
    frames = [Reading("b1", 0, 120, None, "LEL", 0.0, "L/min", 0.0, "WARMUP", 0, 0, 0),
              Aux("drain-3", 12, 12000, 98.4, 21.5, 1.205, "Nm3/min", 5120.25, 3912, 415),
              Aux("b1", 4294967295, 2**63 - 1, None, None, None, "NL/min", None, None, None),  # every field empty
              Aux("b1", 1, 10, 0.0, -50.0, 0.0, "Nm3/min", 0.0, 0, 0),  # zeros stay zeros, not None
              Event("pico-01", 4294967295, 2**63 - 1, "BOOT", "fw 0.1.0 reset=power"),
              Event("b1", 3, 3000, "SET", ""),
              Reply("b1", 7, 7000, "MORE", "a, b, c")]  # commas in the text are kept
    for f in frames:
        assert parse(format_frame(f)) == f


def test_the_new_bits_have_their_protocol_names():
    assert FAULT_NAMES.index("BATTERY") == 9 and len(FAULT_NAMES) == 10
    assert (FLAG_PT_FAULT, FLAG_BATTERY_LOW) == (0x10, 0x20)


def test_an_aux_frame_with_empty_fields_gives_none_not_zero():
    a = parse(seal("$FD1,A,b1,7,7000,,,,NL/min,,,"))
    assert a == Aux("b1", 7, 7000, None, None, None, "NL/min", None, None, None) and a.type == "A"


def test_hostile_aux_lines_are_counted_under_their_reason_and_tracked_in_sequence_with_readings():
    d = Decoder()
    good = "$FD1,A,b1,2,2000,98.40,21.50,1.205,Nm3/min,5120.250,3912,415"
    hostile = [seal(good.replace(",3912,", ",39 12,")), seal(good.replace("98.40", "1e2")),
               seal(good.replace("21.50", "inf")), seal(good.replace("Nm3/min", "")),
               seal(good.replace(",415", ",+415")), seal(good.replace(",b1,", ",b 1,")),
               seal(good.replace(",2,2000,", ",2,-1,")), seal(good.replace(",3912,", ",\x07,")),  # 8 x value
               seal(good + ",,"), seal("$FD1,A"), seal("$FD1,A,b1,2,2000"),  # 3 x fields
               good.encode() + b"*00000000\n",  # checksum
               seal(good.replace("Nm3/min", "Nm3/min" + "x" * 60)),  # too_long
               good.encode() + b"*zzzzzzzz\n"]  # no_checksum
    for line in hostile:
        assert d.decode(line) is None
    assert d.rejected == {**dict.fromkeys(REASONS, 0), "value": 8, "fields": 3, "checksum": 1, "too_long": 1,
                          "no_checksum": 1}
    assert sum(d.rejected.values()) == len(hostile) and d.ok == 0
    # the sequence counter covers all frame types: R 1, A 2 (this one), R 3, then an A after a gap of one
    r = parse(seal("$FD1,R,b1,1,1000,0.40,VOL,1.000,m3/min,1.000,NORMAL,1,0000,00"))
    assert d.track(r).first and d.track(d.decode(seal(good))).lost == 0
    assert d.track(parse(seal("$FD1,R,b1,3,3000,0.40,VOL,1.000,m3/min,1.000,NORMAL,1,0000,00"))).lost == 0
    assert d.track(parse(seal(good.replace(",2,2000,", ",5,5000,")))).lost == 1 and d.lost_frames == 1


def test_decoder_counts_gaps_reboots_and_seq_wrap():
    d = Decoder()

    def frame(seq, up):
        return parse(seal(f"$FD1,E,b1,{seq},{up},X,"))

    assert d.track(frame(10, 1000)).first
    assert d.track(frame(11, 1100)).lost == 0
    assert d.track(frame(15, 1500)).lost == 3
    gap = d.track(frame(2, 50))  # uptime went back: reboot, frames 0 and 1 lost
    assert gap.rebooted and gap.lost == 2
    d.track(frame(4294967295, 60))
    assert d.track(frame(0, 70)).lost == 0  # wrap
    assert d.track(frame(0, 80)).lost == 0  # a repeat loses nothing
    assert d.lost_frames == 5 and d.reboots == 1


def test_seeded_decoder_counts_what_was_missed_while_the_edge_was_down():
    def frame(device, seq, up):
        return parse(seal(f"$FD1,E,{device},{seq},{up},X,"))

    d = Decoder()
    d.seed({"a": (10, 10_000), "b": (10, 10_000), "c": (10, 10_000), "d": (500, 500_000)})
    assert d.track(frame("a", 11, 11_000)) == (0, False, True)  # nothing missed
    assert d.track(frame("b", 15, 15_000)) == (4, False, True)  # 11..14 sent while nobody read
    assert d.track(frame("c", 3, 3_000)) == (3, True, True)  # uptime went back: restarted meanwhile
    assert d.track(frame("d", 7, 900_000)) == (7, True, True)  # seq went back (it ran longer than before)
    assert d.track(frame("e", 1, 1_000)) == (0, False, True)  # never seen before: nothing to compare
    assert d.track(frame("b", 17, 17_000)) == (1, False, False)  # the seed is used once, then live tracking
    assert d.lost_frames == 4 + 3 + 7 + 1 and d.reboots == 2


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_crash_and_are_never_readings_unless_sealed(data):
    d = Decoder()
    for line in data.split(b"\n"):
        frame = d.decode(line)
        if frame is not None:  # only possible when the random bytes carry a correct CRC-32
            body, crc = line.rstrip(b"\r").rsplit(b"*", 1)
            assert int(crc, 16) == binascii.crc32(body)
    assert set(d.rejected) == set(REASONS)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([v["line"] for v in VECTORS["valid"]]), st.integers(0, 120), st.binary(min_size=1, max_size=3))
def test_corrupting_a_valid_line_gives_a_reject_not_a_different_reading(line, pos, junk):
    raw = line.encode()
    pos = min(pos, len(raw))
    bad = raw[:pos] + junk + raw[pos + 1:]
    try:
        frame = parse(bad)
    except BadFrame as exc:
        assert exc.reason in REASONS
        return
    # a corruption that still passes CRC-32 must be the identical line (e.g. the same byte written back)
    assert bad.rstrip(b"\r\n") == raw or binascii.crc32(bad[: bad.rindex(b"*")]) == int(bad[bad.rindex(b"*") + 1:].rstrip(), 16)
    assert frame.device


# each field of an R line: (values the protocol allows, values it does not or that only the slow path takes)
_R_FIELDS = (
    (("pico-01", "a", "x" * 16, "_-"), ("x" * 17, "b 1", "", "é")),
    (("0", "42", "0042", "4294967295"), ("4294967296", "9999999999", "-1", "12345678901", "4e3")),
    (("0", "120", "9223372036854775807"), ("9223372036854775808", "9999999999999999999", "1.5")),
    (("", "0.52", "100.00", "-0.50", "0.5", "1.520"), ("100.01", "999.99", "-0.51", "nan", "1e1", " 1.00")),
    (("VOL", "LEL"), ("vol", "PPM")),
    (("0.000", "1250.000", "9999999.999", "1250", "1250.5", "0001250.000"), ("10000000.000", "-1.000", "1,0")),
    (("L/min", "m3/min"), ("gal/h",)),
    (("0.000", "53211.500", "999999999999.999", "53211"), ("1000000000000.000", "+1.000")),
    (STATES, ("CALM", "normal")),
    (("0", "1"), ("2", "")),
    (("0000", "00ff", "ABCD"), ("00G0", "000", "00000")),
    (("00", "0f", "FF"), ("0", "0x")),
)


@st.composite
def _r_fields(draw):
    """A reading's fields, each a good value, then up to two of them swapped for any value (good or bad)."""
    fields = [draw(st.sampled_from(good)) for good, _ in _R_FIELDS]
    for _ in range(draw(st.integers(0, 2))):
        k = draw(st.integers(0, len(_R_FIELDS) - 1))
        fields[k] = draw(st.sampled_from(_R_FIELDS[k][0] + _R_FIELDS[k][1]))
    return fields


@settings(max_examples=3000, deadline=None)
@given(_r_fields(), st.sampled_from(("\n", "\r\n", "")), st.sampled_from(("ok", "upper", "wrong")))
def test_the_fast_reading_path_gives_what_the_field_by_field_checks_give(fields, end, crc):
    """parse() takes a reading in the board's exact shape through one pattern (edge/frames.py _R_LINE): on any
    mix of good and bad fields, sealed so the CRC passes (or not), it must give the same frame or the same reject
    as checked_parse, which checks field by field."""
    body = ("$FD1,R," + ",".join(fields)).encode("utf-8")
    c = binascii.crc32(body) ^ (1 if crc == "wrong" else 0)
    line = body + (b"*%08X" if crc == "upper" else b"*%08x") % c + end.encode()

    def outcome(fn):
        try:
            return repr(fn(line))
        except BadFrame as exc:
            return f"BadFrame({exc.reason}: {exc.detail})"

    assert outcome(parse) == outcome(checked_parse)
