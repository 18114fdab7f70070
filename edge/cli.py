"""The `firedamp` command: one table of subcommands, each with its own parser (mpremote's shape).

Each entry names a module that provides `add_arguments(parser)` and `run(args) -> int`. Only the chosen
subcommand's module is imported, so `firedamp run` never loads torch and `firedamp --help` loads nothing.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from edge import __version__
from edge.errors import FiredampError

# name: (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("edge.commands.run", "run the edge service: serial boards → model → MQTT (see edge.toml)"),
    "demo": ("edge.demo", "whole system on this machine: virtual board, edge service, MQTT broker, live view"),
    "board": ("hardware.twin.cli", "run the unchanged firmware against a simulated mine, behind a pty"),
    "control-room": ("control.cli", "the control room: a live web page over every board of every edge, with ack"),
    "fleet": ("control.fleet", "a fleet on this machine: NATS cluster, PostgreSQL, two control rooms, E edges × B boards"),
    "console": ("edge.commands.console", "calibration console for a real or virtual board"),
    "history": ("edge.commands.history", "print stored readings of one board (CSV for retraining)"),
    "train": ("models.train", "train the LSTM anomaly/forecast model (needs the train extra)"),
    "export": ("models.export", "export a trained checkpoint to a single .onnx file with metadata"),
    "evaluate": ("edge.commands.evaluate", "evaluate a model on a CSV, or on SKAB with `evaluate skab DIR`"),
    "flash": ("edge.commands.flash", "copy the firmware to a board with mpremote"),
    "bench": ("bench.run", "run the benchmarks and print one table (or --json)"),
}


def _usage() -> str:
    width = max(len(n) for n in COMMANDS)
    rows = "\n".join(f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items())
    return (
        "usage: firedamp <command> [options]\n\n"
        "A gas and flow monitor for coal mines and process plants.\n\ncommands:\n"
        f"{rows}\n\n`firedamp <command> --help` explains each command."
    )


def build_parser(name: str) -> tuple[argparse.ArgumentParser, object]:
    """Import the module behind `name` and build its parser; returns (parser, module)."""
    module_name, help_ = COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"firedamp {name}", description=module.__doc__ or help_)
    module.add_arguments(parser)
    return parser, module


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] == "--version":
        print(f"firedamp {__version__}")
        return 0
    name = argv[0]
    if name not in COMMANDS:
        print(f"firedamp: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    try:
        parser, module = build_parser(name)
        args = parser.parse_args(argv[1:])
        return int(module.run(args) or 0)
    except FiredampError as exc:
        print(f"firedamp: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
