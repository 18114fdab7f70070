"""`python -m fuzz.atheris_run TARGET N`: N coverage-guided inputs (atheris/libFuzzer) into one fuzz target.

The same `check` and oracle as fuzz.run; a crash, violation or hang stops libFuzzer with the input saved as
crash-* in the working folder. Prints the same figures as fuzz.run when done.
"""

from __future__ import annotations

import importlib
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter

from fuzz.run import TARGETS


def main() -> int:
    try:
        import atheris
    except ImportError:
        print("atheris is not installed here (pip install atheris): coverage-guided run skipped")
        return 0
    name, runs = sys.argv[1], int(sys.argv[2])
    target = importlib.import_module(TARGETS[name])
    atheris.instrument_all()
    counts: Counter = Counter()
    t0 = time.perf_counter()

    def one(data: bytes) -> None:
        counts[target.check(data)] += 1  # any exception (crash or Violation) is a finding for libFuzzer
        if sum(counts.values()) >= runs:
            accepted = counts.pop("accepted", 0)
            print(f"{target.NAME} (atheris, coverage-guided): {runs} inputs in {time.perf_counter() - t0:.1f} s, "
                  f"accepted {accepted}, rejected {sum(counts.values())}, crashes 0, oracle violations 0, hangs 0")
            for reason, n in counts.most_common():
                print(f"    rejected {reason}: {n}")
            sys.stdout.flush()
            os._exit(0)

    # a seed corpus from the target's own generator, so libFuzzer starts past the checksum and the grammar
    corpus = tempfile.mkdtemp(prefix=f"fuzz-corpus-{name}-")
    rng = random.Random(1)
    for i in range(300):
        data = target.generate(rng)
        if not isinstance(data, bytes):
            data = target.encode(data) if hasattr(target, "encode") else json.dumps(data).encode()
        with open(os.path.join(corpus, f"seed{i}"), "wb") as f:
            f.write(data)
    reseal = getattr(target, "reseal", None)

    def mutator(data: bytes, max_size: int, seed: int) -> bytes:
        out = atheris.Mutate(data, max_size)
        # most mutants get a fresh checksum: otherwise nearly all of them stop at the CRC check
        return reseal(out) if reseal and seed % 5 else out

    atheris.Setup([sys.argv[0], "-timeout=5", f"-runs={runs + 1}", "-print_final_stats=0", "-max_len=4096", corpus],
                  one, custom_mutator=mutator)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main())
