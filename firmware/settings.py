"""Board settings: the validated schema (keys, types, ranges, cross-field rules) and their text forms.

They live in settings.json (store.py: saved atomically with a CRC-32). Loading falls back to settings.bak,
then to the defaults; either fallback is reported (SETTINGS fault).
"""

import store
from compat import const
from methane import FRONT_ENDS, NOMINAL
from store import decode, encode  # noqa: F401 - settings.encode / decode: the file format (edge/flash.py, fuzz/)

_INT = const(0)
_FLOAT = const(1)
_STR = const(2)
_ENUM = const(3)

PROFILE_NAMES = ("coal_face", "return_airway", "heading_face", "intake_air", "drainage", "plant", "custom")
_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"

# One flat tuple, 5 items per key (key, kind, default, low, high): low/high are the length for strings,
# the choices for enums. Flat, not a tuple of rows: 34 row tuples cost ~1.7 KB of the board's heap.
SCHEMA = (
    "device_id", _STR, "pico-01", 1, 16,
    "pin", _STR, "1234", 4, 8,
    "profile", _ENUM, "coal_face", PROFILE_NAMES, None,
    "front_end", _ENUM, "ma", FRONT_ENDS, None,
    "ch4_alarm_pct", _FLOAT, 1.00, 0.10, 4.00,      # custom profile only
    "ch4_poweroff_pct", _FLOAT, 1.50, 0.10, 4.00,   # custom profile only
    "ch4_restore_pct", _FLOAT, 1.00, 0.10, 4.00,    # custom profile only
    "auto_restore", _INT, 0, 0, 1,                  # custom profile only: 1 = no acknowledgement needed
    "range_vol_pct", _FLOAT, 4.00, 1.00, 100.00,    # full scale in % CH4 (mine profiles)
    "range_lel_pct", _FLOAT, 100.00, 10.00, 100.00,  # full scale in % LEL (plant profile)
    "cal_zero_raw", _INT, 0, 0, 100000000,          # raw signal at zero gas (uV, uA or mHz); 0 = nominal
    "cal_span_raw", _INT, 0, 0, 100000000,          # raw signal at the span gas; 0 = not calibrated
    "cal_span_pct", _FLOAT, 0.0, 0.0, 100.00,       # the span gas concentration (in the profile's unit)
    "cal_interval_days", _INT, 15, 1, 15,           # regulation: re-calibrate every 15 days
    "warmup_s", _INT, 30, 0, 900,
    "stuck_s", _INT, 600, 0, 86400,                 # 0 = no stuck-sensor check
    "oversample", _INT, 16, 1, 64,
    "shunt_ohm", _INT, 150, 10, 500,
    "adc_vref_mv", _INT, 3300, 1000, 5000,
    "supply_min_mv", _INT, 4200, 0, 5500,           # 0 = no brown-out check
    "k_pulses_per_l", _FLOAT, 450.0, 0.0, 1000000.0,  # flow in L/min when > 0
    "k_pulses_per_m3", _FLOAT, 0.0, 0.0, 1000000.0,   # flow in m3/min when > 0
    "debounce_us", _INT, 50, 0, 100000,
    "flow_timeout_ms", _INT, 5000, 100, 600000,
    "flow_low_per_min", _FLOAT, 0.0, 0.0, 1000000.0,  # low-flow alarm below this (flow unit); 0 = off
    "flow_expected", _INT, 0, 0, 1,                 # 1 = no pulses for flow_timeout_ms is a NOFLOW fault
    "total_save_s", _INT, 600, 60, 86400,           # totaliser written to flash at most this often
    "loop_period_ms", _INT, 100, 20, 500,
    "report_period_ms", _INT, 1000, 100, 60000,
    "unlock_timeout_s", _INT, 300, 10, 3600,
    "display", _INT, 1, 0, 1,                       # 1 = try the SSD1306 OLED (missing is reported)
    "relay_sense", _INT, 0, 0, 1,                   # 1 = relay auxiliary contact wired to relay_sense
    "link", _ENUM, "usb", ("usb", "uart"), None,    # serial link for frames and console (at next boot)
    "uart_baud", _INT, 115200, 1200, 921600,        # with link uart (at next boot)
    # ---- added after 0.1.0 (issue 12 s.4): a settings.json without them takes their defaults silently ----
    "pt_input", _ENUM, "none", ("none", "analog"), None,  # gas pressure + temperature at the flow meter
    "p_min_kpa", _FLOAT, 0.0, 0.0, 9999.0,          # absolute kPa the transmitter gives at 4 mA
    "p_max_kpa", _FLOAT, 200.0, 1.0, 9999.0,        # ... and at 20 mA
    "ntc_r25_ohm", _INT, 10000, 100, 1000000,       # thermistor resistance at 25 C
    "ntc_beta", _INT, 3950, 1000, 10000,            # its Beta (K), from the datasheet (25/85 C)
    "ntc_series_ohm", _INT, 10000, 100, 1000000,    # divider resistor from the ADC reference to the pin
    "base_kpa", _FLOAT, 101.325, 50.0, 200.0,       # base (standard) pressure for the standard flow
    "base_c", _FLOAT, 0.0, 0.0, 40.0,               # base temperature: 0 C normal, 15/20 C "standard"
    "battery_low_mv", _INT, 0, 0, 5500,             # battery warning level; 0 = no battery (mains powered)
    "battery_cutoff_mv", _INT, 3300, 2000, 5500,    # BATTERY fault (power off) at or below this
    "battery_full_mv", _INT, 4200, 2000, 5500,      # a full battery (the run-time estimate's 100 %)
    "sleep", _INT, 0, 0, 1,                         # 1 = light sleep between loop iterations (main.py)
)
# The first 34 keys are firmware 0.1.0's: only those must be in settings.json (validate())
REBOOT_KEYS = ("link", "uart_baud")  # read by main() before the controller exists
KEYS: tuple[str, ...] = tuple(SCHEMA[i] for i in range(0, len(SCHEMA), 5))  # type: ignore[misc]


