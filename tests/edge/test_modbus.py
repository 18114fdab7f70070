"""The edge as a Modbus TCP server (edge/modbus.py, docs/modbus.md): the map and its document agree, values are
scaled as documented, and real clients (pymodbus's and Debian's mbpoll) read a service fed over a real pty —
writes refused with 01, unknown unit 0B, outside the map 02 — with every request counted in health and metrics."""

import ast
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from edge import modbus
from edge.config import BoardConfig, parse_config
from edge.errors import ConfigError
from edge.frames import Reading
from tests.conftest import free_port
from tests.helpers import board_line, wait_for

ROOT = Path(__file__).parents[2]
DOC = (ROOT / "docs" / "modbus.md").read_text()
MBPOLL = shutil.which("mbpoll")


def _reg(name):
    return next(a for a, n, *_ in modbus.MAP if n == name)


def _u32(regs, name):
    a = _reg(name)
    return regs[a] << 16 | regs[a + 1]


def _s16(v):
    return v - 65536 if v & 0x8000 else v


# ---------------------------------------------------------------------------------------------- map and doc

def test_the_documented_table_is_the_map_the_server_serves():
    rows = re.findall(r"^\| (\d+)(?:–(\d+))? \| (\d+) / (\d+) \| `(\w+)` \| (\w+) \|", DOC, re.M)
    assert rows, "no register table in docs/modbus.md"
    doc = [(int(a), n, t) for a, _b, _i, _h, n, t in rows]
    assert doc == [(a, n, t) for a, n, t, *_ in modbus.MAP]
    for a, b, i, h, _n, t in rows:
        assert int(i) == 30001 + int(a) and int(h) == 40001 + int(a)
        assert (b != "") == t.endswith("32") and (not b or int(b) == int(a) + 1)
    last = modbus.MAP[-1]
    assert modbus.SIZE == last[0] + (2 if last[2].endswith("32") else 1)
    assert "high word first" in DOC


def test_profile_levels_are_the_firmwares_and_the_configs_choices():
    tree = ast.parse((ROOT / "firmware" / "alarm.py").read_text())
    fw = next(ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
              and getattr(n.targets[0], "id", "") == "PROFILES")
    assert set(fw) == set(modbus.PROFILES)
    for name, (unit, warn, alarm, off, _restore, _auto) in fw.items():
        assert modbus.PROFILES[name] == (unit, warn / 100, alarm / 100, off / 100), name
    import dataclasses

    choices = next(f for f in dataclasses.fields(BoardConfig) if f.name == "profile").metadata["choices"]
    assert set(choices) == set(fw)


def test_config_checks_units_and_profiles():
    with pytest.raises(ConfigError, match="modbus_unit 3 is given to two boards"):
        parse_config({"boards": [{"port": "/a", "modbus_unit": 3}, {"port": "/b", "modbus_unit": 3}]})
    with pytest.raises(ConfigError, match=r"modbus_unit = 248 is not allowed; allowed: 0..247"):
        parse_config({"boards": [{"port": "/a", "modbus_unit": 248}]})
    with pytest.raises(ConfigError, match="no \\[\\[boards\\]\\] has a modbus_unit"):
        parse_config({"boards": [{"port": "/a"}], "modbus": {"enabled": True}})
    with pytest.raises(ConfigError, match="profile = 'mine' is not allowed"):
        parse_config({"boards": [{"port": "/a", "profile": "mine"}]})
    cfg = parse_config({"boards": [{"port": "/a"}]})
    assert cfg.modbus.enabled is False and cfg.modbus.port == 502 and cfg.boards[0].profile == "coal_face"


# ---------------------------------------------------------------------------------------------- scaling

def _snap(state="NORMAL", ch4=1.23, unit="VOL", flow=1234.56, t=1000.0, seq=70000, hb=70001, res=None, adv=False,
          faults=0x11, flags=0x05):
    r = Reading("b1", seq, 5, ch4, unit, flow, "L/min", 1.0, state, 1, faults, flags)
    return modbus.Snapshot(r, t, res, hb, adv)


class _Res:
    score, threshold, forecast = 3.456, 2.5, 1.27


