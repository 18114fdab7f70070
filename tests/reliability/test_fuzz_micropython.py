"""Differential fuzzing on the real MicroPython binary (192 KB heap): the same generated settings files and
console command lines go through the firmware on MicroPython and on CPython; the board must come to the same
answer on both (the CPython runs are the ones `make fuzz` checks against the oracles).
"""

import importlib
import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from fuzz import console_target, settings_target

ROOT = Path(__file__).parents[2]
MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"
N = int(os.environ.get("FIREDAMP_FUZZ_MPY", "1500"))

pytestmark = pytest.mark.skipif(not MICROPYTHON.exists(), reason="MicroPython binary not installed")

SETTINGS_SCRIPT = """
import json, settings
root = ROOT
out = open(root + "/out.jsonl", "w")
for i in range(N):
    values, problem = settings.Store(root, "s%d" % i).load()
    out.write(json.dumps([values, problem is not None]) + "\\n")
out.close()
print("done")
"""


def run_mpy(script: str, tmp: Path) -> subprocess.CompletedProcess:
    (tmp / "run.py").write_text(script)
    env = dict(os.environ, MICROPYPATH=f"{ROOT / 'firmware'}:{ROOT / 'hardware' / 'twin'}")
    return subprocess.run([str(MICROPYTHON), "-X", "heapsize=192k", str(tmp / "run.py")], env=env, cwd=tmp,
                          capture_output=True, text=True, timeout=240)


def test_settings_files_load_the_same_on_micropython_as_on_cpython(tmp_path):
    rng = random.Random(42)
    inputs = [settings_target.generate(rng) for _ in range(N)]
    # left out: deeply nested files (covered by the CPython oracle) and NaN/Infinity, which CPython's json takes
    # as an extension and MicroPython's refuses (the board is the stricter one: a fault, then the last good file)
    inputs = [d for d in inputs if len(d) < 20_000 and b"Infinity" not in d and b"NaN" not in d]
    for i, data in enumerate(inputs):
        (tmp_path / f"s{i}.json").write_bytes(data)
    script = SETTINGS_SCRIPT.replace("ROOT", repr(str(tmp_path))).replace("range(N)", f"range({len(inputs)})")
    done = run_mpy(script, tmp_path)
    assert done.returncode == 0 and "done" in done.stdout, done.stderr[-2000:]
    mpy = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    settings = importlib.import_module("settings")
    differ = []
    for i, data in enumerate(inputs):
        values, problem = settings_target._MemStore({"/flash/settings.json": data}).load()
        m_values, m_problem = mpy[i]
        if m_problem != (problem is not None) or any(
                m_values[k] != values[k] and not (isinstance(values[k], float) and abs(m_values[k] - values[k]) < 1e-6)
                for k in settings.KEYS):
            keys = [(k, values[k], m_values[k]) for k in settings.KEYS if m_values[k] != values[k]]
            differ.append((keys, problem, m_problem, data[:300]))
    assert not differ, f"{len(differ)} of {len(inputs)} files load differently on MicroPython: {differ[:3]}"


CONSOLE_SCRIPT = """
import json, machine, board, main, settings
import fwkit
rig = fwkit.Rig()
import binascii
out = open("out.jsonl", "w")
for hexline in open("lines.hex"):  # one command per line, hex: read one at a time in a 192 KB heap
    line = binascii.unhexlify(hexline.strip())
    if line[:1] == b"!":
        rig.stream.feed(b"unlock " + rig.ctl.s["pin"].encode() + b"\\n")
        rig.step()
        rig.frames()
        line = line[1:]
    rig.stream.feed(line + b"\\n")
    rig.step()
    finals = [f for f in rig.frames() if f[0] == "C" and f[4] in ("OK", "ERR")]
    out.write(json.dumps([f[4] for f in finals]) + "\\n")
out.close()
print("done")
"""


def test_console_commands_answer_the_same_on_micropython_as_on_cpython(tmp_path):
    rng = random.Random(43)
    lines = [console_target.generate(rng).replace(b"\r", b" ").replace(b"\n", b" ") for _ in range(N)]
    (tmp_path / "lines.hex").write_text("".join(ln.hex() + "\n" for ln in lines))
    shutil.copy(ROOT / "tests" / "firmware" / "fwkit.py", tmp_path / "fwkit.py")
    done = run_mpy(CONSOLE_SCRIPT, tmp_path)
    assert done.returncode == 0 and "done" in done.stdout, done.stderr[-2000:]
    mpy = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(mpy) == len(lines)
    rig = console_target.Rig()  # a fresh CPython board with the same starting settings as fwkit.Rig
    differ = []
    for line, m in zip(lines, mpy, strict=True):
        if line[:1] == b"!":
            rig.send(b"unlock " + rig.ctl.s["pin"].encode())
            body = line[1:]
        else:
            body = line
        got = [f.status for f in rig.send(body) if f.status != "MORE"]
        if got != m:
            differ.append((line, got, m))
    assert not differ, f"{len(differ)} of {len(lines)} command lines answered differently on MicroPython: {differ[:5]}"


def test_a_settings_file_damaged_into_non_utf8_falls_back_on_micropython(tmp_path):
    """Regression: MicroPython's UnicodeError has no args, and load_raw used to die on exc.args[0] (no boot)."""
    (tmp_path / "settings.json").write_bytes(b'{"device_id": "\xff\xfe"}\n00000000\n')
    script = f"import settings\nv, p = settings.Store({str(tmp_path)!r}).load()\nprint(v == settings.defaults(), p)\n"
    done = run_mpy(script, tmp_path)
    assert done.returncode == 0, done.stderr[-1000:]
    assert done.stdout.startswith("True settings.json is not readable text"), done.stdout
