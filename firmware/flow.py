"""Pulse inputs: an IRQ-safe edge counter, and flow rate + totaliser from a K-factor, in integers.

The IRQ handler only counts and timestamps: no allocation, no floats (tests run it under heap_lock()).
The counter wraps at 2**30 so it stays a small int on a 32-bit port; the loop takes differences.
"""

from compat import const

MASK = const(0x3FFFFFFF)
_CAP = const(0x1FFFFFFF)  # idle time stops growing here (~6 days) instead of becoming a long int
_MEGA = const(1000000)


class PulseCounter:
    """Counts edges, keeps the timestamp (us) of the last accepted one, rejects edges closer than debounce_us."""

    def __init__(self, ticks_us, ticks_diff, debounce_us=0):
        self._ticks_us = ticks_us
        self._diff = ticks_diff
        self.debounce_us = debounce_us
        self.count = 0
        self.last_us = 0
        self.glitches = 0
        self._seen = False
        self.snap_count = 0
        self.snap_us = 0

    def irq(self, pin):
        t = self._ticks_us()
        # a negative difference is the tick counter's wrap (2**30 us on the RP2040, ~18 min) after a long
        # pause, not an edge 'too close': without the 0 <= test every edge for the next ~9 min was dropped
        if self._seen and 0 <= self._diff(t, self.last_us) < self.debounce_us:
            self.glitches = (self.glitches + 1) & MASK
            return
        self._seen = True
        self.last_us = t           # timestamp first: the loop re-reads count to detect a torn snapshot
        self.count = (self.count + 1) & MASK

    def snapshot(self):
        """Copy (count, last_us) consistently into snap_count / snap_us without disabling interrupts."""
        for _ in range(8):
            c = self.count
            t = self.last_us
            if c == self.count:
                break
        self.snap_count = c
        self.snap_us = t


class EdgeRate:
    """Edges per time from successive snapshots of a PulseCounter, measured between edge timestamps
    (exact at low rates, like ESPHome's pulse_meter). Sets `edges` (new edges this update), `valid`,
    `rate_x` (edges per `per_us` microseconds times `scale`) and `idle_ms` (time since the last edge)."""

    def __init__(self, counter, ticks_diff, window_us=500000):
        self.counter = counter
        self._diff = ticks_diff
        self.window_us = window_us
        self.edges = 0
        self.idle_ms = 0
        self.rate_num = 0   # edges in the last complete window
        self.rate_us = 0    # its length in us (0 = no rate yet)
        self._prev = 0
        self._acc = 0
        self._win_us = 0
        self._have_win = False
        self.fresh = False          # a new window completed in this update

    def update(self, dt_ms):
        c = self.counter
        c.snapshot()
        n = (c.snap_count - self._prev) & MASK
        self._prev = c.snap_count
        self.edges = n
        self.fresh = False
        if n == 0:
            if self.idle_ms < _CAP:
                self.idle_ms += dt_ms
            return
        self.idle_ms = 0
        if not self._have_win:  # the window starts at the newest edge; edges before it have no interval
            self._have_win = True
            self._win_us = c.snap_us
            self._acc = 0
            return
        self._acc += n
        span = self._diff(c.snap_us, self._win_us)
        if span < 0:  # window older than half the tick period (a long timeout): start again at this edge
            self._win_us = c.snap_us
            self._acc = 0
        elif span >= self.window_us and self._acc > 0:
            self.rate_num = self._acc
            self.rate_us = span
            self.fresh = True
            self._acc = 0
            self._win_us = c.snap_us

    def stale(self, timeout_ms):
        """No edge for timeout_ms: forget the window so the next edge starts a fresh one."""
        if self.idle_ms >= timeout_ms:
            self._have_win = False
            self.rate_num = 0
            self.rate_us = 0
            return True
        return False


class Flow:
    """Flow rate (thousandths of a unit per minute) and totaliser (thousandths of a unit) from pulses."""

    def __init__(self, counter, ticks_diff):
        self.rate = EdgeRate(counter, ticks_diff, 1000000)
        self.k_milli = 450000       # K-factor in thousandths of a pulse per unit (L or m3)
        self.timeout_ms = 5000
        self.rate_x1000 = 0
        self.total_m = 0           # totaliser = total_m * 1e6 + total_r thousandths of a unit: two small
        self.total_r = 0           # ints, so adding to it (or sending it) never allocates on a 32-bit port
        self._carry = 0             # pulses * 1e6 not yet turned into whole thousandths of a unit
        self._cap_ms = 1000

    @property
    def total_x1000(self):
        return self.total_m * _MEGA + self.total_r

    @total_x1000.setter
    def total_x1000(self, value):
        self.total_m = value // _MEGA
        self.total_r = value % _MEGA

    def configure(self, k_per_unit, timeout_ms, debounce_us):
        k = int(round(k_per_unit * 1000))
        if k != self.k_milli:
            self._carry = 0
        self.k_milli = k if k > 0 else 1
        self.timeout_ms = timeout_ms
        self.rate.counter.debounce_us = debounce_us

    def update(self, dt_ms):
        r = self.rate
        r.update(dt_ms)
        if r.edges:
            acc = self._carry + r.edges * 1000000
            add = acc // self.k_milli
            self._carry = acc - add * self.k_milli
            t = self.total_r + add
            if t >= _MEGA:
                self.total_m += t // _MEGA
                t %= _MEGA
            self.total_r = t
        if r.stale(self.timeout_ms):
            self.rate_x1000 = 0
            return
        if r.edges:
            self._cap_ms = 1000
        if r.fresh:
            # edges/us -> units/min: * 60e6 us/min / (k_milli / 1000) * 1000 (thousandths). Once per
            # window (~1 s): on a 32-bit port these products are long ints, the one allocation here.
            self.rate_x1000 = r.rate_num * 60000000000000 // (r.rate_us * self.k_milli)
        elif r.idle_ms >= self._cap_ms and self.rate_x1000:
            # no edge for a while (checked every 0.5 s): the rate cannot exceed one pulse per idle time
            self._cap_ms = r.idle_ms + 500
            cap = 60000000000 // (r.idle_ms * self.k_milli + 1)
            if self.rate_x1000 > cap:
                self.rate_x1000 = cap
