"""The virtual board itself: its pty link, its simulated instruments, its clock and its watchdog.

- The link is a real pty behind a symlink: a reader may close and reopen it (the edge does on every error)
  and finds the board still there, with fresh frames, not a backlog from while nobody listened.
- Each methane front end (4-20 mA, voltage, 200-1000 Hz edges) carries the gas concentration through the
  firmware's own measurement and calibration code back to the reported reading.
- A firmware crash stops the watchdog feed, and the board resets itself as a Pico would.
"""

import subprocess
import time

import serial

from edge import frames


def _readings(port: serial.Serial, n: int, timeout: float = 20.0) -> list[frames.Reading]:
    out: list[frames.Reading] = []
    deadline = time.monotonic() + timeout
    buf = b""
    while len(out) < n and time.monotonic() < deadline:
        buf += port.read(256)
        *lines, buf = buf.split(b"\n")
        for line in lines:
            f = frames.parse(line)  # raises on any bad frame: the board must only send valid ones
            if f.type == "R":
                out.append(f)
    assert len(out) >= n, f"only {len(out)} readings in {timeout} s"
    return out


def test_link_survives_reopen_with_fresh_frames_and_runs_at_speed(board):
    b = board("link-1", "normal", 20.0)
    with serial.Serial(str(b.link), timeout=0.1) as port:
        first = _readings(port, 3)
    time.sleep(1.0)  # nobody listens for 1 s = 20 simulated s
    with serial.Serial(str(b.link), timeout=0.1) as port:
        again = _readings(port, 3)
    gap = again[0].seq - first[-1].seq
    assert gap >= 3, f"frames sent while the port was closed came late (sequence gap {gap})"
    assert again[1].seq == again[0].seq + 1 or again[1].state != again[0].state
    sim_s = (again[-1].uptime_ms - first[0].uptime_ms) / 1000
    assert sim_s >= 5, f"only {sim_s:.1f} simulated s passed in over 1 s at --speed 20"


def test_every_front_end_reads_the_gas_through_the_firmware(board):
    boards = {fe: board(f"fe-{fe}", "normal", 20.0, ["--front-end", fe]) for fe in ("ma", "volt", "freq")}
    for b in boards.values():
        b.link.with_name(b.link.name + ".gas").write_text("0.73\n")
    for fe, b in boards.items():
        with serial.Serial(str(b.link), timeout=0.1) as port:
            deadline = time.monotonic() + 20
            while True:
                r = _readings(port, 1)[0]
                if r.state != "WARMUP" or time.monotonic() > deadline:
                    break
            later = _readings(port, 3)
        assert r.state == "NORMAL", (fe, r)
        for r in later:
            assert r.ch4 is not None and abs(r.ch4 - 0.73) <= 0.03, (fe, r.ch4)
            assert r.flow > 0 and r.flow_unit == "m3/min" and r.relay == 1 and r.faults == 0, (fe, r)


WATCHDOG = """
import sys, tempfile
from models import scenarios
from hardware.twin.virtual import VirtualBoard
d = tempfile.mkdtemp()
b = VirtualBoard(scenarios.make("normal", duration_s=600), d + "/wd", d + "/flash", speed=1e9)
b.run(5)
def hang():
    raise RuntimeError("simulated firmware bug")
b.ctl.step = hang
relay_after_crash = []
for _ in range(30):           # 3 simulated seconds: past the 1.5 s watchdog
    b.step()
    relay_after_crash.append(b.board.relay.value())
print("reboots", b.reboots, "crashes", b.crashes, "relay_while_hung", max(relay_after_crash[:10]))
b.run(1)
print("running_again", b.ctl.uptime_ms() > 0, "relay_now", b.board.relay.value())
b.close()
"""


def test_a_crashed_firmware_is_reset_by_the_watchdog(firedamp):
    done = subprocess.run([firedamp.cmd[0], "-c", WATCHDOG], cwd=firedamp.root, env=firedamp.env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "reboots 1 crashes 1 relay_while_hung 0" in done.stdout, done.stdout + done.stderr[-1000:]
    assert "running_again True relay_now 0" in done.stdout  # warming up again after the reset: power stays off
