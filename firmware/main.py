"""Boot and wiring of the firedamp sensor board (MicroPython; also CPython); the loop is controller.py.

API (stable; the virtual board in hardware/twin/ and the tests use exactly this):

    import board, main                      # firmware/ and (off the board) hardware/twin/ on the path
    b = board.Board("pico", stream=s, root=folder)   # stream: read() -> bytes|None (non-blocking),
                                                      #   write(buf): one whole frame as a memoryview, valid
                                                      #   only during the call (copy what you keep);
                                                      # root: where settings live
    ctl = main.build(b, clock)              # clock: object with ticks_ms(), ticks_us(), ticks_diff(a, b)
    wait_ms = ctl.step()                    # ONE control-loop iteration at the clock's current time;
                                            # returns ms until the next iteration is due (period - work)
    main.main()                             # the real board: build with CLOCK and loop forever
    nap = main.sleeper(ctl, link, platform, machine)  # what main() sleeps with between iterations

- Off the board, `import machine` in board.py finds hardware/twin/machine.py: drive inputs there
  (`machine.ADC.set(26, v)`, `machine.Pin.get(15).edge()`, read `machine.Pin.get(16).value()` for the relay).
  Set the clock before firing edges: the IRQ handler timestamps with `clock.ticks_us()`.
- `clock` may run simulated time: step() reads it once per call; call step() every `ctl.period_ms` of
  simulated time (default 100 ms). Ticks may wrap (use a ticks_diff that handles it, as MicroPython's does).
- The pins, ADC channels and defaults are in board.PINMAPS and settings.SCHEMA. With the default settings
  (4-20 mA front end on ADC 26, coal-face profile, 30 s warm-up) a fresh board reports a SETTINGS fault
  until a settings file exists (write one with `settings.Store(root).save(settings.defaults())`).
  The Pico pin map reads the supply on ADC 29 (VSYS/3): set it to ~ 5 V/3 (e.g. 33000) or set
  `supply_min_mv` to 0, else a POWER (brown-out) fault is reported.
- Observe: the frames written to the stream (docs/protocol.md), or attributes: ctl.alarm.state / .relay,
  ctl.faults, ctl.flags, ctl.methane.x100, ctl.flow.rate_x1000 / total_x1000, ctl.uptime_ms().
- Setting `sleep 1` (battery boards): main() sleeps between iterations with machine.lightsleep on the rp2
  port over USB, else with sleep_ms as with `sleep 0` (sleeper() below; docs/safety.md section 3).
"""

import gc
import time

from compat import const
from controller import VERSION, Controller  # noqa: F401 - main.VERSION is part of the API

try:
    import micropython
except ImportError:
    micropython = None  # type: ignore[assignment]


# The clock the controller takes (ticks_ms, ticks_us, ticks_diff; main() also sleeps with sleep_ms and,
# for light sleep, sleep_us).
if hasattr(time, "ticks_ms"):
    CLOCK = time  # MicroPython: the time module itself
else:  # CPython: a monotonic stand-in (no wrap, plain difference); a branch not taken costs no heap
    class _Monotonic:
        ns = getattr(time, "monotonic_ns")  # the MicroPython stubs do not have it

        def ticks_ms(self):
            return self.ns() // 1000000

        def ticks_us(self):
            return self.ns() // 1000

        def ticks_diff(self, a, b):
            return a - b

        def sleep_ms(self, ms):
            time.sleep(ms / 1000)

        def sleep_us(self, us):
            time.sleep(us / 1000000)

    CLOCK = _Monotonic()  # type: ignore[assignment]


def build(board, clock=None):
    """The whole controller for `board` (board.Board or anything with the same attributes)."""
    return Controller(board, clock if clock is not None else CLOCK)


_WAKE_US = const(1000)  # what lightsleep's wake-up may take on top of the ms asked for (0.43 ms emulated)