def test_registers_scale_as_documented():
    regs = modbus.registers(_snap(res=_Res(), adv=True), "coal_face", True, 1001.4, 3.0)
    assert len(regs) == modbus.SIZE
    assert regs[_reg("ch4")] == 123 and regs[_reg("ch4_unit")] == 1
    assert regs[_reg("state")] == 1 and regs[_reg("data_valid")] == 1
    assert regs[_reg("faults")] == 0x11 and regs[_reg("flags")] == 5 and regs[_reg("relay")] == 1
    assert regs[_reg("calibration_due")] == 1 and regs[_reg("low_flow")] == 0
    assert _u32(regs, "flow") == 123456 and regs[_reg("flow_unit")] == 1
    assert _u32(regs, "standard_flow") == 0 and regs[_reg("standard_flow_valid")] == 0
    assert regs[_reg("model_score")] == 346 and regs[_reg("model_threshold")] == 250 and regs[_reg("advisory")] == 1
    assert _s16(regs[_reg("forecast")]) == 127
    assert [regs[_reg(k)] for k in ("level_unit", "warning_level", "alarm_level", "poweroff_level", "profile")] == \
        [1, 100, 100, 150, 0]
    assert _u32(regs, "seconds_since_frame") == 1 and _u32(regs, "heartbeat") == 70001
    assert _u32(regs, "seq") == 70000 and regs[_reg("seq")] == 1 and regs[_reg("seq") + 1] == 70000 - 65536
    # % LEL: ×10, the plant profile's levels in % LEL
    lel = modbus.registers(_snap(ch4=23.4, unit="LEL"), "plant", True, 1000.5, 3.0)
    assert lel[_reg("ch4")] == 234 and lel[_reg("ch4_unit")] == 2 and _s16(lel[_reg("forecast")]) == -32768
    assert [lel[_reg(k)] for k in ("level_unit", "warning_level", "alarm_level", "poweroff_level")] == [2, 100, 200, 200]
    # a negative reading (zero drift) is two's complement
    assert _s16(modbus.registers(_snap(ch4=-0.12), "coal_face", True, 1000, 3.0)[_reg("ch4")]) == -12


@pytest.mark.parametrize("case", ["stale", "fault", "warmup", "no_ch4", "link_down", "no_frame"])
def test_data_valid_is_zero_whenever_the_value_is_not_live(case):
    snap, now, link = _snap(), 1000.5, True
    if case == "stale":
        now = 1003.01
    elif case == "fault":
        snap = _snap(state="FAULT")
    elif case == "warmup":
        snap = _snap(state="WARMUP", ch4=None)
    elif case == "no_ch4":
        snap = _snap(ch4=None)
    elif case == "link_down":
        link = False
    else:
        snap = None
    regs = modbus.registers(snap, "coal_face", link, now, 3.0)
    assert regs[_reg("data_valid")] == 0
    assert modbus.registers(_snap(), "coal_face", True, 1002.99, 3.0)[_reg("data_valid")] == 1
    if case == "no_frame":
        assert regs[_reg("state")] == 65535 and _s16(regs[_reg("ch4")]) == -32768
        assert _u32(regs, "seconds_since_frame") == 0xFFFFFFFF and _u32(regs, "heartbeat") == 0


def test_publish_keeps_each_boards_newest_reading_counts_every_reading_and_the_last_model_result():
    cfg = parse_config({"boards": [{"port": "/a", "modbus_unit": 1}, {"port": "/b", "modbus_unit": 2}],
                        "modbus": {"enabled": True}})
    server = modbus.ModbusServer(cfg, lambda port: True)
    raised = {"b1"}

    def reading(device, seq):
        return Reading(device, seq, seq * 1000, 0.5, "VOL", 1000.0, "m3/min", 1.0, "NORMAL", 1, 0, 0)

    r1, r2 = _Res(), _Res()
    # /a: three readings, the newest without a model result (not scored); /b: one, never scored
    server.publish([("/a", reading("b1", 1), 1.0, r1), ("/b", reading("b2", 7), 1.1, None),
                    ("/a", reading("b1", 2), 2.0, r2), ("/a", reading("b1", 3), 3.0, None)], raised.__contains__)
    a, b = server.snapshots["/a"], server.snapshots["/b"]
    assert (a.reading.seq, a.t, a.heartbeat, a.advisory) == (3, 3.0, 3, True) and a.result is r2
    assert (b.reading.seq, b.heartbeat, b.advisory, b.result) == (7, 1, False, None)
    raised.clear()
    server.publish([("/a", reading("b1", 4), 4.0, None)], raised.__contains__)  # the held result stays
    a = server.snapshots["/a"]
    assert (a.reading.seq, a.heartbeat, a.advisory) == (4, 4, False) and a.result is r2
    server.publish([], raised.__contains__)
    assert server.snapshots["/a"] is a


# ---------------------------------------------------------------------------------------------- real clients

