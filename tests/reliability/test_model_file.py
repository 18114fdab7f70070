"""The shipped model file tampered with: every bit flip, truncation or appended byte is refused with a ModelError
by the same check `firedamp run` uses (models.runtime.read_spec), never accepted, never a crash of ONNX Runtime.

Runs in a child process so that a native crash inside ONNX Runtime would fail this test instead of pytest.
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
FLIPS = 1500

CHILD = r"""
import json, random, sys
from edge.errors import ModelError
from models.runtime import DEFAULT_MODEL, read_spec
data = DEFAULT_MODEL.read_bytes()
rng = random.Random(11)
cases = []
for _ in range(int(sys.argv[1])):
    b = bytearray(data)
    b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    cases.append(bytes(b))
cases += [data[:n] for n in (0, 1, 16, len(data) // 2, len(data) - 1)] + [data + b"\x00", data + data[:64]]
accepted, refused = 0, {}
for b in cases:
    try:
        read_spec(b, "tampered.onnx")
        accepted += 1
    except ModelError as exc:
        reason = str(exc).split(": ", 1)[1].split("(")[0].split("'")[0].strip()[:40]
        refused[reason] = refused.get(reason, 0) + 1
read_spec(data, "firedamp-lstm.onnx")  # and the untouched file still loads
print(json.dumps({"cases": len(cases), "accepted": accepted, "refused": refused}))
"""


def test_every_tampered_copy_of_the_model_file_is_refused_without_a_crash():
    proc = subprocess.run([sys.executable, "-c", CHILD, str(FLIPS)], cwd=ROOT, capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(result)
    assert result["cases"] == FLIPS + 7 and result["accepted"] == 0
    assert sum(result["refused"].values()) == result["cases"]
    assert any("content_sha256" in reason for reason in result["refused"])
