"""A private MQTT broker for the demo: Mosquitto when installed, else amqtt inside this process.

Either way it listens on a free loopback port only (never 1883, never another interface) and keeps its
config, log and pid file in the demo's run folder, so it cannot clash with a broker the machine already runs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

from edge.errors import BrokerError

_READY_S = 10.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (never 1883, the machine's own broker's)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port != 1883:
            return port


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def die_with_parent() -> None:
    """preexec_fn for a child in its own session: Linux sends it SIGTERM when the demo dies, even by SIGKILL
    (otherwise a killed demo would leave its broker running)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux/glibc: the demo's own cleanup still stops it
        pass


def mosquitto_binary() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None


class LocalBroker:
    """A running broker: `host`, `port`, `kind` ("mosquitto" or "amqtt"), `log` (path or None); `stop()`.

    `extra` lines go into Mosquitto's config (the benchmarks' `set_tcp_nodelay true`); they need Mosquitto.
    """

    host = "127.0.0.1"

    def __init__(self, run_dir: Path, prefer: str = "auto", extra: tuple[str, ...] = ()):
        self.port = free_port()
        self.log: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        if prefer not in ("auto", "mosquitto", "amqtt"):
            raise BrokerError(f"unknown broker kind {prefer!r}: auto, mosquitto or amqtt")
        binary = mosquitto_binary() if prefer in ("auto", "mosquitto") else None
        if binary is None and (prefer == "mosquitto" or extra):
            raise BrokerError("mosquitto is not installed (apt-get install mosquitto)")
        if binary:
            self.kind = "mosquitto"
            self._start_mosquitto(binary, run_dir, extra)
        else:
            self.kind = "amqtt"
            self._start_amqtt()

    def _start_mosquitto(self, binary: str, run_dir: Path, extra: tuple[str, ...]) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        conf = run_dir / "mosquitto.conf"
        self.log = run_dir / "mosquitto.log"
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            "persistence false",
            f"pid_file {run_dir / 'mosquitto.pid'}",
            f"log_dest file {self.log}",
            *extra,
        ]
        if os.geteuid() == 0:  # as root Mosquitto drops to user `mosquitto`, who cannot write our files
            lines.append("user root")
        conf.write_text("\n".join(lines) + "\n")
        self._proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, start_new_session=True,
                                      preexec_fn=die_with_parent)
        deadline = time.monotonic() + _READY_S
        while not _listening(self.port):
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                raise BrokerError(f"mosquitto exited at start ({self._proc.returncode}): {err.strip()} "
                                  f"(config {conf}, log {self.log})")
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerError(f"mosquitto did not listen on 127.0.0.1:{self.port} within {_READY_S:g} s")
            time.sleep(0.02)

    def _start_amqtt(self) -> None:
        try:
            from amqtt.broker import Broker
        except ImportError as exc:
            raise BrokerError("no MQTT broker: install mosquitto, or the demo extra "
                              "(pip install 'firedamp[demo]', which brings amqtt), or pass --broker HOST:PORT") from exc
        for name in ("amqtt", "transitions"):  # its INFO chatter would scroll the live view away
            logging.getLogger(name).setLevel(logging.WARNING)
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        started = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)

            async def boot() -> None:
                broker = Broker(config)
                await broker.start()
                self._amqtt = broker

            try:
                loop.run_until_complete(boot())
            except BaseException as exc:  # reported to the starting thread below
                failure.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self._amqtt.shutdown())
            loop.close()

        self._thread = threading.Thread(target=serve, name="amqtt-broker", daemon=True)
        self._thread.start()
        if not started.wait(_READY_S) or failure:
            raise BrokerError(f"the embedded amqtt broker did not start on 127.0.0.1:{self.port}: "
                              f"{failure[0] if failure else 'timeout'}")

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
