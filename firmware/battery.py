"""A battery-powered board: battery voltage, the low and cut-off levels, and the run time left.

The battery is VSYS through the Pico's on-board divider (VSYS/3 on ADC3), read once per loop iteration and
averaged over each report period. At or below battery_low_mv: flag BATTERY_LOW. At or below
battery_cutoff_mv: fault BATTERY, so the board cuts power and sounds the fault pattern while the battery
still has the charge to (the settings rule puts supply_min_mv, the brown-out, below the cut-off). The fault
clears only when the battery reads above battery_low_mv (charged or replaced): with the relay, buzzer and
beacon switched, the load falls and the voltage recovers by tens of mV, which must not clear it.

Run time left: the state of charge from a single-cell Li-ion open-circuit-voltage curve scaled between
battery_cutoff_mv (0 %) and battery_full_mv (100 %); its rate of fall over the last _WINDOW_MIN minutes (a
least-squares line through one-minute means, so ADC noise of a few LSB averages out) gives the minutes left:
the charge left divided by that rate (a constant load discharges the charge linearly in time). Unknown
(None) until one window is measured, and while the charge is not falling (charging, or on mains).
"""

from array import array

from compat import const

_ONE = const(16384)           # Q14: 1.0 of the span / a full battery
_WINDOW_MIN = const(20)       # minutes the rate is fitted over (least squares through 21 one-minute means):
#                               long enough to ride over the RP2040's wide ADC codes (erratum E11: near
#                               3.71 V a VSYS/3 input reads one code over ~19 mV, a plateau of ~19 min at a
#                               6 h discharge); 10 min gave estimates 2x off there (tests/firmware/
#                               test_battery_runtime.py)
_SXX = const(770)             # sum of (i - 10)**2 for i = 0..20: the least-squares slope's denominator
_MIN_FALL = const(16)         # Q14 (0.1 % of a full battery per window): less is "not discharging" (a
#                               charger, mains, or a run time over ~300 h, past what a window can resolve)
_LOW_HYST_MV = const(50)      # BATTERY_LOW clears 50 mV above battery_low_mv: the voltage recovers that much
#                               when the load drops (relay coil, beacon), which must not toggle the flag
# State of charge (Q14) at 0, 10, ... 100 % of the span battery_cutoff_mv..battery_full_mv: a typical NMC
# Li-ion cell at rest, 3.30 V = 0 % to 4.20 V = 100 % (3, 11, 23, 36, 49, 61, 72, 81, 90 % between: the
# shape of published OCV-SOC curves of 18650 cells, steep at both ends and flatter in the middle; typical,
# not one measured cell. An LFP cell, flat from 10 to 90 %, would need a curve of its own).
_CURVE = (0, 492, 1802, 3768, 5898, 8028, 9994, 11796, 13271, 14746, 16384)


def charge_q14(x):
    """The state of charge (Q14) at x (Q14) of the span cut-off..full."""
    if x <= 0:
        return 0
    if x >= _ONE:
        return _ONE
    seg = x * 10 // _ONE
    pos = x * 10 - seg * _ONE
    a = _CURVE[seg]
    return a + (_CURVE[seg + 1] - a) * pos // _ONE


class Battery:
    """adc: VSYS through a divider of `divider`. After each update(): mv, low, cut, charge (Q14), run_min."""

    def __init__(self, adc, divider):
        self.adc = adc
        self.divider = divider
        self.mv = 0
        self.low = False
        self.cut = False
        self.charge = 0
        self.run_min = None
        self.seen = False
        self._sum = 0
        self._n = 0
        self._msum = 0
        self._mn = 0
        self._ms = 0
        self._ring = array("h", bytes(2 * (_WINDOW_MIN + 1)))   # the last minutes' charge, Q14
        self._i = 0
        self._count = 0
        self._levels: tuple = ()

    def configure(self, s):
        levels = (s["battery_low_mv"], s["battery_cutoff_mv"], s["battery_full_mv"], s["adc_vref_mv"])
        if levels != self._levels:   # new levels: the charge means something else
            self._levels = levels
            self._count = 0
            self.run_min = None
        self.low_mv, self.cut_mv, self.full_mv = levels[0], levels[1], levels[2]
        self._q = self.divider * levels[3] * 10 * 4096 // 65535   # mean read_u16 -> 0.1 mV, in Q12

    def sample(self):
        r = self.adc.read_u16()
        self._sum += r
        self._n += 1
        self._msum += r
        self._mn += 1

    def _mv_x10(self, total, n):
        return (total // n) * self._q >> 12

    def _charge(self, mv_x10):
        c10 = self.cut_mv * 10
        span = self.full_mv * 10 - c10
        d = mv_x10 - c10
        return charge_q14(0 if d <= 0 else d // span * _ONE + d % span * _ONE // span)

    def update(self, ms):
        """End of a report period of `ms`. Returns 0, or the event: 1 low, 2 cut-off, 3 recovered."""
        if not self._n:
            return 0
        x10 = self._mv_x10(self._sum, self._n)
        self._sum = self._n = 0
        mv = x10 // 10
        self.mv = mv
        self.charge = self._charge(x10)
        event = 0
        if mv <= self.cut_mv:
            if not self.cut:
                event = 2
            self.cut = True
        elif mv > self.low_mv and self.cut:
            self.cut = False
            event = 3
        if mv <= self.low_mv:
            if not self.low and not event:
                event = 1
            self.low = True
        elif mv > self.low_mv + _LOW_HYST_MV and self.low:
            self.low = False
            if not event:
                event = 3
        self.seen = True
        self._ms += ms
        if self._ms >= 60000:
            self._ms -= 60000
            self._minute()
        return event

    def _minute(self):
        c = self._charge(self._mv_x10(self._msum, self._mn))
        self._msum = self._mn = 0
        ring = self._ring
        self._i = (self._i + 1) % (_WINDOW_MIN + 1)
        ring[self._i] = c
        if self._count <= _WINDOW_MIN:
            self._count += 1
            if self._count <= _WINDOW_MIN:
                return
        # least squares over the window, oldest (k = 0) to now (k = 20): slope = sum((k - 10) * c_k) / _SXX
        num = 0
        j = self._i
        for k in range(_WINDOW_MIN, -1, -1):
            num += (k - _WINDOW_MIN // 2) * ring[j]
            j = j - 1 if j else _WINDOW_MIN
        fall = -num        # charge fallen per minute, times _SXX
        self.run_min = c * _SXX // fall if fall * _WINDOW_MIN >= _MIN_FALL * _SXX else None

    def left(self):
        """The run time left as the console and events say it."""
        m = self.run_min
        if m is None:
            return "estimating" if self._count <= _WINDOW_MIN else "not discharging"
        return "about %d h %d min left" % (m // 60, m % 60)

    def status(self):
        return "battery %d mV, charge %d %% (low %d, cut-off %d, full %d mV): %s" % (
            self.mv, self.charge * 100 // _ONE, self.low_mv, self.cut_mv, self.full_mv, self.left())

    def event_text(self, event):
        if event == 2:
            return "battery at cut-off: %d mV (<= %d): power off until it reads above %d mV" % (
                self.mv, self.cut_mv, self.low_mv)
        if event == 1:
            return "battery low: %d mV (<= %d, cut-off %d): %s" % (self.mv, self.low_mv, self.cut_mv, self.left())
        return "battery ok: %d mV" % self.mv
