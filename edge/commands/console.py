"""Calibration console: a serial terminal that speaks firedamp frames, for a real board or a virtual one.

Readings arrive as `R` frames and are shown one readable line each; what you type is sent as a console
command and the board's `C` reply lines are shown as they come. With `--command` it sends one command (or
several, in order), prints the reply and exits: 0 when every reply ends `OK`, 1 on an `ERR` reply or when the
board does not answer in time — for scripts and tests.

Examples:
    firedamp console --port /dev/ttyACM0
    firedamp console --port /tmp/board-1 --command status
    firedamp console --port /tmp/board-1 --command "unlock 1234" --command "cal zero"
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

import serial

from edge.console import Console, Printer, open_port
from edge.errors import LinkError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--port", required=True,
                        help="serial port of the board: /dev/ttyACM0, /dev/serial/by-id/..., or the --link "
                             "path of a virtual board (`firedamp board`)")
    parser.add_argument("--command", action="append", metavar="TEXT",
                        help="send this command, print the reply and exit (repeat to send several in order; "
                             "stops at the first refused one). Exit status 1 on an ERR reply or no reply")
    parser.add_argument("--timeout", type=float, default=3.0, metavar="S",
                        help="seconds to wait for each reply (default 3)")
    parser.add_argument("--baud", type=int, default=115200, help="baud rate for a UART (default 115200; "
                        "USB boards and virtual boards ignore it)")
    parser.add_argument("--readings", choices=("all", "changes", "none"), default="all",
                        help="interactive mode: show every reading and A frame (pressure, temperature, standard "
                             "flow, battery; default), only the readings where the state, relay, faults or flags "
                             "change, or none")


def run(args: argparse.Namespace) -> int:
    if args.timeout <= 0:
        raise LinkError(f"--timeout must be > 0 seconds, got {args.timeout}")
    port = open_port(args.port, args.baud)
    if args.command:
        with Console(port) as console:
            return _run_commands(console, args.command, args.timeout, sys.stdout)
    return _interactive(port, args, sys.stdin, sys.stdout)


def _run_commands(console: Console, commands: list[str], timeout_s: float, out: TextIO) -> int:
    for text in commands:
        reply = console.command(text, timeout_s)
        for line in reply.lines:
            print(line, file=out)
        if reply.status != "OK":
            print(f"firedamp: the board refused {text.strip()!r}", file=sys.stderr)
            return 1
    return 0


def _interactive(port: serial.SerialBase, args: argparse.Namespace, inp: TextIO, out: TextIO) -> int:
    printer = Printer(out, readings=args.readings)
    with Console(port, on_frame=printer.frame, on_bad=printer.bad) as console:
        printer.note(f"connected to {args.port}. Type a command (`help` lists them); Ctrl-D or `quit` leaves.")
        for raw in inp:
            text = raw.strip()
            if not text:
                continue
            if text in ("quit", "exit"):
                break
            try:
                reply = console.command(text, args.timeout)
            except LinkError as exc:
                printer.note(f"! {exc}")
                if console.link_error is not None:
                    raise
                continue
            if reply.status == "ERR":
                printer.note("! refused: nothing was changed")
    printer.note(f"{console.received} frames received, rejected lines: {console.rejected or 'none'}")
    return 0