@pytest.fixture
def modbus_edge(edge_config, pty_pair, service_factory):
    """An in-process edge with Modbus on a free loopback port: unit 7 on a pty board, no broker, no model."""
    board = pty_pair()
    port = free_port()
    settings = edge_config(None, [board.device], model={"enabled": False}, metrics={"enabled": True,
                           "port": free_port()}, modbus={"enabled": True, "host": "127.0.0.1", "port": port})
    settings["boards"][0].update(modbus_unit=7, profile="heading_face")
    svc = service_factory(settings).start()
    assert svc.wait_ready(mqtt=False)
    return svc, board, port


def _client(port):
    from pymodbus.client import ModbusTcpClient

    c = ModbusTcpClient("127.0.0.1", port=port, timeout=2)
    assert c.connect()
    return c


def test_pymodbus_client_reads_the_boards_frames_and_every_write_is_refused(modbus_edge):
    svc, board, port = modbus_edge
    c = _client(port)
    try:
        before = c.read_input_registers(0, count=modbus.SIZE, device_id=7).registers
        assert before[_reg("state")] == 65535 and before[_reg("data_valid")] == 0
        board.write(board_line(1, "NORMAL", ch4=0.45, flow=12.5) + board_line(2, "ALARM", ch4=1.27, flow=11.0,
                                                                                 flags=1, faults=0x10))
        assert wait_for(lambda: _u32(c.read_input_registers(0, count=modbus.SIZE, device_id=7).registers,
                                     "heartbeat") == 2)
        ir = c.read_input_registers(0, count=modbus.SIZE, device_id=7).registers
        hr = c.read_holding_registers(0, count=modbus.SIZE, device_id=7).registers
        assert ir[:24] == hr[:24] and ir[26:] == hr[26:]  # seconds_since_frame may tick between the two
        assert ir[_reg("ch4")] == 127 and ir[_reg("state")] == 3 and ir[_reg("data_valid")] == 1
        assert _u32(ir, "flow") == 1100 and ir[_reg("flow_unit")] == 2 and ir[_reg("faults")] == 0x10
        assert ir[_reg("calibration_due")] == 1 and _u32(ir, "seq") == 2 and ir[_reg("link_up")] == 1
        assert [ir[_reg("alarm_level")], ir[_reg("poweroff_level")], ir[_reg("profile")]] == [100, 150, 2]
        # a slice: address 2, 2 registers
        assert c.read_input_registers(2, count=2, device_id=7).registers == [3, 1]
        # writes: exception 01, and nothing changed
        for r in (c.write_register(0, 9, device_id=7), c.write_registers(0, [9, 9], device_id=7),
                  c.write_coil(0, True, device_id=7), c.write_coils(0, [True, False], device_id=7)):
            assert r.isError() and r.exception_code == 1, r
        assert c.read_coils(0, count=1, device_id=7).exception_code == 1
        assert c.read_input_registers(0, count=modbus.SIZE, device_id=7).registers[:24] == ir[:24]
        # unknown unit id: 0B; outside the map: 02; count 0 or over 125: 03 (sent raw, the client refuses them)
        assert c.read_input_registers(0, count=1, device_id=8).exception_code == 0x0B
        assert c.read_input_registers(modbus.SIZE - 1, count=2, device_id=7).exception_code == 2
        assert c.read_holding_registers(modbus.SIZE, count=1, device_id=7).exception_code == 2
    finally:
        c.close()
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(bytes.fromhex("0001 0000 0006 07 04 0000 0000"))
        assert s.recv(64) == bytes.fromhex("0001 0000 0003 07 84 03")
        s.sendall(bytes.fromhex("0002 0000 0006 07 03 0000 007e"))
        assert s.recv(64) == bytes.fromhex("0002 0000 0003 07 83 03")
        s.sendall(bytes.fromhex("0003 0000 0002 07 08"))  # diagnostics (08, e.g. force listen-only): refused
        assert s.recv(64) == bytes.fromhex("0003 0000 0003 07 88 01")
    h = svc.health()
    assert h["modbus_requests"]["read_input_registers"] >= 6 and h["modbus_requests"]["write_single_coil"] == 1
    assert h["modbus_requests"]["write_single_register"] == 1 and h["modbus_requests"]["write_multiple_coils"] == 1
    assert h["modbus_exceptions"] == {"illegal_function": 6, "gateway_no_response": 1, "illegal_address": 2,
                                      "illegal_value": 2}
    from edge.metrics import render

    text = render(h)
    assert 'firedamp_modbus_exceptions_total{edge="pi-test",site="testmine",code="illegal_function"} 6' in text
    assert 'firedamp_modbus_requests_total{edge="pi-test",site="testmine",function="write_single_coil"} 1' in text
    from tests.edge.test_mqtt_doc import SCHEMAS, check

    check(json.loads(json.dumps(h)), SCHEMAS["health"], "health")


