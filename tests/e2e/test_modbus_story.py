"""A plant's control system polls the edge over Modbus TCP while a virtual board (the unchanged firmware) runs
the story scenario: `firedamp board` and `firedamp run` as separate processes, a real Mosquitto, pymodbus's
client polling at 10 Hz and Debian's mbpoll. The registers match the board's frames (as its MQTT telemetry
carries them), the state code goes NORMAL → ALARM → POWEROFF → NORMAL (acknowledged at the board's console, as
a person does), writes are refused with 01, and data-valid drops to 0 within 3 s of the board going silent."""

import re
import shutil
import subprocess
import time

import pytest

from edge import modbus
from tests.conftest import free_port, wait_port, write_edge_toml

SPEED = 60  # the 900 s story in 15 s
MBPOLL = shutil.which("mbpoll")
R = {n: a for a, n, *_ in modbus.MAP}


def _u32(regs, name):
    return regs[R[name]] << 16 | regs[R[name] + 1]


def _s16(v):
    return v - 65536 if v & 0x8000 else v


def test_a_dcs_polling_over_modbus_follows_the_story(mosquitto, subscriber, board, firedamp, run_console, tmp_path):
    from pymodbus.client import ModbusTcpClient

    broker = mosquitto()
    sub = subscriber(broker.host, broker.port, "firedamp/+/+/telemetry")
    console_link = tmp_path / "face-1-console"
    b = board("face-1", scenario="story", speed=SPEED, extra=["--console-link", str(console_link),
                                                              "--device-id", "face-1"])
    port = free_port()
    toml = write_edge_toml(tmp_path / "edge.toml", {
        "edge_id": "pi-mb", "site": "plant", "data_dir": str(tmp_path / "data"), "log_level": "info",
        "boards": [{"port": str(b.link), "modbus_unit": 3, "profile": "coal_face"}],
        "mqtt": {"host": broker.host, "port": broker.port, "reconnect_min_s": 1, "reconnect_max_s": 1},
        "model": {"enabled": False},
        "modbus": {"enabled": True, "host": "127.0.0.1", "port": port}})
    edge = firedamp.popen("run", "--config", str(toml), log=tmp_path / "edge.log")
    try:
        wait_port("127.0.0.1", port, timeout=30)
        c = ModbusTcpClient("127.0.0.1", port=port, timeout=2)
        assert c.connect()
        polls = []  # (monotonic time, registers)
        states = []
        acked = False
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            regs = c.read_input_registers(0, count=modbus.SIZE, device_id=3).registers
            polls.append((time.monotonic(), regs))
            st = regs[R["state"]]
            if not states or states[-1] != st:
                states.append(st)
            if st == 4 and regs[R["flags"]] & 0x04 and not acked:  # POWEROFF, acknowledgement awaited
                done = run_console(console_link, "unlock 1234", "ack")
                assert done.returncode == 0, done.stdout + done.stderr
                acked = True
            if acked and st == 1:
                break
            time.sleep(0.1)
        names = [modbus.STATES[s] if s < len(modbus.STATES) else s for s in states]
        seq_ = [s for s in names if s in ("NORMAL", "ALARM", "POWEROFF")]
        compact = [s for i, s in enumerate(seq_) if i == 0 or s != seq_[i - 1]]
        assert compact[-4:] == ["NORMAL", "ALARM", "POWEROFF", "NORMAL"] or \
            compact[-5:] == ["NORMAL", "ALARM", "POWEROFF", "ALARM", "NORMAL"], names
        # writes are refused while it runs, and nothing changes
        assert c.write_register(R["state"], 1, device_id=3).exception_code == 1
        assert c.write_coil(0, False, device_id=3).exception_code == 1

        # the registers are the board's frames: each polled seq against the telemetry of that seq
        assert sub.wait(lambda m: len(m) > 20, timeout=10)
        tele = {d["seq"]: d for _, d in sub.snapshot()}
        checked = 0
        for _, regs in polls:
            if regs[R["state"]] == 0xFFFF:
                continue
            d = tele.get(_u32(regs, "seq"))
            if d is None:
                continue
            checked += 1
            assert modbus.STATES[regs[R["state"]]] == d["state"] and regs[R["relay"]] == d["relay"]
            want = -32768 if d["ch4"] is None else round(d["ch4"] * (100 if d["unit"] == "VOL" else 10))
            assert _s16(regs[R["ch4"]]) == want, (regs, d)
            assert _u32(regs, "flow") == round(d["flow"] * 100) and regs[R["faults"]] == d["faults"]
            assert regs[R["alarm_level"]] == 100 and regs[R["poweroff_level"]] == 150
        assert checked > 30, checked
        hbs = [_u32(r, "heartbeat") for _, r in polls]
        assert hbs == sorted(hbs) and hbs[-1] > hbs[0]

        if MBPOLL:  # the second client: the same values as pymodbus's, and its write refused
            regs = c.read_input_registers(0, count=modbus.SIZE, device_id=3).registers
            out = subprocess.run([MBPOLL, "-m", "tcp", "-p", str(port), "-a", "3", "-0", "-1", "-t", "3", "-r", "0",
                                  "-c", "10", "127.0.0.1"], capture_output=True, text=True, timeout=20)
            assert out.returncode == 0, out.stderr
            got = {int(a): int(v) for a, v in re.findall(r"^\[(\d+)\]:\s+(-?\d+)", out.stdout, re.M)}
            assert got[R["ch4_unit"]] == 1 and got[R["state"]] in (1, 2, 3) and got[R["data_valid"]] == 1
            assert abs(_s16(got[R["ch4"]]) - _s16(regs[R["ch4"]])) <= 20  # a second apart on a 60x board
            out = subprocess.run([MBPOLL, "-m", "tcp", "-p", str(port), "-a", "3", "-0", "-1", "-t", "4", "-r", "0",
                                  "127.0.0.1", "7"], capture_output=True, text=True, timeout=20)
            assert out.returncode != 0 and "Illegal function" in out.stderr

        # the board goes silent: data-valid 0 within 3 s of its last frame, the last values kept
        b.stop()
        last_hb = _u32(c.read_input_registers(0, count=modbus.SIZE, device_id=3).registers, "heartbeat")
        t_last = time.monotonic()
        while time.monotonic() - t_last < 8:
            regs = c.read_input_registers(0, count=modbus.SIZE, device_id=3).registers
            if _u32(regs, "heartbeat") != last_hb:
                last_hb, t_last = _u32(regs, "heartbeat"), time.monotonic()
            if regs[R["data_valid"]] == 0:
                break
            time.sleep(0.05)
        silent = time.monotonic() - t_last
        assert regs[R["data_valid"]] == 0 and silent <= 3.3, silent
        c.close()
    finally:
        edge.terminate()
        try:
            edge.wait(20)
        except subprocess.TimeoutExpired:
            edge.kill()
            pytest.fail("the edge did not stop on SIGTERM")
