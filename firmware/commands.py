"""Console commands that change the board: set, profile, cal, ack, selftest, save, factory-reset.

Each either changes everything it says, leaves a record (E frame + records.txt) and answers OK, or changes
nothing and answers one ERR line with the allowed range. They change the board only through the
controller's own methods (change, calibrated, request_ack, save, factory_reset). Functions, not a class:
each takes the console (`con`: console.py reads the lines, checks the unlock first and has the replies
_reply, _err, _nargs and _show; `con.ctl` is the controller), the words after the command, and now.
console.py imports this module when a line first needs it, not at start (maintenance only: ~5 KB of heap).
"""

import settings
from bits import F_LINE, F_RAIL, fault_names
from methane import NOMINAL, RAW_UNITS
from protocol import fixed


def _change(con, updates, code, text):
    """Apply a dict of new setting values all together or not at all; record on success."""
    err = con.ctl.change(updates)
    if err:
        con._err(err)
        return False
    con.ctl.record(code, text)
    return True


def cmd_set(con, args, now):
    if not con._nargs(args, 2, 2, "set <key> <value>"):
        return
    key, text = args
    try:
        value = settings.parse(key, text)
    except ValueError as exc:
        con._err(str(exc.args[0]))
        return
    if key == "profile":
        cmd_profile(con, [text], now)
        return
    s = con.ctl.s
    updates = {key: value}
    if key == "k_pulses_per_l" and value > 0:
        updates["k_pulses_per_m3"] = 0.0
    if key == "k_pulses_per_m3" and value > 0:
        updates["k_pulses_per_l"] = 0.0
    if key == "front_end" and value != s[key]:
        updates.update({"cal_zero_raw": 0, "cal_span_raw": 0, "cal_span_pct": 0.0})
    shown_old, shown_new = (("(hidden)", "(hidden)") if key == "pin" else
                            (con._show(key).split("=", 1)[1], text))
    note = " (calibration reset)" if "cal_span_raw" in updates and key != "cal_span_raw" else ""
    if key in settings.REBOOT_KEYS:
        note += " (takes effect at the next boot)"
    if _change(con, updates, "SET", "%s %s -> %s%s" % (key, shown_old, shown_new, note)):
        con._reply("OK", "%s=%s%s (save to keep it after a reboot)" % (key, shown_new, note))


def cmd_profile(con, args, now):
    if not con._nargs(args, 1, 1, "profile <name>"):
        return
    name = args[0]
    if name not in settings.PROFILE_NAMES:
        con._err("profile must be " + settings.allowed("profile"))
        return
    c = con.ctl
    old = c.s["profile"]
    updates = {"profile": name}
    note = ""
    if (name == "plant") != (old == "plant") and c.s["cal_span_raw"]:
        updates.update({"cal_zero_raw": 0, "cal_span_raw": 0, "cal_span_pct": 0.0})
        note = " (unit changed: calibration reset)"
    if _change(con, updates, "PROFILE", "%s -> %s%s" % (old, name, note)):
        a = c.alarm
        con._reply("OK", "profile %s: alarm %s, power-off %s, restore below %s %%%s%s" % (
            name, fixed(a.alarm, 2), fixed(a.poweroff, 2), fixed(a.restore, 2), c.unit, note))


def cmd_cal(con, args, now):
    if not args or args[0] not in ("zero", "span") or len(args) != (1 if args[0] == "zero" else 2):
        con._err("usage: cal zero | cal span <pct> (span gas concentration, 0.10..full scale)")
        return
    c = con.ctl
    m = c.methane
    if c.warming():
        con._err("sensor warming up: wait %d s" % max(0, c.warmup_s - c.uptime_ms() // 1000))
        return
    if m.faults & (F_LINE | F_RAIL):
        con._err("no usable signal (%s): fix the sensor line first" % fault_names(m.faults & (F_LINE | F_RAIL)))
        return
    nz, nf = NOMINAL[m.front]
    min_sep = (nf - nz) // 20
    unit = RAW_UNITS[m.front]
    s = c.s
    if args[0] == "zero":
        span = s["cal_span_raw"] or nf   # uncalibrated: the nominal full-scale signal
        if span - m.raw < min_sep:
            con._err("zero signal %d %s too close to span %d (needs <= %d): clean air?" % (
                m.raw, unit, span, span - min_sep))
            return
        if _change(con, {"cal_zero_raw": m.raw}, "CAL", "zero %d -> %d %s" % (s["cal_zero_raw"], m.raw, unit)):
            con._reply("OK", "zero set at %d %s" % (m.raw, unit))
        return
    full = m.range_x100 / 100
    try:
        pct = float(args[1])
    except ValueError:
        pct = -1.0
    if not (0.10 <= pct <= full):
        con._err("span must be 0.10..%.2f (%% %s, the certified gas)" % (full, c.unit))
        return
    zero = s["cal_zero_raw"] or nz
    if m.raw - zero < min_sep:
        con._err("span signal %d %s too close to zero %d (needs >= %d)" % (
            m.raw, unit, zero, zero + min_sep))
        return
    if _change(con, {"cal_zero_raw": zero, "cal_span_raw": m.raw, "cal_span_pct": pct}, "CAL",
               "span %d -> %d %s at %.2f %s" % (s["cal_span_raw"], m.raw, unit, pct, c.unit)):
        c.calibrated()   # the age restarts when the calibration is saved, not before
        con._reply("OK", "span set: %d %s = %.2f %%%s; save to keep it (the 15-day count restarts then)" % (
            m.raw, unit, pct, c.unit))


def cmd_ack(con, args, now):
    c = con.ctl
    err = c.request_ack()
    if err:
        con._err(err)
        return
    c.record("ACK", "acknowledged at %s %s" % (fixed(c.methane.x100, 2), c.unit))
    con._reply("OK", "acknowledged: power returns if the reading stays below restore")


def cmd_selftest(con, args, now):
    con.ctl.start_selftest()
    con._reply("OK", "self-test started: a SELFTEST event follows")


def cmd_save(con, args, now):
    c = con.ctl
    err = c.save()
    if err:
        con._err(err)
        return
    c.record("SAVE", "settings saved")
    con._reply("OK", "saved")


def cmd_factory_reset(con, args, now):
    c = con.ctl
    err = c.factory_reset()
    if err:
        con._err(err)
        return
    con.lock()
    c.record("FACTORY", "defaults restored (device_id kept, pin back to default)")
    con._reply("OK", "factory settings saved; calibration due; console locked")
