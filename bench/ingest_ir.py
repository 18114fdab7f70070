"""Instructions per frame through row 2's ingest pass, counted by valgrind's callgrind: a figure that does not
move with the machine's load, for comparing two trees of the edge on a shared machine. Not a row of `firedamp
bench` (under valgrind the pass runs ~50x slower: about 2 minutes).

    python -m bench.ingest_ir [TREE ...]      # each TREE a checkout (default: this one)

The pass (bench.ingest.one_pass: the service's own process() and commit, 32 boards interleaved) runs under
callgrind on the same pre-made lines of 100 and then 200 readings per board; the difference of the two
totals over the 3,200 extra frames leaves out start-up, imports and the model load. Hash randomisation and
OpenBLAS's worker threads are turned off (PYTHONHASHSEED=0, OPENBLAS_NUM_THREADS=1): both made the count
vary by a few per cent between identical runs.
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

_CHILD = """
import pickle, sys, tempfile
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from bench.ingest import one_pass
items = pickle.load(open(sys.argv[2], "rb"))
with tempfile.TemporaryDirectory() as tmp:
    one_pass(items[:64], Path(tmp))  # imports, model load, first-call work: in both counts alike
with tempfile.TemporaryDirectory() as tmp:
    one_pass(items, Path(tmp))
"""


def instructions(tree: Path, items_file: Path) -> int:
    env = dict(os.environ, PYTHONHASHSEED="0", OPENBLAS_NUM_THREADS="1")
    out = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-c",
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
        for tree in trees:
            a, b = (instructions(tree, f) for f in files)
            print(f"{tree}: {(b - a) / extra:,.0f} instructions per frame ({BOARDS} boards, {extra:,} frames)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
