"""Gas pressure and temperature at the flow meter, and the flow and totaliser at base (standard) conditions.

Inputs (settings pt_input "analog"): a 4-20 mA pressure transmitter through its own shunt (shunt_ohm, the same
value as the methane input's) and an
NTC thermistor in a divider (ntc_series_ohm from the ADC reference to the pin, the NTC from the pin to GND:
ratiometric, so the reference voltage cancels). One read of each per loop iteration, summed; every report
period the means become p (hundredths of kPa) and t (hundredths of a degree C), so a few LSB of ADC noise
do not make them jump. A pressure loop outside 3.6..21 mA, a thermistor open or shorted, or t outside
-50..150 C make the input invalid (flag PT_FAULT): no standard flow, and the standard totaliser stops.
Gas safety does not depend on it (no fault bit, no state change).

Standard flow = flow x (p / base_kpa) x (base_K / T_K) (ideal gas). The correction is a Q14 integer (16384
= 1.0) made once a report period; the standard totaliser adds the actual totaliser's increments of every
loop iteration times it, with the remainder carried, so with P and T at base it counts exactly the actual
totaliser's pulses. Everything in the loop stays in small ints (< 2**30, no allocation on the RP2040) while
the correction is below 4 (p under 4 x base_kpa) and a loop iteration adds under 16384 thousandths.
The Beta equation (math.log) runs only in configure(), into a 129-entry table over the ADC's range that the
loop interpolates: within 0.07 C of the equation over -30..100 C, 0.3 C over -40..125 C (10 k / 3950 / 10 k).
"""

from array import array

from compat import const

_MEGA = const(1000000)
_ONE = const(16384)        # the correction 1.0 in Q14
_SHIFT = const(9)          # table step: 512 of the 65536 read_u16 levels
_STEP = const(512)
_MA_LOW = const(3600)      # uA: the pressure loop's band, as the methane input's
_MA_HIGH = const(21000)
_T_LOW = const(-5000)      # hundredths of a degree C
_T_HIGH = const(15000)
_T_CLAMP = const(30000)    # table entries are held within +-300 C (an array of 16-bit ints)
_KELVIN = const(27315)     # 0 C in hundredths of a kelvin


