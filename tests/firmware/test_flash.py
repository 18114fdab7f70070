"""`firedamp flash`: the mpremote commands, the compiled firmware (run on the MicroPython binary), errors."""

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from edge import cli

ROOT = Path(__file__).resolve().parents[2]
MICROPYTHON = Path(sys.executable).parent / "micropython"
MODULES = sorted(p.stem for p in (ROOT / "firmware").glob("*.py"))


def flash(capsys, *args):
    code = cli.main(["flash", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_dry_run_prints_the_mpremote_commands(tmp_path, capsys):
    code, out, _ = flash(capsys, "--port", "/dev/ttyACM0", "--dry-run", "--build-dir", str(tmp_path))
    assert code == 0
    cmds = [shlex.split(line) for line in out.splitlines()]
    # `resume`: no soft reset, which would stop the timer feeding the stopped firmware's watchdog mid-copy
    assert [c[:4] for c in cmds] == [["mpremote", "connect", "/dev/ttyACM0", "resume"]] * 4
    assert cmds[0][4] == "exec" and "os.remove" in cmds[0][5] and '"alarm.py"' in cmds[0][5]
    assert cmds[1][4:6] == ["fs", "cp"] and cmds[1][-1] == ":"
    copied = sorted(Path(p).name for p in cmds[1][6:-1])
    assert copied == sorted(("main.py" if m == "main" else m + ".mpy") for m in MODULES)
    assert cmds[2][4:] == ["mip", "install", "ssd1306"]
    assert cmds[3][4:] == ["reset"]
    # compiled for real: MicroPython .mpy files start with "M" and the mpy version
    for name in copied:
        data = (tmp_path / name).read_bytes()
        if name.endswith(".mpy"):
            assert data[:1] == b"M" and data[1] == 6, name


def test_no_compile_and_no_display_driver(tmp_path, capsys):
    code, out, _ = flash(capsys, "--port", "COM3", "--dry-run", "--no-compile", "--no-display-driver",
                         "--build-dir", str(tmp_path))
    assert code == 0
    assert "mip install" not in out
    cp = shlex.split(out.splitlines()[1])
    assert sorted(Path(p).name for p in cp[6:-1]) == sorted(m + ".py" for m in MODULES)


def test_defaults_write_settings_the_firmware_reads(tmp_path, capsys):
    code, out, _ = flash(capsys, "--port", "/dev/ttyACM0", "--dry-run", "--defaults", "--device-id", "pico-07",
                         "--build-dir", str(tmp_path))
    assert code == 0 and "settings.json" in out
    import settings as fw_settings
    values, problem = fw_settings.Store(str(tmp_path)).load()
    assert problem is None and values["device_id"] == "pico-07"


def test_bad_device_id_and_missing_board_are_plain_errors(tmp_path, capsys):
    code, _, err = flash(capsys, "--port", "/dev/ttyACM0", "--dry-run", "--defaults", "--device-id", "bad id!",
                         "--build-dir", str(tmp_path))
    assert code == 1 and err.startswith("firedamp: --device-id: device_id must be 1..16 characters")
    code, _, err = flash(capsys, "--port", "/dev/ttyNOPE", "--mpremote", "false", "--no-display-driver",
                         "--build-dir", str(tmp_path))
    assert code == 1 and "mpremote failed on /dev/ttyNOPE" in err


def _boot(build: Path, iterations: int, last_line: str) -> subprocess.CompletedProcess:
    """The compiled firmware in `build` booted on the MicroPython binary (192 KB heap) with the twin's machine:
    gas ~0.25 % (5 mA), supply 5 V, `iterations` loop iterations 100 ms apart, then `last_line` (Python run
    there, `ctl` the controller). Its frames and that line are on stdout; fails the test if it crashed."""
    script = build / "boot_check.py"
    script.write_text(
        "import machine, board, main\n"
        "class S:\n"
        "    def read(self): return None\n"
        "    def write(self, b): print(bytes(b).decode(), end='')\n"
        "class C:\n"
        "    t = 0\n"
        "    def ticks_ms(self): return self.t\n"
        "    def ticks_us(self): return self.t * 1000\n"
        "    def ticks_diff(self, a, b): return a - b\n"
        "machine.ADC.set(29, 33000)\n"
        "machine.ADC.set(26, 11916 + 2979)\n"  # ~5 mA: 0.25 %
        "c = C()\n"
        f"ctl = main.build(board.Board('pico', stream=S(), root={str(build)!r}), c)\n"
        f"for i in range({iterations}):\n"
        "    c.t += 100\n"
        "    ctl.step()\n" + last_line)
    env = dict(os.environ, MICROPYPATH=f"{build}:{ROOT / 'hardware/twin'}")
    proc = subprocess.run([str(MICROPYTHON), "-X", "heapsize=192k", str(script)], env=env, capture_output=True,
                          text=True, timeout=60, cwd=build)
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.mark.micropython
@pytest.mark.skipif(not MICROPYTHON.exists(), reason=f"MicroPython unix binary not installed at {MICROPYTHON}")
def test_compiled_firmware_runs_on_micropython(tmp_path, capsys):
    code, _, _ = flash(capsys, "--port", "x", "--dry-run", "--defaults", "--build-dir", str(tmp_path))
    assert code == 0
    assert not list(tmp_path.glob("alarm.py")) and (tmp_path / "alarm.mpy").exists()
    proc = _boot(tmp_path, 320, "print('relay', machine.Pin.get(16).value())\n")
    assert "BOOT,fw " in proc.stdout and "SELFTEST,pass" in proc.stdout and ",NORMAL,1," in proc.stdout
    assert proc.stdout.strip().endswith("relay 1")


@pytest.mark.micropython
@pytest.mark.skipif(not MICROPYTHON.exists(), reason=f"MicroPython unix binary not installed at {MICROPYTHON}")
def test_an_update_over_a_settings_file_from_0_1_0_does_not_fault(tmp_path, capsys):
    """`firedamp flash` without --defaults keeps the board's settings.json: one written before the keys added
    in issue 12 s.4 (P/T, battery, sleep) must boot to NORMAL with the relay on, no SETTINGS fault."""
    import settings as fw_settings

    code, _, _ = flash(capsys, "--port", "x", "--dry-run", "--build-dir", str(tmp_path))
    assert code == 0 and not (tmp_path / "settings.json").exists()
    old = fw_settings.defaults()
    for key in fw_settings.KEYS[34:]:
        del old[key]
    old.update(warmup_s=0, display=0)
    assert "uart_baud" in old and "pt_input" not in old and len(old) == 34
    fw_settings.Store(str(tmp_path)).save(old)
    proc = _boot(tmp_path, 40, "print('relay', machine.Pin.get(16).value(), 'faults', ctl.faults, 'sleep', "
                               "ctl.s['sleep'])\n")
    assert ",SETTINGS," not in proc.stdout and ",NORMAL,1,0000," in proc.stdout, proc.stdout
    assert proc.stdout.strip().endswith("relay 1 faults 0 sleep 0")
