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
    handlers = {name[4:].replace("_", "-") for cls in (console.Console, commands.Commands)
                for name in vars(cls) if name.startswith("cmd_")}
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
