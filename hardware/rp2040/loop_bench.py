"""Loop time, allocation per loop and free heap of our firmware on MicroPython's RP2040 port (emulated chip).

    python -m hardware.rp2040.loop_bench [--front-end ma|volt|freq] [--steps 200]

Installs the firmware on a fresh emulated Pico (mpremote, as `firedamp flash`), wires the instruments (gas
0.5 % CH4 with ADC noise, flow pulses at 1000 m3/min = 167 Hz; the frequency front end at its 200-1000 Hz),
stops the running firmware (Ctrl-C, as mpremote does) and runs `steps` iterations of the same controller
from the REPL, each timed with time.ticks_us() and its allocation taken from gc.mem_alloc() with the
collector off. Emulated times are cycle-counted at 125 MHz with ideal flash (a real Pico executing from
flash through its 16 KB XIP cache can be slower on misses).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ON_BOARD = """
import gc, time, board as bm, main as mm
b = bm.Board("pico", root="/")
ctl = mm.build(b)
N = %d
times = [0] * N
allocs = [0] * N
gc.collect()
free0 = gc.mem_free()
for i in range(N):
    gc.collect()
    gc.disable()
    a0 = gc.mem_alloc()
    t0 = time.ticks_us()
    w = ctl.step()
    dt = time.ticks_diff(time.ticks_us(), t0)
    a1 = gc.mem_alloc()
    gc.enable()
    times[i] = dt
    allocs[i] = a1 - a0
    time.sleep_ms(w)
gc.collect()
print("BENCH", {"free_start": free0, "free_end": gc.mem_free(), "alloc": gc.mem_alloc(), "times_us": times,
                "allocs": allocs, "state": ctl.alarm.state, "faults": ctl.faults})
"""


def main(argv: list[str] | None = None) -> int:
    from hardware.rp2040 import driver
    from hardware.rp2040.board import Instruments, board_settings, install, mpremote_run
    from hardware.twin.adc_noise import AdcNoise

    p = argparse.ArgumentParser(prog="python -m hardware.rp2040.loop_bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--front-end", default="ma", choices=["ma", "volt", "freq"])
    p.add_argument("--steps", type=int, default=200)
    args = p.parse_args(argv)
    why = driver.missing()
    if why:
        print(f"loop_bench: cannot run the emulated Pico: {why}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="firedamp-loop-bench-") as tmp:
        pico = driver.EmulatedPico(Path(tmp) / "flash.bin", link=Path(tmp) / "pico", speed=0, noise=AdcNoise(seed=1))
        values = board_settings("emu-1", args.front_end, warmup_s=0, display=0)
        pico.start(paused=True)
        try:
            inst = Instruments(pico, values)
            inst.wire()
            inst.gas(0.5)
            inst.flow(1000.0)
            pico.run()
            install(str(pico.link.path), values)
            mpremote = str(Path(sys.executable).parent / "mpremote")
            proc = mpremote_run([mpremote, "connect", str(pico.link.path), "resume", "exec",
                                 ON_BOARD % args.steps], timeout_s=1800)
        finally:
            pico.stop()
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH ")), None)
    if line is None:
        print(f"loop_bench: no result from the board: {proc.stdout[-800:]} {proc.stderr[-800:]}", file=sys.stderr)
        return 1
    r = json.loads(line[6:].replace("'", '"'))
    t = sorted(r["times_us"][5:])  # the first iterations include the boot self-test
    a = sorted(r["allocs"][5:])
    pct = lambda v, q: v[min(len(v) - 1, int(q / 100 * len(v)))]  # noqa: E731
    print(f"front end {args.front_end}: {len(t)} loop iterations on the emulated RP2040 (125 MHz, MicroPython 1.28)")
    print(f"  loop time    median {pct(t, 50) / 1000:.2f} ms, p99 {pct(t, 99) / 1000:.2f} ms, worst {t[-1] / 1000:.2f} ms"
          " (period 100 ms)")
    print(f"  allocation   median {pct(a, 50)} B, worst {a[-1]} B per iteration")
    print(f"  free heap    {r['free_start']} B after build, {r['free_end']} B after the run (gc.mem_free)")
    print(f"  state {r['state']}, faults 0x{r['faults']:04x}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