def row_of(key):
    """(key, kind, default, low, high) of `key`, or None for an unknown key."""
    for i in range(0, len(SCHEMA), 5):
        if SCHEMA[i] == key:
            return SCHEMA[i:i + 5]
    return None


def defaults():
    values = {}
    for i in range(0, len(SCHEMA), 5):  # a loop, not a dict comprehension: one function object less
        values[SCHEMA[i]] = SCHEMA[i + 2]
    return values


def allowed(key):
    """Human text of the allowed values of `key`."""
    row = row_of(key)
    if row is None:
        return "one of the keys `get` lists"
    kind, lo, hi = row[1], row[3], row[4]
    if kind == _ENUM:
        listed = ", ".join(lo)  # a long list compact, so the whole of it fits in one reply frame
        return "one of " + listed if len(listed) <= 40 else "|".join(lo)
    if kind == _STR:
        return "%d..%d characters" % (lo, hi) + (" of digits" if key == "pin" else " of A-Z a-z 0-9 _ -")
    if kind == _FLOAT:
        return "%.2f..%.2f" % (lo, hi)
    return "%d..%d" % (lo, hi)


def _plain_number(text, fraction):
    """Digits with an optional leading '-' (and one '.' if `fraction`): int()/float() alone would also take
    "1_0", "1e3", " 7", "nan", and on MicroPython even "__" (as 0), silently turning garbage into a setting."""
    digits = text[1:] if text[:1] == "-" else text
    dot = digits.find(".") if fraction else -1
    if dot >= 0:
        digits = digits[:dot] + digits[dot + 1:]
    if not digits:
        return False
    for ch in digits:
        if ch not in "0123456789":
            return False
    return True


def parse(key, text):
    """Parse and range-check one value from text. Returns the value; raises ValueError("<key> must be ...")."""
    row = row_of(key)
    if row is None:
        raise ValueError("unknown key '%s' (get lists the keys)" % key)
    kind, lo, hi = row[1], row[3], row[4]
    bad = ValueError("%s must be %s" % (key, allowed(key)))
    if kind == _ENUM:
        if text not in lo:
            raise bad
        return text
    if kind == _STR:
        if not lo <= len(text) <= hi:
            raise bad
        chars = "0123456789" if key == "pin" else _ID_CHARS
        for ch in text:
            if ch not in chars:
                raise bad
        return text
    if not _plain_number(text, kind == _FLOAT):
        raise bad
    try:
        value = float(text) if kind == _FLOAT else int(text)
    except ValueError:
        raise bad
    if not (lo <= value <= hi):  # also false for nan
        raise bad
    return value


# The cross-field rules, each with the keys it checks: validate() puts a broken rule's keys back to the defaults
_RULES = (("ch4_alarm_pct", "ch4_poweroff_pct", "ch4_restore_pct"), ("k_pulses_per_l", "k_pulses_per_m3"),
          ("cal_zero_raw", "cal_span_raw", "cal_span_pct"), ("p_min_kpa", "p_max_kpa"),
          ("battery_low_mv", "battery_cutoff_mv", "battery_full_mv", "supply_min_mv"))


