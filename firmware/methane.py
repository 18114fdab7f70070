"""Methane input: analog voltage, 4-20 mA through a shunt, or 200-1000 Hz frequency; two-point calibration.

Each front end produces a raw integer (uA, uV or mHz), then calibration maps it to hundredths of the
profile's unit. The arithmetic keeps every intermediate below 2**30, so it stays in small ints and
allocates nothing on a 32-bit port (RP2040) either. Faults found here: LINE (mA out of 3.6..21, frequency missing or out of band), RAIL (ADC at
either rail), RANGE (reading outside the configured range), STUCK (a frozen signal for stuck_s).

STUCK on the ADC front ends (4-20 mA, voltage): a real ADC never returns one value twice in a row (the
RP2040's spreads a few LSB read to read), so "raw unchanged" would never catch a frozen transmitter. Instead
each sample's `oversample` reads give the ADC's own noise, and every block of 16 samples compares how much
the samples moved against what that noise alone would make them move (variance ratio R, 1 for a signal
that is constant at the ADC's input). A block with R <= 3 looks frozen and adds its time; a block with R > 8
(the input clearly moved) starts the count again; one in between takes back four blocks' time. STUCK when
the count reaches stuck_s (so it is raised stuck_s to stuck_s + one block after the signal froze). A live
sensor's own noise (a catalytic head's 0.01 % CH4 is ~7 LSB on the 150-ohm shunt) is far above the ADC's
noise averaged over 16 reads (~0.5 LSB), so a steady clean-air reading keeps resetting the count: with
0.002 % CH4 of its own noise a live signal was never STUCK in 10 x stuck_s, a frozen one always was at
stuck_s + one block (tests/firmware/test_stuck_under_noise.py). Limit: a live signal quieter than that can look
frozen. The frequency input keeps "raw unchanged" (its period jitter is not modelled yet).
"""

from bits import F_LINE, F_RAIL, F_RANGE, F_STUCK
from compat import const
from flow import EdgeRate

MA = const(0)
VOLT = const(1)
FREQ = const(2)
FRONT_ENDS = ("ma", "volt", "freq")   # settings front_end; the index is MA, VOLT or FREQ
# raw value at zero gas and at full scale before calibration (nominal sensor outputs); settings.py checks a
# calibration against it, the virtual board's sensor (hardware/twin) follows it
NOMINAL = ((4000, 20000), (400000, 2000000), (200000, 1000000))  # uA; uV (0.4-2.0 V); mHz (200-1000 Hz)
RAW_UNITS = ("uA", "uV", "mHz")
_COARSE = (1, 100, 10)  # calibration multiplies in uA, 0.1 mV, 0.01 Hz: products stay below 2**30
_RAIL = const(64)            # ADC counts from either rail
_MA_LOW = const(3600)        # uA
_MA_HIGH = const(21000)
_HZ_LOW = const(150000)      # mHz: "far out of the 200-1000 Hz band"
_HZ_HIGH = const(1100000)
_CAP = const(0x1FFFFFFF)     # counters stop here instead of growing into long ints
_NO_PULSE_MS = const(500)
_BLOCK = const(16)           # samples per stuck-signal block
_CLIP = const(255)           # LSB: read-to-read deviations beyond this count as this (keeps ints small)
_E_CLIP = const(1023)        # sum-of-codes deviations within a block, clipped likewise
_V_MAX = const(0x100000)     # a block variance beyond this moved for certain (v * 63 * 16 stays small)
_A_MAX = const(0x400000)     # the ADC noise sum saturates here (8 * 15 * this stays a small int)


