"""How fast the emulated Pico runs against the wall clock, busy and asleep.

    python -m hardware.rp2040.speed

Boots MicroPython (no firedamp firmware needed) and runs, through the raw REPL, a loop that spins on
time.ticks_ms() for 1 emulated second, then time.sleep(5); prints emulated seconds per wall second for each,
unpaced (speed 0) as the tests run it. The figures depend on the machine's load.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

BUSY = "import time\nt = time.ticks_ms()\nn = 0\nwhile time.ticks_diff(time.ticks_ms(), t) < 1000:\n    n += 1\nprint(n)"
ASLEEP = "import time\ntime.sleep(5)"


def main() -> int:
    from hardware.rp2040 import driver

    why = driver.missing()
    if why:
        print(f"speed: cannot run the emulated Pico: {why}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="firedamp-speed-") as tmp:
        pico = driver.EmulatedPico(Path(tmp) / "flash.bin", speed=0).start()
        try:
            pico.exec("print(1)")
            for name, code in (("busy (ticks_ms spin, 1 s)", BUSY), ("asleep (time.sleep(5))", ASLEEP)):
                e0, w0 = pico.clock()
                out = pico.exec(code, timeout_s=600)
                e1, w1 = pico.clock()
                ratio = (e1 - e0) / 1e9 / (w1 - w0)
                extra = f", {int(out)} loop turns" if out.strip().isdigit() else ""
                print(f"{name:28} {(e1 - e0) / 1e9:6.2f} emulated s in {w1 - w0:6.2f} s wall = {ratio:6.2f}x real "
                      f"time{extra}")
        finally:
            pico.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
