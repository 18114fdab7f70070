"""Hostile Modbus traffic on loopback (random bytes, truncated MBAP headers, huge length fields, a wrong protocol id,
1,000 connections opened and left idle) neither crashes nor stalls the edge: frames keep flowing through the
pipeline, and a well-behaved client still gets its answer."""

import random
import socket
import subprocess
import sys
import threading
import time

from edge import modbus
from tests.conftest import free_port
from tests.helpers import board_line, wait_for

# 1,000 connections opened from another process (as an attacker would), left idle until stdin closes
_IDLE = """
import socket, sys
socks = [socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5) for _ in range(1000)]
socks[0].sendall(bytes.fromhex("0001 0000 00ff 01 03"))  # a truncated request left hanging
print("open", flush=True)
sys.stdin.read()
"""


def _read(port, unit=1):
    from pymodbus.client import ModbusTcpClient
    from pymodbus.exceptions import ModbusException

    c = ModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
    try:
        if not c.connect():
            return None
        r = c.read_input_registers(0, count=modbus.SIZE, device_id=unit)
        return None if r.isError() else r.registers
    except ModbusException:  # closed by the server (a connection flood): the caller retries, as a DCS does
        return None
    finally:
        c.close()


def test_hostile_traffic_does_not_crash_or_stall_the_edge(edge_config, pty_pair, service_factory):
    board = pty_pair()
    port = free_port()
    settings = edge_config(None, [board.device], model={"enabled": False},
                           modbus={"enabled": True, "host": "127.0.0.1", "port": port, "max_connections": 64})
    settings["boards"][0]["modbus_unit"] = 1
    svc = service_factory(settings).start()
    assert svc.wait_ready(mqtt=False)
    stop = threading.Event()

    def feed():  # the board: one frame every 20 ms for the whole test
        seq = 0
        while not stop.is_set():
            board.write(board_line(seq))
            seq += 1
            stop.wait(0.02)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    rng = random.Random(16)
    idle: list[subprocess.Popen] = []
    try:
        assert wait_for(lambda: svc.pipeline.decoder.ok > 5)
        blobs = [bytes(rng.randrange(256) for _ in range(rng.randint(1, 600))) for _ in range(200)]
        blobs += [bytes.fromhex("0001 0000 00"), bytes.fromhex("00"), bytes.fromhex("0001 0000 0006 01")]  # truncated
        blobs += [bytes.fromhex("0001 0000 ffff 01 04") + bytes(300), bytes.fromhex("0001 0000 ffff 01") * 200]
        blobs += [bytes.fromhex("0001 1234 0006 01 04 0000 0001") * 50]  # protocol id not 0
        blobs += [bytes.fromhex("0001 0000 0002 01 84 02"), bytes.fromhex("0001 0000 0001 01") * 100]
        for blob in blobs:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(blob)
        # 1,000 connections opened and never used (one with a truncated header left hanging)
        idle.append(subprocess.Popen([sys.executable, "-c", _IDLE, str(port)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True))
        assert idle[0].stdout.readline().strip() == "open"
        frames = svc.pipeline.decoder.ok
        t0 = time.monotonic()
        regs = None
        while regs is None and time.monotonic() - t0 < 10:
            regs = _read(port)
        assert regs is not None, "a well-behaved client got no answer after the hostile traffic"
        assert time.monotonic() - t0 < 5
        assert regs[3] == 1, "data_valid: the board's frames stopped counting as live"
        hb = regs[26] << 16 | regs[27]
        assert wait_for(lambda: svc.pipeline.decoder.ok >= frames + 20, timeout=5), "the pipeline stalled"
        after = _read(port)
        assert after is not None and (after[26] << 16 | after[27]) > hb, "the heartbeat stopped"
        assert svc._thread.is_alive() and svc.modbus._thread.is_alive()
        h = svc.health()
        assert h["modbus_connections"] <= 64 and h["modbus_connections_closed"] >= 1000 - 64
        assert h["pipeline_errors"] == 0 and h["ingest_dropped"] == 0
    finally:
        stop.set()
        feeder.join(2)
        for p in idle:
            p.communicate("", timeout=20)
