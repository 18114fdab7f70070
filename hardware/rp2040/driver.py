"""The emulated Pico: MicroPython's own RP2040 port in rp2040js (runner.mjs), driven from Python.

    pico = EmulatedPico(flash="/tmp/pico.flash", link="/tmp/pico")   # boots firmware.uf2
    pico.start()
    ...  # `mpremote connect /tmp/pico ...`, `firedamp run --port /tmp/pico`, pyserial
    pico.set_adc(0, 1234.5)            # GPIO26 sees that level (12-bit LSB), with the RP2040 ADC's noise
    pico.wave(14, 600)                 # a 600 Hz square wave on GPIO14, on the emulated clock
    pico.watch(16, 17, 18)             # relay, buzzer, beacon: pico.changes holds (t_ns, gpio, level)
    pico.stop()

The chip's USB CDC serial line appears at `link` (a symlink to a pseudo-terminal, as the CPython twin's),
so everything that talks to /dev/ttyACM0 talks to it unchanged. Times are the emulator's own clock in
nanoseconds (cycle-counted at the current clk_sys, 125 MHz but in lightsleep; continuous across resets). The board's flash is the file `flash`
(2 MiB, written through on every erase/program): keep it and the next start is a reboot of the same board;
kill the runner (`power_cut()`) and the file holds what the chip had written by then.

Where the firmware image lives: $FIREDAMP_RP2040_DIR, else ../shared/rp2040 beside the checkout
(`firmware.uf2`, `bootrom-b1.bin`). `missing()` says what is not there (Node, rp2040js, the files).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from edge.errors import LinkError
from hardware.twin.adc_noise import AdcNoise
from hardware.twin.pty_link import PtyLink

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RUNNER = HERE / "runner.mjs"
NOISE_CODES = 64  # noisy codes per ADC setting, cycled by successive reads on the chip


def shared_dir() -> Path:
    """Where firmware.uf2 and bootrom-b1.bin are: $FIREDAMP_RP2040_DIR or ../shared/rp2040."""
    env = os.environ.get("FIREDAMP_RP2040_DIR")
    return Path(env) if env else ROOT.parent / "shared" / "rp2040"


def node() -> str | None:
    return shutil.which("node")


def missing() -> str | None:
    """None when the emulated Pico can run here; otherwise what is missing and how to get it."""
    if node() is None:
        return "Node.js is not installed (apt-get install nodejs npm)"
    if not (HERE / "node_modules" / "rp2040js" / "package.json").exists():
        return f"the npm package rp2040js is not installed (cd {HERE} && npm ci)"
    d = shared_dir()
    for name in ("firmware.uf2", "bootrom-b1.bin"):
        if not (d / name).exists():
            return f"{d / name} is missing (set FIREDAMP_RP2040_DIR to the folder with firmware.uf2 and bootrom-b1.bin)"
    return None


class EmulatedPico:
    """One emulated Pico in a Node process. Not thread-safe for callers: drive it from one thread.

    flash: the board's flash image file. link: where the serial port appears (None: no pty; use `serial`
    bytes through `write()` / `read_until()` instead). speed: emulated seconds per wall second at most (the
    emulator runs busy code at 0.06-0.17x real time here (python -m hardware.rp2040.speed), so above that it just runs as fast as it can; 0:
    never wait for the wall clock). noise: the ADC model (None: exact codes).
    """

    def __init__(self, flash: str | os.PathLike[str], link: str | os.PathLike[str] | None = None,
                 speed: float = 1.0, noise: AdcNoise | None = None, log: str | os.PathLike[str] | None = None):
        self.flash = Path(flash)
        self.link_path = link
        self.speed = speed
        self.noise = noise
        self.log = Path(log) if log else Path(str(self.flash) + ".log")
        self.proc: subprocess.Popen[bytes] | None = None
        self.link: PtyLink | None = None  # the serial port (links[0])
        self.links: list[PtyLink] = []  # every port on the chip's USB serial: the link, then add_link()'s
        self.changes: list[tuple[int, int, int]] = []  # (t_ns, gpio, level) of watched pins
        self.conversions: list[int] = []  # t_ns of each conversion on the channels adc_watch() names
        self.boots: list[dict] = []
        self.usb_ready = 0  # USB enumerations seen (one per boot)
        self.errors: list[str] = []
        self._events: dict[int, dict] = {}
        self._next_id = 0
        self._cond = threading.Condition()
        self._rx = bytearray()  # serial bytes from the chip, when there is no pty
        self._sock: socket.socket | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._threads: list[threading.Thread] = []
        self._running = False

    # ---- life ----
    def start(self, timeout_s: float = 60.0, paused: bool = False) -> EmulatedPico:
        """Boot the chip. paused: hold the CPU before its first instruction until `run()`, so inputs
        (ADC, pins) can be wired first, as on a real board that is powered with its sensors connected."""
        why = missing()
        if why:
            raise LinkError(f"cannot start the emulated Pico: {why}")
        d = shared_dir()
        self._tmp = tempfile.TemporaryDirectory(prefix="firedamp-pico-")
        sock_path = os.path.join(self._tmp.name, "serial")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(sock_path)
        listener.listen(1)
        listener.settimeout(timeout_s)
        self.flash.parent.mkdir(parents=True, exist_ok=True)
        cmd = [node() or "node", str(RUNNER), "--uf2", str(d / "firmware.uf2"), "--bootrom",
               str(d / "bootrom-b1.bin"), "--flash", str(self.flash), "--serial", sock_path,
               "--speed", repr(float(self.speed)), "--log", str(self.log), "--paused", "yes" if paused else "no"]
        env = dict(os.environ, RP2040_SKIP_BOOTROM="1")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(self.log, "ab"),  # noqa: SIM115
                                     cwd=str(HERE), env=env)
        try:
            self._sock, _ = listener.accept()
        except TimeoutError:
            self.kill()
            raise LinkError(f"the rp2040js runner did not connect within {timeout_s:g} s; see {self.log}") from None
        finally:
            listener.close()
        if self.link_path is not None:
            self.link = PtyLink(self.link_path)
            self.links = [self.link]
        self._running = True
        for target in (self._read_events, self._pump_serial):
            t = threading.Thread(target=target, daemon=True)
            t.start()
            self._threads.append(t)
        self.wait_for(lambda: self.boots, timeout_s, "the first boot")
        return self

    def stop(self) -> None:
        """Power off (the flash file already holds everything written)."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                self._send({"op": "stop"})
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._close()

    def power_cut(self) -> None:
        """Pull the plug at once (SIGKILL): whatever the chip had not yet written to flash is lost."""
        self.kill()

    def power_cut_at(self, t_ns: int) -> None:
        """Cut the power when the emulated clock reaches t_ns (the runner exits there; returns at once)."""
        self._send({"op": "at", "t_ns": int(t_ns), "cmd": {"op": "stop"}})

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close()

    def _close(self) -> None:
        self._running = False
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        for link in self.links:
            link.close()
        self.links = []
        for t in self._threads:
            t.join(timeout=5)
        self._threads = []
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> EmulatedPico:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def add_link(self, path: str | os.PathLike[str]) -> PtyLink:
        """A second port on the same USB serial line (a technician's console): the chip's output goes to
        every port, input from any port goes to the chip. Only on a chip started with a link."""
        if self.link is None:
            raise LinkError("add_link: the emulated Pico was started without a link")
        link = PtyLink(path)
        self.links = [*self.links, link]
        return link

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # ---- inputs and outputs ----
    def set_adc(self, channel: int, level: float) -> int:
        """Put `level` (12-bit LSB, a float) on ADC `channel` (0-3 = GPIO26-29); reads get the noise model's
        codes for it. Returns the emulated time (ns) it took effect."""
        codes = self.noise.codes(level, NOISE_CODES) if self.noise else [int(round(level))]
        return self.command({"op": "adc", "ch": channel, "raw": codes})

    def adc_command(self, channel: int, level: float) -> dict:
        """The runner command for set_adc (to schedule with `at`)."""
        codes = self.noise.codes(level, NOISE_CODES) if self.noise else [int(round(level))]
        return {"op": "adc", "ch": channel, "raw": codes}

    def set_pin(self, gpio: int, value: int | None) -> int:
        """Drive an input pin high/low (None: release it; the pad's pull decides)."""
        return self.command({"op": "pin", "gpio": gpio, "value": value})

    def wave(self, gpio: int, hz: float, high_us: float = 0) -> int:
        """A square wave (or pulses high_us long) at hz on an input pin; hz 0 stops it."""
        return self.command({"op": "wave", "gpio": gpio, "hz": hz, "high_us": high_us})

    def follow(self, gpio: int, source: int, invert: bool = False) -> int:
        """Drive `gpio` from pin `source` (e.g. the relay's auxiliary contact: follow(19, 16, invert=True))."""
        return self.command({"op": "follow", "gpio": gpio, "source": source, "invert": invert})

    def watch(self, *gpios: int) -> int:
        """Record level changes of these pins in `changes` (the current level is recorded at once)."""
        return self.command({"op": "watch", "gpios": list(gpios)})

    def at(self, t_ns: int, cmd: dict) -> int:
        """Run a command when the emulated clock reaches t_ns; returns the time it ran (waits for it)."""
        cmd = dict(cmd, id=self._new_id())
        self._send({"op": "at", "t_ns": int(t_ns), "cmd": cmd})
        ev = self._wait_event(cmd["id"], timeout_s=600)
        return ev["t_ns"]

    def run(self) -> int:
        """Start the CPU of a chip started with paused=True."""
        return self.command({"op": "run"})

    def hang(self) -> int:
        """Freeze the CPU (a hung main loop): timers and the watchdog keep running."""
        return self.command({"op": "hang"})

    def set_speed(self, x: float) -> None:
        self.speed = x
        self.command({"op": "speed", "x": x})

    def now_ns(self) -> int:
        """The emulated clock (ns since the first power-on)."""
        i = self._new_id()
        self._send({"op": "time", "id": i})
        return self._wait_event(i)["t_ns"]

    def clock(self) -> tuple[int, float]:
        """(emulated ns, the runner's wall clock in s) at one instant: for measuring emulation speed."""
        i = self._new_id()
        self._send({"op": "time", "id": i})
        ev = self._wait_event(i)
        return ev["t_ns"], ev["wall_s"]

    def sleep_stats(self) -> dict:
        """Where the emulated time went: {"t_ns", "asleep_ns" (CPU in WFI/WFE), "slow_ns" (clk_sys below
        125 MHz: machine.lightsleep's crystal clock), "clk_sys_hz" (now)}; counted since the first power-on."""
        i = self._new_id()
        self._send({"op": "time", "id": i})
        ev = self._wait_event(i)
        return {k: ev[k] for k in ("t_ns", "asleep_ns", "slow_ns", "clk_sys_hz")}

    def command(self, cmd: dict) -> int:
        """Send a runner command and wait until it is applied; returns the emulated time (ns) it was."""
        cmd = dict(cmd, id=self._new_id())
        self._send(cmd)
        return self._wait_event(cmd["id"])["t_ns"]

    def adc_watch(self, *channels: int) -> int:
        """Record in `conversions` when the firmware converts these ADC channels (when its loop samples)."""
        return self.command({"op": "adc_watch", "chs": list(channels)})

    def level(self, gpio: int) -> int | None:
        """The last recorded level of a watched pin."""
        with self._cond:
            for _t, g, v in reversed(self.changes):
                if g == gpio:
                    return v
        return None

    def wait_level(self, gpio: int, value: int, timeout_s: float = 60.0, after_ns: int = -1) -> int:
        """Wait until watched `gpio` is at `value` (at or after emulated time after_ns); returns when (ns)."""
        def found():
            for t, g, v in self.changes:
                if g == gpio and v == value and t >= after_ns:
                    return (t,)
            return None
        hit = self.wait_for(found, timeout_s, f"GPIO{gpio} = {value}")
        return hit[0]

    # ---- serial without a pty ----
    def write(self, data: bytes) -> None:
        """Send bytes to the chip's USB CDC (only when started without a link)."""
        assert self._sock is not None
        self._sock.sendall(data)

    def read_until(self, marker: bytes, timeout_s: float = 60.0) -> bytes:
        """Bytes from the chip up to and including `marker` (only when started without a link)."""
        def got():
            i = self._rx.find(marker)
            return i + len(marker) if i >= 0 else None
        end = self.wait_for(got, timeout_s, f"{marker!r} on the serial line")
        with self._cond:
            data = bytes(self._rx[:end])
            del self._rx[:end]
        return data

    def exec(self, code: str, timeout_s: float = 60.0) -> str:
        """Run `code` through MicroPython's raw REPL (as mpremote does) and return what it printed; raises
        LinkError with the traceback if it raised (no-pty mode only)."""
        with self._cond:
            self._rx.clear()
        self.write(b"\r\x03\x03\x01")  # interrupt whatever runs, enter the raw REPL
        self.read_until(b"raw REPL; CTRL-B to exit\r\n>", timeout_s)
        self.write(code.encode() + b"\x04")
        self.read_until(b"OK", timeout_s)
        out = self.read_until(b"\x04", timeout_s)[:-1].decode(errors="replace")
        err = self.read_until(b"\x04", timeout_s)[:-1].decode(errors="replace")
        self.read_until(b">", timeout_s)
        self.write(b"\x02")  # back to the friendly REPL
        if err:
            raise LinkError(f"emulated Pico: {err.strip()}")
        return out.replace("\r\n", "\n")

    # ---- internals ----
    def wait_for(self, predicate, timeout_s: float = 60.0, what: str = "a condition"):
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LinkError(f"emulated Pico: no {what} within {timeout_s:g} s (log: {self.log})")
                if not self.alive:
                    raise LinkError(f"emulated Pico: the runner exited (code {self.proc and self.proc.poll()}) "
                                    f"while waiting for {what}; log: {self.log}")
                self._cond.wait(min(left, 0.5))

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _send(self, cmd: dict) -> None:
        if self.proc is None or self.proc.stdin is None:
            raise LinkError("emulated Pico is not running")
        try:
            self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            raise LinkError(f"emulated Pico: the runner has exited; log: {self.log}") from None

    def _wait_event(self, i: int, timeout_s: float = 60.0) -> dict:
        ev = self.wait_for(lambda: self._events.get(i), timeout_s, f"answer to command {i}")
        with self._cond:
            del self._events[i]
        return ev

    def _read_events(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                ev = json.loads(raw)
            except ValueError:
                continue
            with self._cond:
                kind = ev.get("ev")
                if kind == "pin":
                    self.changes.append((ev["t_ns"], ev["gpio"], ev["v"]))
                elif kind == "adc":
                    self.conversions.append(ev["t_ns"])
                elif kind == "boot":
                    self.boots.append(ev)
                elif kind == "usb":
                    self.usb_ready += 1
                elif kind == "error":
                    self.errors.append(ev["msg"])
                if "id" in ev:
                    self._events[ev["id"]] = ev
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _pump_serial(self) -> None:
        """Bytes between the runner's socket and the pty links (or the in-memory buffer without a pty).

        The fan-out of a board with a console port: what the chip sends goes to every link (each drops it
        while nobody has that port open, as USB CDC without a host); what any link sends goes to the chip.
        """
        sock = self._sock
        assert sock is not None
        while self._running:
            links = self.links  # add_link() may replace the list from another thread
            fds: list = [sock] + [link._master for link in links]  # noqa: SLF001 - their pty masters
            try:
                ready, _, _ = select.select(fds, [], [], 0.2)
            except (OSError, ValueError):
                return
            if sock in ready:
                try:
                    data = sock.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                for link in links:
                    link.write(data)
                if not links:
                    with self._cond:
                        self._rx += data
                        self._cond.notify_all()
            got = False
            for link in links:
                if link.backlog():
                    link.flush()
                data = link.read(4096)
                if data:
                    got = True
                    try:
                        sock.sendall(data)
                    except OSError:
                        return
            if links and not got and sock not in ready:
                time.sleep(0.01)  # a master polls readable on a hang-up with nothing to read