def check(values):
    """Cross-field rules. Returns None or the error text (nothing is changed by the caller on error)."""
    for i in range(len(_RULES)):
        err = _rule(values, i)
        if err:
            return err
    return None


def _rule(values, i):
    """Rule i of _RULES: None, or the error text."""
    if i == 0:
        a, p, r = values["ch4_alarm_pct"], values["ch4_poweroff_pct"], values["ch4_restore_pct"]
        if not (r <= a <= p):
            return "custom profile needs ch4_restore_pct <= ch4_alarm_pct <= ch4_poweroff_pct (now %.2f, %.2f, %.2f)" % (
                r, a, p)
        return None
    if i == 1:
        if (values["k_pulses_per_l"] > 0) == (values["k_pulses_per_m3"] > 0):
            return "exactly one of k_pulses_per_l, k_pulses_per_m3 must be > 0"
        return None
    if i == 3:
        if not values["p_min_kpa"] < values["p_max_kpa"]:
            return "p_min_kpa must be < p_max_kpa"
        return None
    if i == 4:
        lo = values["battery_low_mv"]
        v = (values["supply_min_mv"], values["battery_cutoff_mv"], lo, values["battery_full_mv"])
        if lo and not (v[0] < v[1] < v[2] < v[3]):
            # the cut-off must come before the brown-out (it alarms while there is power to), and the
            # default supply_min_mv (4200) is for USB: a battery board sets it lower
            return ("a battery needs supply_min_mv < battery_cutoff_mv < battery_low_mv < battery_full_mv (now %d, %d, "
                    "%d, %d): supply_min_mv 4200 is for USB, set it lower" % v)
        return None
    # the calibration must map the signal onto the scale: zero below span by 1/20 of the nominal scale, and
    # a span gas within the range (else a reading could sit at 0.00 % whatever the gas: no alarm, ever)
    front = values["front_end"]
    nz, nf = NOMINAL[FRONT_ENDS.index(front)]
    zero, span, pct = values["cal_zero_raw"], values["cal_span_raw"], values["cal_span_pct"]
    sep = (nf - nz) // 20
    if span:
        full = values["range_lel_pct" if values["profile"] == "plant" else "range_vol_pct"]
        if not zero:
            return "cal_zero_raw must be > 0 with cal_span_raw set: use cal zero"
        if span - zero < sep:
            return "cal_span_raw must be >= cal_zero_raw + %d: use cal span" % sep
        if not 0.10 <= pct <= full:
            return "cal_span_pct must be 0.10..%.2f with cal_span_raw set: use cal span" % full
    elif zero and nf - zero < sep:
        return "cal_zero_raw must be <= %d for front_end %s (now %d): use cal zero" % (nf - sep, front, zero)
    return None


def validate(raw):
    """A dict read from a file -> (complete valid settings, list of problems). Bad keys fall back to defaults."""
    values = defaults()
    problems = []
    if not isinstance(raw, dict):
        return values, ["not a JSON object"]
    for i in range(len(KEYS)):
        key = KEYS[i]
        if key not in raw:
            if i < 34:   # a key added after 0.1.0: an older file is still good (its default, saved at the next save)
                problems.append("%s missing" % key)
            continue
        v = raw[key]
        row = row_of(key)
        try:
            if row is not None and row[1] in (_INT, _FLOAT):
                # a number must be a JSON number: a string ("1234", or a non-ASCII digit) is the wrong type
                if not isinstance(v, (int, float)) or isinstance(v, bool):
                    raise ValueError("%s has the wrong type" % key)
                values[key] = parse(key, repr(v))
            elif isinstance(v, str):
                values[key] = parse(key, v)
            else:
                raise ValueError("%s has the wrong type" % key)
        except ValueError as exc:
            problems.append(str(exc.args[0]) if exc.args else key)
    for i in range(len(_RULES)):
        err = _rule(values, i)
        if err:
            problems.append(err)
            for key in _RULES[i]:     # that group back to the defaults (uncalibrated: calibration due)
                values[key] = defaults()[key]
    return values, problems


class Store(store.Store):
    """settings.json (or another name) under `root`: the atomic file, validated against SCHEMA on load."""

    def load(self):
        """-> (valid settings, problem text or None). Never raises."""
        raw, problem = self.load_raw()
        if raw is None:
            return defaults(), problem
        values, problems = validate(raw)
        if problems:
            text = "; ".join(problems)
            problem = (problem + "; " + text) if problem else "settings.json: " + text
        return values, problem
