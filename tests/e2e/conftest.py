"""End-to-end helpers: virtual boards and consoles as separate processes, exactly as a user starts them.

`board(...)` runs `firedamp board` (the unchanged firmware behind a real pty); `console(link, *commands)` runs
`firedamp console --command ...` and returns the finished process. The broker is the shared Mosquitto
fixture from tests/conftest.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge.demo.subscriber import Subscriber

ROOT = Path(__file__).resolve().parents[2]
FIREDAMP = [sys.executable, "-m", "edge.cli"]


def firedamp_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


class BoardProcess:
    """One `firedamp board` process; `link` is its serial port, `pins` its JSON-lines pin record."""

    def __init__(self, directory: Path, name: str, scenario: str, speed: float, extra: list[str]):
        self.dir = directory
        self.name = name
        self.link = directory / name
        self.flash = directory / f"{name}.flash"
        self.pins = directory / f"{name}-pins.jsonl"
        self.log = directory / f"{name}.log"
        self.args = [*FIREDAMP, "board", "--scenario", scenario, "--link", str(self.link), "--flash",
                     str(self.flash), "--speed", str(speed), "--record", str(self.pins), "--exit-with-parent", *extra]
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> BoardProcess:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.args, cwd=ROOT, env=firedamp_env(), stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while not self.link.is_symlink():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"virtual board {self.name} did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def pin_changes(self) -> list[dict]:
        if not self.pins.exists():
            return []
        return [json.loads(line) for line in self.pins.read_text().splitlines() if line.strip()]


@pytest.fixture
def board(tmp_path):
    """Factory: board(name, scenario="normal", speed=10, extra=[...]) -> a started BoardProcess."""
    boards: list[BoardProcess] = []

    def make(name: str = "board-1", scenario: str = "normal", speed: float = 10.0,
             extra: list[str] | None = None) -> BoardProcess:
        b = BoardProcess(tmp_path, name, scenario, speed, list(extra or []))
        boards.append(b)
        return b.start()

    yield make
    for b in boards:
        b.stop()


def console(link: Path, *commands: str, timeout: float = 5.0) -> subprocess.CompletedProcess:
    """`firedamp console --port LINK --command C1 --command C2 ...`, finished."""
    args = [*FIREDAMP, "console", "--port", str(link), "--timeout", str(timeout)]
    for c in commands:
        args += ["--command", c]
    return subprocess.run(args, cwd=ROOT, env=firedamp_env(), capture_output=True, text=True,
                          timeout=timeout * len(commands) + 30)


def topic_and_json(msg) -> tuple[str, dict]:
    """What the e2e subscriber records of a message: (topic, payload as a dict; {"raw": text} if not JSON)."""
    try:
        doc = json.loads(msg.payload)
    except ValueError:
        doc = {"raw": msg.payload.decode(errors="replace")}
    return msg.topic, doc


@pytest.fixture
def subscriber():
    """Factory: subscriber(host, port, topic="firedamp/#") -> a Subscriber recording (topic, payload dict)."""
    subs: list[Subscriber] = []

    def make(host: str, port: int, topic: str = "firedamp/#") -> Subscriber:
        s = Subscriber(host, port, [topic], record=topic_and_json)
        subs.append(s)
        return s

    yield make
    for s in subs:
        s.close()


@pytest.fixture
def run_console():
    """The `console(link, *commands, timeout=5)` helper, as a fixture (test modules do not import conftest)."""
    return console


class Firedamp:
    """How a test runs the `firedamp` command: `cmd` (argv prefix), `env`, `root` (working directory)."""

    cmd = FIREDAMP
    root = ROOT

    @property
    def env(self) -> dict[str, str]:
        return firedamp_env()

    def popen(self, *args: str, log: Path) -> subprocess.Popen:
        with open(log, "ab") as out:
            return subprocess.Popen([*FIREDAMP, *args], cwd=ROOT, env=firedamp_env(), stdout=out,
                                    stderr=subprocess.STDOUT)

    def run(self, *args: str, timeout: float) -> subprocess.CompletedProcess:
        return subprocess.run([*FIREDAMP, *args], cwd=ROOT, env=firedamp_env(), capture_output=True, text=True,
                              timeout=timeout)


@pytest.fixture
def firedamp():
    return Firedamp()
