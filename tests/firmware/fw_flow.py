"""Pulse counting (IRQ allocates nothing), debounce, K-factor rate, no-pulse timeout, totaliser."""

import flow
import fwkit

try:
    import micropython
except ImportError:
    micropython = None


def test_irq_handler_allocates_nothing():
    clock = fwkit.SimClock(1000)
    c = flow.PulseCounter(clock.ticks_us, clock.ticks_diff, 10)
    handler = c.irq      # bound once, as Pin.irq() does
    c.count = flow.MASK  # also cross the wrap inside the locked region
    if micropython is not None:
        micropython.heap_lock()
    try:
        for _ in range(100):
            clock.us += 20
            handler(None)
            clock.us += 3
            handler(None)  # a glitch 3 us later: rejected, counted
    finally:
        if micropython is not None:
            micropython.heap_unlock()
    assert c.count == 99  # MASK + 100 wraps to 99
    assert c.glitches == 100
    assert c.last_us == 1000 + 100 * 23 - 3


def test_debounce_rejects_edges_closer_than_the_setting():
    clock = fwkit.SimClock(0)
    c = flow.PulseCounter(clock.ticks_us, clock.ticks_diff, 100)
    for t in (0, 50, 99, 100, 150, 250):
        clock.us = t
        c.irq(None)
    assert (c.count, c.glitches) == (3, 3)


def test_two_kilohertz_counts_exactly_and_rate_follows_k_factor():
    rig = fwkit.Rig({"k_pulses_per_l": 100.0})
    try:
        rig.boot()
        rig.pulses("flow_pulse", 2000, 3000)
        f = rig.ctl.flow
        assert f.rate.counter.count == 6000
        assert f.total_x1000 == 60000             # 6000 pulses / 100 per L = 60.000 L
        assert f.rate_x1000 == 1200000            # 2000 Hz / 100 per L = 20 L/s = 1200 L/min
        rig.frames()
        rig.ctl.report()
        r = rig.readings()[-1]
        assert r["flow_unit"] == "L/min" and r["flow"] == "1200.000" and r["total"] == "60.000"
    finally:
        rig.close()


def test_cubic_metre_k_factor_and_fractional_pulses():
    rig = fwkit.Rig({"k_pulses_per_l": 0.0, "k_pulses_per_m3": 7.5})
    try:
        rig.boot()
        rig.pulses("flow_pulse", 5, 4000)    # 20 pulses at 5 Hz
        f = rig.ctl.flow
        assert f.total_x1000 == 2666           # 20 / 7.5 = 2.666 m3 (remainder carried)
        assert f.rate_x1000 == 40000           # 5 Hz / 7.5 per m3 * 60 = 40 m3/min
        assert rig.readings()[-1]["flow_unit"] == "m3/min"
        rig.pulses("flow_pulse", 5, 1000)      # 5 more: 25 / 7.5 = 3.333
        assert f.total_x1000 == 3333
    finally:
        rig.close()


def test_rate_is_zero_after_the_no_pulse_timeout():
    rig = fwkit.Rig({"k_pulses_per_l": 10.0, "flow_timeout_ms": 3000})
    try:
        rig.boot()
        rig.pulses("flow_pulse", 50, 2000)
        assert rig.ctl.flow.rate_x1000 == 300000   # 50 Hz / 10 per L * 60
        rig.run_ms(1500)
        assert 0 < rig.ctl.flow.rate_x1000 <= 300000
        rig.run_ms(2000)
        assert rig.ctl.flow.rate_x1000 == 0
        rig.frames()
        rig.run_ms(1000)
        assert rig.readings()[-1]["flow"] == "0.000"
    finally:
        rig.close()


def test_totaliser_survives_a_reboot_and_is_saved_sparingly():
    rig = fwkit.Rig({"k_pulses_per_l": 1.0, "total_save_s": 60})
    try:
        rig.boot()
        rig.pulses("flow_pulse", 10, 5000)
        assert rig.ctl.flow.total_x1000 == 50000
        rig.run_ms(1000)
        assert rig.reboot().ctl.flow.total_x1000 == 0     # not saved yet: within total_save_s
        rig = fwkit.Rig({"k_pulses_per_l": 1.0, "total_save_s": 60}, root=rig.root)
        rig.boot()
        rig.pulses("flow_pulse", 10, 5000)
        rig.run_ms(61000)                                  # the next sparing save
        assert rig.reboot().ctl.flow.total_x1000 == 50000
    finally:
        rig.close()


def test_snapshot_is_consistent():
    clock = fwkit.SimClock(0)
    c = flow.PulseCounter(clock.ticks_us, clock.ticks_diff)
    for t in range(1, 6):
        clock.us = t * 1000
        c.irq(None)
    c.snapshot()
    assert (c.snap_count, c.snap_us) == (5, 5000)


class WrapClock:
    """The RP2040's tick arithmetic: ticks_us wraps at 2**30, ticks_diff is signed in [-2**29, 2**29)."""

    PERIOD = 1 << 30

    def __init__(self, us=0):
        self.us = us

    def ticks_us(self):
        return self.us % self.PERIOD

    def ticks_diff(self, a, b):
        return (a - b + self.PERIOD // 2) % self.PERIOD - self.PERIOD // 2


def test_edges_after_a_long_pause_are_counted_across_the_tick_wrap():
    clock = WrapClock(1000)
    c = flow.PulseCounter(clock.ticks_us, clock.ticks_diff, 50)
    c.irq(None)
    clock.us += 600 * 1000000          # 10 minutes without a pulse: ticks_diff is now negative
    for _ in range(10):
        clock.us += 10000
        c.irq(None)
    assert (c.count, c.glitches) == (11, 0)
    rate = flow.EdgeRate(c, clock.ticks_diff, 1000000)
    rate.update(100)                   # the window starts at the newest edge
    clock.us += 700 * 1000000          # a window left open for > half the tick period
    c.irq(None)
    rate.update(100)
    for _ in range(30):                # then 100 Hz for 3 s: the rate must come back
        for _ in range(10):
            clock.us += 10000
            c.irq(None)
        rate.update(100)
    assert rate.rate_us and abs(rate.rate_num * 1000000 // rate.rate_us - 100) <= 1