def ntc_table(r25, beta, series):
    """Temperature (hundredths of a degree C, clamped to +-300 C) at read_u16 levels 0, 512, ... 65536."""
    import math

    tab = array("h", bytes(2 * (65536 // _STEP + 1)))
    for i in range(len(tab)):
        level = i * _STEP
        x = 0.5 if level < 1 else (65534.5 if level > 65534 else float(level))  # the rails: 0 or infinite ohms
        r = series * x / (65535 - x)
        t = 1 / (1 / 298.15 + math.log(r / r25) / beta) - 273.15
        t = int(round(t * 100))
        tab[i] = -_T_CLAMP if t < -_T_CLAMP else (_T_CLAMP if t > _T_CLAMP else t)
    return tab


class Process:
    """p_adc: the pressure shunt's ADC; t_adc: the thermistor divider's. Results after each update():
    p_x100, t_x100, valid, corr (Q14; scale() applies it); the standard totaliser std_m * 10^6 + std_r."""

    def __init__(self, p_adc, t_adc):
        self.p_adc = p_adc
        self.t_adc = t_adc
        self.p_x100 = 0
        self.t_x100 = 0
        self.valid = False
        self.why = 0                # why not valid: 0 no reading yet, 1 the pressure loop, 2 the thermistor
        self.seen = False           # one report period measured
        self.ua = 0                 # the pressure loop's mean current (uA)
        self.corr = 0
        self.std_m = 0
        self.std_r = 0
        self._carry = 0
        self._psum = 0
        self._tsum = 0
        self._n = 0
        self._tm = -1               # the actual totaliser seen last iteration (-1: not yet)
        self._tr = 0
        self.table = array("h")     # configure() fills it

    @property
    def std_x1000(self):
        return self.std_m * _MEGA + self.std_r

    @std_x1000.setter
    def std_x1000(self, value):
        self.std_m = value // _MEGA
        self.std_r = value % _MEGA

    def configure(self, s):
        self.vref_mv = s["adc_vref_mv"]
        self.shunt_ohm = s["shunt_ohm"]   # the pressure loop's own resistor, of the methane shunt's value
        self.p_min = int(round(s["p_min_kpa"] * 100))
        span = int(round(s["p_max_kpa"] * 100)) - self.p_min
        self._sq = span // 16000           # span * (ua - 4000) // 16000 in two small-int parts
        self._sr = span % 16000
        self.base_p = int(round(s["base_kpa"] * 100))
        self.base_k = int(round(s["base_c"] * 100)) + _KELVIN
        self.table = ntc_table(s["ntc_r25_ohm"], s["ntc_beta"], s["ntc_series_ohm"])

    def sample(self, flow):
        """One loop iteration: one read of each input, and the standard totaliser follows `flow`'s."""
        self._psum += self.p_adc.read_u16()
        self._tsum += self.t_adc.read_u16()
        self._n += 1
        m = flow.total_m
        r = flow.total_r
        if self._tm < 0:
            self._tm = m
            self._tr = r
            return
        d = (m - self._tm) * _MEGA + r - self._tr
        self._tm = m
        self._tr = r
        if d <= 0 or not self.valid:   # nothing counted (or the totaliser was set back): nothing to add
            return
        c = self.corr
        acc = (d & 0x3FFF) * c + self._carry
        add = (d >> 14) * c + (acc >> 14)
        self._carry = acc & 0x3FFF
        t = self.std_r + add
        if t >= _MEGA:
            self.std_m += t // _MEGA
            t %= _MEGA
        self.std_r = t

    def update(self):
        """End of a report period: the means into p, t and the correction. Returns True when `valid`
        changed, or the first period found the input failed (the controller sends a PT event)."""
        n = self._n
        was = self.valid if self.seen else True
        if not n:
            return False
        self.seen = True
        p16 = self._psum // n
        t16 = self._tsum // n
        self._psum = self._tsum = self._n = 0
        x = p16 * (self.vref_mv // 10)                      # <= 65535 * 500
        uv = x // 65535 * 10000 + x % 65535 * 10000 // 65535
        ua = uv // self.shunt_ohm
        i = t16 >> _SHIFT
        tab = self.table
        a = tab[i]
        t = a + (tab[i + 1] - a) * (t16 & (_STEP - 1)) // _STEP
        self.ua = ua
        self.t_x100 = t
        if ua < _MA_LOW or ua > _MA_HIGH:
            self.why = 1
            self.valid = False
        elif t < _T_LOW or t > _T_HIGH:
            self.why = 2
            self.valid = False
        else:
            d = ua - 4000
            p = self.p_min + self._sq * d + self._sr * d // 16000
            self.p_x100 = p if p > 0 else 0
            bp = self.base_p
            fp = self.p_x100 // bp * _ONE + self.p_x100 % bp * _ONE // bp   # p / base_p in Q14
            ft = self.base_k * _ONE // (t + _KELVIN)                          # base_K / T_K in Q14
            self.corr = (fp >> 14) * ft + ((fp & 0x3FFF) * ft >> 14)
            self.valid = True
            self.why = 0
        return self.valid != was

    def problem(self):
        """What is wrong with the input (text for the PT event and status), or how it reads."""
        from protocol import fixed

        if self.why == 1:
            return "pressure loop %s mA (3.60..21.00)" % fixed(self.ua, 3)
        if self.why == 2:
            return "thermistor %s (%s C, -50..150)" % ("open" if self.t_x100 < 0 else "shorted",
                                                      fixed(self.t_x100, 2))
        if not self.seen:
            return "no reading yet"
        return "%s kPa, %s C" % (fixed(self.p_x100, 2), fixed(self.t_x100, 2))

    def scale(self, v):
        """v (>= 0) x the correction."""
        c = self.corr
        return (v >> 14) * c + ((v & 0x3FFF) * c >> 14)

    def status(self, flow_x1000, total_x1000, unit):
        """The console's status lines for the process conditions (unit: the actual flow unit)."""
        from protocol import fixed

        std = "N" + unit
        total = "std total %s %s" % (fixed(self.std_x1000, 3), std[:-4])
        if not self.valid:
            return ("P/T FAILED (%s): no standard flow" % self.problem(),
                    "flow %s %s, std flow --, total %s %s, %s (stopped)" % (
                        fixed(flow_x1000, 3), unit, fixed(total_x1000, 3), unit[:-4], total))
        return ("pressure %s kPa, temperature %s C (base %s kPa, %s C)" % (
            fixed(self.p_x100, 2), fixed(self.t_x100, 2), fixed(self.base_p, 2), fixed(self.base_k - _KELVIN, 2)),
                "flow %s %s = %s %s, total %s %s, %s" % (
            fixed(flow_x1000, 3), unit, fixed(self.scale(flow_x1000), 3), std, fixed(total_x1000, 3), unit[:-4], total))