class LightSleep:
    """Sleep `ms` with machine.lightsleep while the setting `sleep` is 1 (read at every call), else sleep_ms.

    On the rp2 port lightsleep(ms) stops the system PLL and runs clk_sys from the 12 MHz crystal until a timer
    alarm ms later, but any enabled interrupt ends it early: every flow or methane-frequency edge (Pin.irq,
    counted by its handler on waking) and USB traffic. So it sleeps again for what is left of `ms` (counted
    in us from the call), and never past it, so the next iteration (the relay decision, the watchdog feed)
    comes when it is due: each lightsleep is asked to end _WAKE_US early (on waking the port restarts the
    PLL and the clocks: 0.43 ms on the emulated chip), and the last < 3 ms go to sleep_us (lightsleep(1) or
    less is only a delay on rp2).
    """

    def __init__(self, ctl, lightsleep):
        self.ctl = ctl
        self.clock = ctl.clock
        self.lightsleep = lightsleep
        self.naps = 0  # lightsleep calls made (each one an early wake or the last of a period)

    def __call__(self, ms):
        clock = self.clock
        if not self.ctl.s.get("sleep", 0):
            clock.sleep_ms(ms)
            return
        start = clock.ticks_us()
        left = ms * 1000
        while left >= 2000 + _WAKE_US:
            self.lightsleep((left - _WAKE_US) // 1000)
            self.naps += 1
            left = ms * 1000 - clock.ticks_diff(clock.ticks_us(), start)
        if left > 0:
            clock.sleep_us(left)


def sleeper(ctl, link, platform, machine_mod):
    """What main() sleeps with between iterations: a LightSleep (following the setting `sleep`) on the rp2
    port with the USB link, else the clock's sleep_ms, whatever `sleep` says.

    Not with link uart: lightsleep gates the UART's clock (bytes from the edge are lost while asleep) and
    waking can clobber its settings (micropython PR #16442's open TODO). Not on esp32: its light sleep stops
    the CPU and the GPIO interrupts other than configured wake sources, so the pulse counters would miss
    edges, and UART input does not wake it. Not on CPython or the unix port: they have no lightsleep.
    """
    lightsleep = getattr(machine_mod, "lightsleep", None)
    if platform == "rp2" and link == "usb" and lightsleep is not None:
        return LightSleep(ctl, lightsleep)
    return ctl.clock.sleep_ms


def stopped(b):
    """The firmware is no longer watching: power off, buzzer off, beacon steady on."""
    b.relay.value(0)
    b.buzzer.value(0)
    b.beacon.value(1)


def halt():
    """After a crash: spin without feeding the watchdog, which then resets the board (power stays cut)."""
    while True:
        pass


def main(root="/"):
    """Entry point on the board: build, then run the loop forever. Ctrl-C (mpremote) cuts power and
    returns to the REPL with a timer feeding the watchdog, so the board can be re-flashed. Any other
    exception, while building or in the loop, cuts power and halts until the watchdog resets the board."""
    import sys

    import board as board_mod
    import settings

    if hasattr(micropython, "alloc_emergency_exception_buf"):  # so an IRQ error can be reported (board ports)
        micropython.alloc_emergency_exception_buf(100)
    values, _problem = settings.Store(root).load()  # the controller loads (and reports) them again
    b = board_mod.Board("esp32" if sys.platform == "esp32" else "pico", root=root, link=values["link"],
                        baud=values["uart_baud"])
    ctl = None
    try:
        clock = CLOCK
        ctl = build(b, clock)
        nap = sleeper(ctl, values["link"], sys.platform, board_mod.machine)
        gc.collect()
        while True:
            nap(ctl.step())
    except KeyboardInterrupt:
        stopped(b)
        if ctl is not None:
            b.keep_watchdog_fed(ctl.wdt)
    except Exception as exc:  # noqa: BLE001 - anything else: power off, let the watchdog reset the board
        stopped(b)
        sys.print_exception(exc)  # type: ignore[attr-defined]
        halt()


if __name__ == "__main__":
    main()
