"""`python -m fuzz.run`: fuzz every parser that meets outside input and print what happened (`make fuzz`).

For each target: inputs tried, accepted, rejections by reason, crashes, oracle violations (a bad input
accepted or a good one refused), hangs (> 2 s for one input) and the slowest input. Exit status 1 if any
target had a crash, violation or hang. `--atheris N` then runs N coverage-guided inputs per target with
atheris (libFuzzer) when it is installed.
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import time

from fuzz import engine

TARGETS = {
    "frames": "fuzz.frames_target",
    "console": "fuzz.console_target",
    "config": "fuzz.config_target",
    "settings": "fuzz.settings_target",
    "model": "fuzz.model_target",
    "modbus": "fuzz.modbus_target",
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fuzz.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--inputs", type=int, default=100_000, help="generated inputs per target (default 100000)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: time-based, printed)")
    p.add_argument("--targets", default=",".join(TARGETS), help=f"comma-separated, of {', '.join(TARGETS)}")
    p.add_argument("--atheris", type=int, default=0, metavar="N",
                   help="also run N coverage-guided atheris inputs per target (default 0: off)")
    args = p.parse_args(argv)
    seed = args.seed if args.seed is not None else int(time.time()) % 100_000
    names = [n.strip() for n in args.targets.split(",") if n.strip()]
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        p.error(f"unknown target(s) {unknown}; choose from {', '.join(TARGETS)}")
    print(f"fuzz: {args.inputs} inputs per target, seed {seed}", flush=True)
    failed = False
    total = 0
    for name in names:
        stats = engine.run(importlib.import_module(TARGETS[name]), args.inputs, seed=seed)
        total += stats.inputs
        print("\n".join(stats.lines()), flush=True)
        failed |= not stats.ok
    if args.atheris:
        for name in names:
            rc = subprocess.call([sys.executable, "-m", "fuzz.atheris_run", name, str(args.atheris)],
                                 cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
            failed |= rc != 0
    print(f"fuzz: {total} generated inputs in all; {'FAILED' if failed else 'no crash, no hang, no violation'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
