"""machine.lightsleep on the emulated Pico (MicroPython's RP2040 port alone, no firedamp firmware): how long
lightsleep(ms) takes on the emulated clock, that the USB serial line still answers after it, and up to which
edge rate a hard Pin.irq counts every edge while the loop sleeps between edges as main.py's LightSleep does.

    python -m hardware.rp2040.sleep_probe            # prints one line per measurement
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

FLOW = 15  # GPIO15, the flow input: pulses 50 us wide as Instruments.flow makes them

# LightSleep's loop (firmware/main.py), on a plain REPL: lightsleep until `ms` is over, again after each wake
SETUP = """import machine, time
n = [0]
def h(p):
    n[0] += 1
p = machine.Pin(15, machine.Pin.IN, machine.Pin.PULL_UP)
p.irq(h, machine.Pin.IRQ_RISING, hard=True)
def nap(ms):
    u = time.ticks_us(); w = 0
    while True:
        left = ms * 1000 - time.ticks_diff(time.ticks_us(), u)
        if left < 3000:
            if left > 0:
                time.sleep_us(left)
            return w
        machine.lightsleep((left - 1000) // 1000); w += 1
"""


def main(argv: list[str] | None = None) -> int:
    from hardware.rp2040 import driver

    p = argparse.ArgumentParser(prog="python -m hardware.rp2040.sleep_probe", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rates", type=int, nargs="+", default=[1000, 2000, 3000, 4000, 5000], help="edges/s")
    args = p.parse_args(argv)
    why = driver.missing()
    if why:
        print(f"sleep_probe: cannot run the emulated Pico: {why}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="firedamp-sleep-probe-") as tmp:
        pico = driver.EmulatedPico(Path(tmp) / "flash.bin", link=None, speed=0)
        pico.start()
        try:
            pico.exec(SETUP)
            for ms in (2, 10, 100, 250):
                us = int(pico.exec(f"u = time.ticks_us(); machine.lightsleep({ms}); "
                                   "print(time.ticks_diff(time.ticks_us(), u))"))
                print(f"lightsleep({ms}): {us / 1000:.2f} ms on the emulated clock (ticks_us)")
            s0 = pico.sleep_stats()
            pico.exec("machine.lightsleep(500)")
            s1 = pico.sleep_stats()
            print(f"lightsleep(500): answered over USB CDC afterwards; clk_sys on the 12 MHz crystal "
                  f"{(s1['slow_ns'] - s0['slow_ns']) / 1e6:.1f} of {(s1['t_ns'] - s0['t_ns']) / 1e6:.1f} emulated ms")
            pico.set_pin(FLOW, 0)
            for hz in args.rates:
                pico.wave(FLOW, hz, high_us=50)
                out = pico.exec("n[0] = 0\nw = 0\nu = time.ticks_us()\nfor i in range(5):\n    w += nap(100)\n"
                                "d = time.ticks_diff(time.ticks_us(), u)\nprint(n[0], w, d)")
                pico.wave(FLOW, 0)
                counted, naps, us = (int(x) for x in out.split())
                made = hz * us / 1e6
                print(f"{hz:5d} edges/s for {us / 1e6:.3f} s while napping: counted {counted} of ~{made:.0f} "
                      f"({naps} lightsleeps)" + ("" if abs(counted - made) <= 1.5 else "  <- edges lost"))
        finally:
            pico.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
