"""Console round trip on the virtual board: calibrate, save, reboot, and the calibration is still there.

The simulated sensor is off (zero +0.10 % CH4, gain 0.90), so the factory calibration reads 2.00 % gas as
about 1.90 %; after `cal zero` in clean air and `cal span 2.00` with 2.00 % gas the board reads 2.00 %, and
it still does after a restart — which it could not if the calibration had not been saved. Bad commands get
an ERR reply, a non-zero exit status, and change nothing.
"""

import re
import time

SPEED = 20.0  # simulated seconds per wall second: the 30 s warm-up takes 1.5 s
CAL_KEYS = ("cal_zero_raw", "cal_span_raw", "cal_span_pct")


def _wait_reading(run_console, link, timeout=30.0):
    """Poll `status` until the board is past warm-up; returns the gas value it reports (% vol).

    (With 2.00 % gas on the sensor a coal-face board is in POWEROFF: calibration gas trips it, as it should.)
    """
    deadline = time.monotonic() + timeout
    out = ""
    while time.monotonic() < deadline:
        out = run_console(link, "status").stdout
        m = re.search(r"state (\w+).*?gas (-?[\d.]+)", out, re.S)
        if m and m.group(1) != "WARMUP":
            return float(m.group(2))
        time.sleep(0.3)
    raise AssertionError(f"board still warming up after {timeout} s:\n{out}")


def _gas(board, pct, run_console, timeout=30.0):
    """Put calibration gas on the sensor and wait until the board's raw signal shows it (4-20 mA front end:
    4000 uA at zero, 20000 uA at 4 %; this sensor reads 0.90 x gas + 0.10 %)."""
    board.link.with_name(board.link.name + ".gas").write_text(f"{pct:.2f}\n")
    expected_ua = 4000 + 4000 * (0.90 * pct + 0.10)
    deadline = time.monotonic() + timeout
    out = ""
    while time.monotonic() < deadline:
        out = run_console(board.link, "status").stdout
        m = re.search(r"raw (\d+) uA", out)
        if m and abs(int(m.group(1)) - expected_ua) <= 20:
            return
        time.sleep(0.2)
    raise AssertionError(f"the board never read {pct} % gas (raw {expected_ua:.0f} uA):\n{out}")


def _cal_values(run_console, link):
    done = run_console(link, *(f"get {k}" for k in CAL_KEYS))
    assert done.returncode == 0, done.stderr
    return dict(line.split("=", 1) for line in done.stdout.split())


def test_calibration_survives_a_restart_and_bad_commands_change_nothing(board, run_console):
    b = board("cal-1", "normal", SPEED, ["--sensor-offset", "0.10", "--sensor-gain", "0.90"])
    _gas(b, 2.00, run_console)
    before = _wait_reading(run_console, b.link)
    assert 1.85 <= before <= 1.95, f"an uncalibrated sensor should read ~1.90 % at 2.00 % gas, read {before}"
    factory = _cal_values(run_console, b.link)

    # locked: the board refuses state changes before `unlock`, and a wrong pin
    for refused in (["cal zero"], ["unlock 0000"], ["save"]):
        done = run_console(b.link, *refused)
        assert done.returncode == 1, (refused, done.stdout)
    assert _cal_values(run_console, b.link) == factory

    _gas(b, 0.00, run_console)
    done = run_console(b.link, "unlock 1234", "cal zero")
    assert done.returncode == 0, done.stdout + done.stderr
    _gas(b, 2.00, run_console)
    done = run_console(b.link, "unlock 1234", "cal span 2.00", "save")
    assert done.returncode == 0, done.stdout + done.stderr
    calibrated = _cal_values(run_console, b.link)
    assert calibrated != factory and calibrated["cal_span_pct"].startswith("2.0")
    assert abs(_wait_reading(run_console, b.link) - 2.00) <= 0.04

    # bad commands: each an ERR with exit status 1, and the calibration untouched
    for bad in ("cal span 9.99", "cal span abc", "cal", "set ch4_alarm_pct 7", "set no_such_key 1",
                "profile moon_base", "frobnicate"):
        done = run_console(b.link, "unlock 1234", bad)
        assert done.returncode == 1, (bad, done.stdout)
        unlock_reply, error = done.stdout.strip().splitlines()[-2:]
        assert unlock_reply.startswith("unlocked") and error, f"{bad!r}: no error text in {done.stdout!r}"
    done = run_console(b.link, "x" * 70)  # over the protocol's 64 bytes: refused before it is sent
    assert done.returncode == 1 and "at most 64" in done.stderr
    assert _cal_values(run_console, b.link) == calibrated

    b.stop()  # the board loses power; same flash folder = the same board booting again
    b.start()
    assert _cal_values(run_console, b.link) == calibrated
    assert abs(_wait_reading(run_console, b.link) - 2.00) <= 0.04


def test_console_says_so_when_nobody_answers(tmp_path, pty_pair, run_console):
    line = pty_pair()  # a port with no board behind it
    done = run_console(line.device, "status", timeout=0.5)
    assert done.returncode == 1
    assert "no reply to 'status'" in done.stderr


def test_console_refuses_a_port_another_program_reads(pty_pair, run_console):
    import serial

    line = pty_pair()
    with serial.Serial(line.device, exclusive=True):  # e.g. the edge service
        done = run_console(line.device, "status", timeout=0.5)
    assert done.returncode == 1
    assert "another program has it open" in done.stderr


def test_interactive_console_shows_readings_replies_and_refusals(board, firedamp):
    import subprocess

    b = board("live-1", "normal", SPEED)
    _wait_reading(lambda link, *c: subprocess.run([*firedamp.cmd, "console", "--port", str(link), "--command", *c],
                                                  cwd=firedamp.root, env=firedamp.env, capture_output=True,
                                                  text=True, timeout=30), b.link)
    proc = subprocess.Popen([*firedamp.cmd, "console", "--port", str(b.link)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=firedamp.root, env=firedamp.env,
                            text=True)
    proc.stdin.write("status\n")
    proc.stdin.flush()
    time.sleep(1.0)  # a person reading the screen: readings keep arriving meanwhile
    stdout, stderr = proc.communicate("frobnicate\nquit\n", timeout=30)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert re.search(r"live-1  CH4 +\d+\.\d\d % vol  flow [\d.]+ m3/min .* NORMAL +power ON", out), out
    assert re.search(r"^ +ok +uptime", out, re.M) and re.search(r"^ +ERR unknown command 'frobnicate'", out, re.M)
    assert "! refused: nothing was changed" in out
