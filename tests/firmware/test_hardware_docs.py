"""hardware/ docs agree with the firmware: the pin map table is board.py's, the BOM is well-formed CSV."""

import csv
import re
from pathlib import Path

import board

HW = Path(__file__).resolve().parents[2] / "hardware"


def pinmap_table() -> dict[str, dict[str, str]]:
    text = (HW / "pinmap.md").read_text()
    block = text.split("<!-- pinmap:begin -->")[1].split("<!-- pinmap:end -->")[0]
    rows = [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in block.strip().splitlines()]
    header = rows[0]
    assert header[:3] == ["signal", "pico", "esp32"]
    return {r[0]: dict(zip(header[1:3], r[1:3], strict=True)) for r in rows[2:]}


def test_pinmap_doc_matches_board_py():
    table = pinmap_table()
    doc_signals = set(table) - {"vsys_adc"}
    for name in ("pico", "esp32"):
        assert doc_signals == set(board.PINMAPS[name]), name
        for signal, gpio in board.PINMAPS[name].items():
            assert table[signal][name] == str(gpio), (name, signal)
        vsys = board.VSYS_ADC[name]
        assert table["vsys_adc"][name] == ("-" if vsys is None else str(vsys))


def test_pinmap_has_no_pin_used_twice():
    for name, pins in board.PINMAPS.items():
        used = list(pins.values()) + [v for v in [board.VSYS_ADC[name]] if v is not None]
        assert len(used) == len(set(used)), name


def test_bom_is_well_formed_and_has_the_safety_parts():
    with open(HW / "bom.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and set(rows[0]) == {"ref", "qty", "part", "value", "description", "notes"}
    for r in rows:
        assert int(r["qty"]) >= 1 and r["ref"] and r["part"], r
    text = " ".join(" ".join(r.values()) for r in rows).lower()
    for needed in ("flyback", "shunt", "pull-up", "relay", "buzzer", "beacon", "ssd1306", "optocoupler"):
        assert needed in text, needed
    shunt = [r for r in rows if "shunt" in r["description"]][0]
    assert re.match(r"150 ohm", shunt["value"])  # the firmware default shunt_ohm


def test_readme_says_certified_intrinsically_safe_equipment_is_needed():
    text = (HW / "README.md").read_text().lower()
    assert "intrinsically safe" in text and "not certified" in text
    assert "pio" in text and "brown-out" in text and "flyback" in text


DOCS = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"


def test_protocol_doc_lists_exactly_the_console_commands_the_board_has():
    import commands
    import console

    text = DOCS.read_text()
    listed = text.split("## Console commands")[1].split("Every command is answered")[0]
    documented = {m.split()[0] for m in re.findall(r"`([a-z-]+(?: [^`]*)?)`", listed)}
    handlers = {name[4:].replace("_", "-") for space in (console.Console, commands)
                for name in vars(space) if name.startswith("cmd_")}
    assert documented == handlers


def test_every_event_code_the_board_sends_is_documented():
    text = DOCS.read_text()
    sent = set()
    for path in FIRMWARE.glob("*.py"):
        sent |= set(re.findall(r'(?:event|record|_change)\([^)]*?"([A-Z_]{2,})"', path.read_text()))
    assert sent >= {"BOOT", "SELFTEST", "ACK", "RESTORE", "CAL", "SET", "PROFILE", "SAVE", "SETTINGS",
                    "DISPLAY", "FACTORY"}
    for code in sent:
        assert f"`{code}`" in text, code


def bits_tables() -> tuple[list[list[str]], list[list[str]]]:
    """(fault rows, flag rows) of docs/protocol.md's bit tables: [bit, mask, name, meaning] each."""
    block = DOCS.read_text().split("<!-- bits:begin -->")[1].split("<!-- bits:end -->")[0]
    tables = []
    for part in block.strip().split("\n\n"):
        rows = [[c.strip().strip("`") for c in ln.strip().strip("|").split("|")] for ln in part.splitlines()]
        assert rows[0][:3] in (["bit", "mask", "fault"], ["bit", "mask", "flag"]), rows[0]
        tables.append(rows[2:])
    assert len(tables) == 2
    return tables[0], tables[1]


def board_bits(prefix: str) -> dict[str, int]:
    import bits

    return {name[len(prefix):]: getattr(bits, name) for name in dir(bits)
            if name.startswith(prefix) and name[len(prefix):] not in ("SENSOR",)}


def test_protocol_doc_bit_tables_are_firmware_bits_py():
    import bits

    faults, flags = bits_tables()
    for rows, prefix, width in ((faults, "F_", 4), (flags, "FLAG_", 2)):
        named = board_bits(prefix)
        assert {r[2] for r in rows} == set(named), prefix
        for bit, mask, name, meaning in rows:
            assert named[name] == 1 << int(bit) and mask == f"{1 << int(bit):0{width}x}" and meaning, name
    assert list(bits.FAULT_NAMES) == [r[2] for r in sorted(faults, key=lambda r: int(r[0]))]
    assert bits.F_SENSOR == bits.F_LINE | bits.F_RAIL | bits.F_RANGE | bits.F_STUCK


def test_shared_vectors_use_only_defined_bits_and_every_one_of_them():
    import json

    vectors = json.loads((DOCS.parents[1] / "tests" / "vectors" / "frames.json").read_text())
    readings = [v["fields"] for v in vectors["valid"] if v["fields"]["type"] == "R"]
    for key, prefix in (("faults", "F_"), ("flags", "FLAG_")):
        defined = 0
        for mask in board_bits(prefix).values():
            defined |= mask
        seen = 0
        for r in readings:
            assert r[key] & ~defined == 0, (key, r)
            seen |= r[key]
        assert seen == defined, f"no vector sets {key} bits {defined & ~seen:#x}"


def test_edge_names_the_same_bits():
    """The edge's parser (edge/frames.py) decodes the bits by the same names as the board sends them."""
    from edge import frames

    assert tuple(frames.FAULT_NAMES) == tuple(__import__("bits").FAULT_NAMES)
    edge_flags = {n[len("FLAG_"):]: getattr(frames, n) for n in dir(frames) if n.startswith("FLAG_")}
    assert edge_flags == board_bits("FLAG_")
