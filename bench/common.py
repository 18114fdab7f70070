"""Shared benchmark helpers: timing, machine description, board frames, ptys and a `firedamp run` process.

Benchmarks measure and print; nothing here asserts a figure. Every helper cleans up what it starts.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
import tty
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

from edge.demo.broker import LocalBroker

ROOT = Path(__file__).resolve().parents[1]
FIREDAMP = str(Path(sys.executable).with_name("firedamp"))


def per_call_us(fn: Callable[[], object], min_s: float, repeats: int = 3) -> float:
    """Median over `repeats` of the mean µs per call of fn(), each repeat running at least `min_s`."""
    fn()  # warm: first-call allocations and lazy initialisation are not what we measure
    results = []
    for _ in range(max(1, repeats)):
        n, t0 = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= min_s:
                break
        results.append(1e6 * elapsed / n)
    return statistics.median(results)


def percentile(values: list[float], q: float) -> float:
    """q in 0..100, linear interpolation between closest ranks (numpy's default)."""
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> dict:
    return {
        "cpu": cpu_model(), "cores": os.cpu_count() or 0, "arch": platform.machine(),
        "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
        "numpy": version("numpy"), "onnxruntime": version("onnxruntime"), "torch": version("torch"),
        "paho_mqtt": version("paho-mqtt"), "load_1min": round(os.getloadavg()[0], 2),
    }


# ---------------------------------------------------------------------------------------------- frames

def reading_lines(device: str, ch4: list[float], flow: list[float], states: list[str] | None = None,
                  seq0: int = 0, uptime0_ms: int = 60_000, period_ms: int = 1000) -> list[bytes]:
    """Wire lines (docs/protocol.md) of consecutive R frames of one board, one per sample period."""
    from edge.frames import Reading, format_reading

    out = []
    total = 0.0
    for i, (c, q) in enumerate(zip(ch4, flow, strict=True)):
        total += q * period_ms / 60_000.0
        state = states[i] if states else "NORMAL"
        out.append(format_reading(Reading(device, seq0 + i, uptime0_ms + i * period_ms, round(c, 2), "VOL",
                                          round(q, 3), "m3/min", round(total, 3), state,
                                          0 if state == "POWEROFF" else 1, 0, 0)))
    return out


def mine_series(n: int, seed: int) -> tuple[list[float], list[float]]:
    """n samples of the simulator's normal mine (ch4 % vol, flow m3/min) for seed."""
    from models import scenarios

    sc = scenarios.make("normal", seed, duration_s=float(max(n, 10)))
    return [float(v) for v in sc.ch4[:n]], [float(v) for v in sc.flow[:n]]


# ---------------------------------------------------------------------------------------------- ptys

class Pty:
    """A raw pty pair: the edge opens `device`; the bench writes board bytes to `master`."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        tty.setraw(self.master)
        self.device = os.ttyname(self.slave)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.master, view):]

    def drain(self) -> None:
        """Read and drop whatever the edge wrote to the board (keeps the buffer from filling)."""
        import select

        while select.select([self.master], [], [], 0)[0]:
            if not os.read(self.master, 4096):
                return

    def close(self) -> None:
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


# ---------------------------------------------------------------------------------------------- broker + edge

@contextmanager
def mosquitto(run_dir: Path, nodelay: bool = False) -> Iterator[LocalBroker]:
    """A private Mosquitto on a free loopback port (never 1883), the demo's edge.demo.broker.LocalBroker; stopped
    on exit. `nodelay=True` adds `set_tcp_nodelay true` (Mosquitto's default leaves Nagle's algorithm on)."""
    extra = ("max_queued_messages 100000",) + (("set_tcp_nodelay true",) if nodelay else ())
    broker = LocalBroker(run_dir / ("broker-nodelay" if nodelay else "broker"), prefer="mosquitto", extra=extra)
    try:
        yield broker
    finally:
        broker.stop()


def write_config(path: Path, data_dir: Path, ports: list[str], broker_port: int, *, fsync: bool = True,
                 history: bool = True, status_interval_s: float = 30.0, log_level: str = "warning") -> Path:
    """An edge.toml for the bench: real boards on `ports`, the private broker, outbox durability as given."""
    boards = "".join(f'[[boards]]\nport = "{p}"\n\n' for p in ports)
    path.write_text(
        f'edge_id = "bench"\nsite = "bench"\ndata_dir = "{data_dir}"\nlog_level = "{log_level}"\n\n{boards}'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker_port}\nstatus_interval_s = {status_interval_s}\n'
        f'reconnect_min_s = 0.1\nreconnect_max_s = 1\n\n'
        f"[outbox]\nfsync = {'true' if fsync else 'false'}\n\n[history]\nenabled = {'true' if history else 'false'}\n")
    return path


def arrival_topic_payload(msg) -> tuple[float, str, bytes]:
    """What the bench's listener records of a message: (monotonic arrival time, topic, payload bytes)."""
    return time.monotonic(), msg.topic, bytes(msg.payload)


def Listener(host: str, port: int, topics: tuple[str, ...] = ("#",)):
    """edge.demo.subscriber.Subscriber recording (monotonic arrival time, topic, payload) of every message."""
    from edge.demo.subscriber import Subscriber

    return Subscriber(host, port, topics, record=arrival_topic_payload)


@contextmanager
def edge_process(config: Path, log: Path) -> Iterator[subprocess.Popen]:
    """`firedamp run --config CONFIG` as a child process; stopped with SIGTERM (then killed) on exit."""
    with open(log, "ab") as fh:
        proc = subprocess.Popen([FIREDAMP, "run", "--config", str(config)], stdout=fh, stderr=fh, cwd=ROOT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def rss_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in kB, from /proc."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out