def test_data_valid_drops_when_the_board_goes_silent(modbus_edge):
    svc, board, port = modbus_edge
    c = _client(port)
    try:
        board.write(board_line(1, "NORMAL"))
        assert wait_for(lambda: c.read_input_registers(3, count=1, device_id=7).registers == [1])
        t_frame = svc.modbus.snapshots[board.device].t
        assert wait_for(lambda: c.read_input_registers(3, count=1, device_id=7).registers == [0], timeout=6)
        dropped = time.time() - t_frame
        assert 3.0 <= dropped <= 3.5, dropped
        regs = c.read_input_registers(0, count=modbus.SIZE, device_id=7).registers
        assert regs[_reg("state")] == 1 and _u32(regs, "seconds_since_frame") >= 3  # the last value, marked stale
    finally:
        c.close()


@pytest.mark.skipif(not MBPOLL, reason="mbpoll is not installed (apt-get install mbpoll; make sysdeps does)")
def test_mbpoll_reads_the_same_registers_and_its_write_is_refused(modbus_edge):
    svc, board, port = modbus_edge
    board.write(board_line(1, "POWEROFF", ch4=1.62, flow=3.25))
    assert wait_for(lambda: board.device in svc.modbus.snapshots)

    def mbpoll(*args, write=()):
        return subprocess.run([MBPOLL, "-m", "tcp", "-p", str(port), "-a", "7", "-0", "-1", *args, "127.0.0.1",
                               *write], capture_output=True, text=True, timeout=20)

    for table in ("3", "4"):  # input registers, holding registers
        out = mbpoll("-t", table, "-r", "0", "-c", str(modbus.SIZE))
        assert out.returncode == 0, out.stderr
        regs = {int(a): int(v) for a, v in re.findall(r"^\[(\d+)\]:\s+(-?\d+)", out.stdout, re.M)}
        assert len(regs) == modbus.SIZE
        assert regs[_reg("ch4")] == 162 and regs[_reg("state")] == 4 and regs[_reg("relay")] == 0
        assert regs[_reg("data_valid")] == 1 and (regs[_reg("flow")] << 16 | regs[_reg("flow") + 1]) == 325
    out = mbpoll("-t", "4", "-r", "0", write=["5"])
    assert out.returncode != 0 and "Illegal function" in out.stderr
    out = subprocess.run([MBPOLL, "-m", "tcp", "-p", str(port), "-a", "9", "-0", "-1", "-t", "3", "-r", "0",
                          "127.0.0.1"], capture_output=True, text=True, timeout=20)
    assert out.returncode != 0 and "Target device failed to respond" in out.stderr
    out = mbpoll("-t", "3", "-r", str(modbus.SIZE - 1), "-c", "2")
    assert out.returncode != 0 and "Illegal data address" in out.stderr


def test_a_port_it_may_not_bind_is_a_clear_error(edge_config, pty_pair, service_factory):
    board = pty_pair()
    busy = free_port()
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", busy))
        s.listen()
        settings = edge_config(None, [board.device], model={"enabled": False},
                               modbus={"enabled": True, "host": "127.0.0.1", "port": busy})
        settings["boards"][0]["modbus_unit"] = 1
        with pytest.raises(ConfigError, match=rf"\[modbus\] cannot listen on 127.0.0.1:{busy}"):
            service_factory(settings)
    if os.geteuid() != 0:
        settings["modbus"]["port"] = 502
        with pytest.raises(ConfigError, match="CAP_NET_BIND_SERVICE"):
            service_factory(settings)


def test_the_unit_file_grants_the_bind_capability_when_uncommented(tmp_path):
    import sys

    text = (ROOT / "deploy" / "firedamp.service").read_text()
    assert "#AmbientCapabilities=CAP_NET_BIND_SERVICE\n" in text
    assert "#CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n" in text
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.skip("systemd-analyze is not installed: the uncommented unit was not verified")
    text = text.replace("#AmbientCapabilities", "AmbientCapabilities").replace("#CapabilityBounding",
                                                                               "CapabilityBounding")
    (tmp_path / "firedamp.service").write_text(text.replace("/opt/firedamp/.venv/bin/firedamp", sys.executable))
    out = subprocess.run([analyze, "verify", str(tmp_path / "firedamp.service")], capture_output=True, text=True)
    assert "Unknown key" not in out.stderr and "AmbientCapabilities" not in out.stderr, out.stderr
