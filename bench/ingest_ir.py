"""Instructions per frame through row 2's ingest pass, counted by valgrind's callgrind: a figure that does not
move with the machine's load, for comparing two trees of the edge on a shared machine. Not a row of `firedamp
bench` (under valgrind the pass runs ~50x slower: about 2 minutes).

    python -m bench.ingest_ir [TREE ...]      # each TREE a checkout (default: this one), 2 rounds

The pass (bench.ingest.one_pass: the service's own process() and commit, 32 boards interleaved) runs under
callgrind on the same pre-made lines of 100 and then 200 readings per board; the difference of the two
totals over the 3,200 extra frames leaves out start-up, imports and the model load. Hash randomisation,
address randomisation and OpenBLAS's worker threads are turned off (PYTHONHASHSEED=0, setarch -R,
OPENBLAS_NUM_THREADS=1), and the garbage collector is run just before the measured pass: without that, a
full collection (~15 M instructions) fell inside one run's pass and not the other's, and repeated runs of
one tree differed by up to 10 %. The trees are measured in ROUNDS alternate rounds, every count printed.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BOARDS = 32
SAMPLES = (100, 200)
ROUNDS = 2

_CHILD = """
import gc, pickle, sys, tempfile
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from bench.ingest import one_pass
items = pickle.load(open(sys.argv[2], "rb"))
with tempfile.TemporaryDirectory() as tmp:
    one_pass(items[:64], Path(tmp))  # imports, model load, first-call work: in both counts alike
gc.collect()  # the collector's counts start the pass alike in both runs (else a full collection can fall in one)
with tempfile.TemporaryDirectory() as tmp:
    one_pass(items, Path(tmp))
"""


def instructions(tree: Path, items_file: Path) -> int:
    env = dict(os.environ, PYTHONHASHSEED="0", OPENBLAS_NUM_THREADS="1")
    norandom = ["setarch", os.uname().machine, "-R"] if shutil.which("setarch") else []  # the same addresses
    out = subprocess.run([*norandom, "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-c",
                          _CHILD, str(tree), str(items_file)], env=env, capture_output=True, text=True, check=True)
    m = re.search(r"Collected\s*:\s*(\d+)", out.stderr)
    if m is None:
        raise RuntimeError(f"no instruction count from callgrind: {out.stderr[-400:]}")
    return int(m.group(1))


def main(argv: list[str]) -> int:
    if shutil.which("valgrind") is None:
        print("ingest_ir: needs valgrind (apt-get install valgrind)", file=sys.stderr)
        return 2
    from bench.ingest import make_items

    trees = [Path(a).resolve() for a in argv] or [Path(__file__).resolve().parent.parent]
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for n in SAMPLES:
            f = Path(tmp) / f"items{n}.pkl"
            f.write_bytes(pickle.dumps(make_items(BOARDS, n)))
            files.append(f)
        extra = BOARDS * (SAMPLES[1] - SAMPLES[0])
        counts: dict[Path, list[float]] = {tree: [] for tree in trees}
        for _ in range(ROUNDS):
            for tree in trees:
                a, b = (instructions(tree, f) for f in files)
                counts[tree].append((b - a) / extra)
        for tree, per in counts.items():
            print(f"{tree}: fewest {min(per):,.0f} instructions per frame ({BOARDS} boards, {extra:,} frames; "
                  f"rounds {', '.join(f'{v:,.0f}' for v in per)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