class Methane:
    """Reads one front end per sample(); results in raw, x100, valid, faults."""

    def __init__(self, adc, counter, ticks_diff):
        self.adc = adc
        self.freq = EdgeRate(counter, ticks_diff, 50000) if counter is not None else None
        self.front = MA
        self.oversample = 16
        self.shunt_ohm = 150
        self.vref_mv = 3300
        self.range_x100 = 400
        self.stuck_ms = 600000
        self.zero = 4000
        self.span_raw = 20000
        self.span_x100 = 400
        self.calibrated = False
        self.raw = 0
        self.x100 = 0
        self.valid = False
        self.faults = 0
        self._same_ms = 0      # frequency input: time the raw value has not changed; ADC: frozen-block time
        self._noise = 0        # this sample's n * sum of squared read deviations (the ADC's own noise)
        self._csum = 0         # this sample's sum of 12-bit codes
        self._n = 0            # samples in the current block
        self._ref = 0          # the block's first sum of codes
        self._es = 0           # sum of clipped (csum - ref) over the block
        self._eq = 0           # sum of their squares
        self._a = 0            # sum of _noise over the block
        self._block_ms = 0
        self._over = False     # RANGE fault held: set past range + 5 %, cleared only back inside the range

    def configure(self, front_end, s, range_x100):
        """Apply settings (dict) for `front_end` ("ma", "volt", "freq"); range in hundredths of the unit."""
        self.front = FRONT_ENDS.index(front_end)
        self.oversample = s["oversample"]
        self.shunt_ohm = s["shunt_ohm"]
        self.vref_mv = s["adc_vref_mv"]
        self.range_x100 = range_x100
        self.stuck_ms = s["stuck_s"] * 1000
        nz, nf = NOMINAL[self.front]
        self.calibrated = s["cal_span_raw"] > 0
        if self.calibrated:
            self.zero = s["cal_zero_raw"]
            self.span_raw = s["cal_span_raw"]
            self.span_x100 = int(round(s["cal_span_pct"] * 100))
        else:
            self.zero = s["cal_zero_raw"] or nz
            self.span_raw = nf
            self.span_x100 = range_x100

    def _adc_raw(self):
        n = self.oversample
        adc = self.adc
        total = adc.read_u16()
        first = total >> 4     # 12-bit code: the read-to-read deviations below are in LSB
        ds = 0
        dq = 0
        for _ in range(n - 1):
            r = adc.read_u16()
            total += r
            d = (r >> 4) - first
            if d > _CLIP:
                d = _CLIP
            elif d < -_CLIP:
                d = -_CLIP
            ds += d
            dq += d * d
        self._noise = n * dq - ds * ds     # = n * sum of squared deviations from the sample's mean
        self._csum = n * first + ds
        if total <= n * _RAIL or total >= n * (65535 - _RAIL):
            self.faults |= F_RAIL
        x = total * (self.vref_mv // 10) // n           # <= 65535 * 500
        uv = x // 65535 * 10000 + x % 65535 * 10000 // 65535  # = mean * vref_mv * 1000 / 65535
        if self.front == VOLT:
            return uv
        ua = uv // self.shunt_ohm
        if ua < _MA_LOW or ua > _MA_HIGH:
            self.faults |= F_LINE
        return ua

    def _freq_raw(self, dt_ms):
        f = self.freq
        if f is None:
            self.faults |= F_LINE
            return 0
        f.update(dt_ms)
        if f.stale(_NO_PULSE_MS) or not f.rate_us:
            self.faults |= F_LINE
            return 0
        q = f.rate_num * 1000000                          # edges * us/s, <= ~1.1e8
        mhz = q // f.rate_us * 1000 + q % f.rate_us * 1000 // f.rate_us
        if mhz < _HZ_LOW or mhz > _HZ_HIGH:
            self.faults |= F_LINE
        return mhz

    def sample(self, dt_ms):
        """Read the front end once; sets raw, x100, valid and faults (bit mask of F_*)."""
        self.faults = 0
        if self.front == FREQ:
            raw = self._freq_raw(dt_ms)
            if raw == self.raw:
                if self._same_ms < _CAP:
                    self._same_ms += dt_ms
            else:
                self._same_ms = 0
        else:
            raw = self._adc_raw()
            self._frozen(dt_ms)
        self.raw = raw
        if self.faults & (F_LINE | F_RAIL):
            self.valid = False
            self._same_ms = 0
            self._n = 0
            return
        c = _COARSE[self.front]
        d = (self.span_raw - self.zero) // c
        x = self.span_x100 * ((raw - self.zero) // c) // d if d else 0
        self.x100 = x
        self.valid = True
        # Hysteresis: sensor noise around full scale must not toggle FAULT <-> POWEROFF every second
        # (an alert storm during an outburst): set beyond the 5 % margin, clear only back inside the range.
        margin = self.range_x100 // 20
        if x < -margin or x > self.range_x100 + margin:
            self._over = True
        elif 0 <= x <= self.range_x100:
            self._over = False
        if self._over:
            self.faults |= F_RANGE
        if self.stuck_ms and self._same_ms >= self.stuck_ms:
            self.faults |= F_STUCK

    def _frozen(self, dt_ms):
        """One ADC sample into the current block; at the block's end, its verdict on _same_ms (module doc)."""
        if self._n == 0:
            self._ref = self._csum
            self._es = self._eq = self._a = self._block_ms = 0
        e = self._csum - self._ref
        if e > _E_CLIP:
            e = _E_CLIP
        elif e < -_E_CLIP:
            e = -_E_CLIP
        self._es += e
        self._eq += e * e
        a = self._a + self._noise
        self._a = a if a < _A_MAX else _A_MAX
        self._block_ms += dt_ms
        self._n += 1
        if self._n < _BLOCK:
            return
        self._n = 0
        v = self._eq - self._es * self._es // _BLOCK   # (B-1) * n * sigma^2 expected for a frozen input
        if v >= _V_MAX:
            self._same_ms = 0
            return
        # R = v * B * (n - 1) / (A * (B - 1)); B = 16, B - 1 = 15
        lhs = v * (self.oversample - 1) * 16
        a15 = self._a * 15
        if lhs <= 3 * a15:
            if self._same_ms < _CAP:
                self._same_ms += self._block_ms
        elif lhs > 8 * a15:
            self._same_ms = 0
        else:
            self._same_ms = max(0, self._same_ms - 4 * self._block_ms)
