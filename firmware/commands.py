"""Console commands that change the board: set, profile, cal, ack, selftest, save, factory-reset.

Each either changes everything it says, leaves a record (E frame + records.txt) and answers OK, or changes
nothing and answers one ERR line with the allowed range. Console (console.py) checks the unlock first.
"""

import protocol
import settings


class Commands:
    """Replies and the state-changing commands; Console (console.py) adds line input and the rest."""

    def __init__(self, ctl):
        self.ctl = ctl
        self.errors = 0
        self._unlocked = False

    # ---- replies ---------------------------------------------------------------------------------
    def _reply(self, status, text):
        """One reply; text too long for one frame goes first in MORE lines (cut at spaces), so the allowed
        values are never cut off; the last line carries the status."""
        c = self.ctl
        # room in a frame for this device (seq and uptime with a digit to spare, the longest status)
        room = protocol.MAX_LINE - 10 - len("$FD1,C,%s,%d,%d,MORE," % (c.s_device(), c.seq * 10 + 9,
                                                                          c.uptime_ms() * 10 + 9))
        while len(text) > room:
            cut = text.rfind(" ", 0, room)
            if cut <= 0:
                cut = room
            c.reply("MORE", text[:cut])
            text = text[cut:].lstrip()
        c.reply(status, text)

    def _ok(self, text):
        self._reply("OK", text)

    def _more(self, text):
        self._reply("MORE", text)

    def _err(self, text):
        self.errors += 1
        self._reply("ERR", text)

    def _nargs(self, args, lo, hi, usage):
        if lo <= len(args) <= hi:
            return True
        self._err("usage: " + usage)
        return False

    def _show(self, key):
        v = self.ctl.s[key]
        if key == "pin":
            return "pin=(hidden)"
        if isinstance(v, float):
            return "%s=%.2f" % (key, v) if v < 1000 else "%s=%.3f" % (key, v)
        return "%s=%s" % (key, v)

    def _change(self, updates, code, text):
        """Apply a dict of new setting values all together or not at all; record on success."""
        c = self.ctl
        new = dict(c.s)
        for k in updates:
            new[k] = updates[k]
        err = settings.check(new)
        if err:
            self._err(err)
            return False
        old = c.s
        c.s = new
        try:
            c.apply()
        except ValueError as exc:
            c.s = old
            c.apply()
            self._err(str(exc))
            return False
        c.dirty = True
        c.record(code, text)
        c.report_now()
        return True

    def cmd_set(self, args, now):
        if not self._nargs(args, 2, 2, "set <key> <value>"):
            return
        key, text = args
        try:
            value = settings.parse(key, text)
        except ValueError as exc:
            self._err(str(exc.args[0]))
            return
        if key == "profile":
            self.cmd_profile([text], now)
            return
        old = self.ctl.s[key]
        updates = {key: value}
        if key == "k_pulses_per_l" and value > 0:
            updates["k_pulses_per_m3"] = 0.0
        if key == "k_pulses_per_m3" and value > 0:
            updates["k_pulses_per_l"] = 0.0
        if key == "front_end" and value != old:
            updates.update({"cal_zero_raw": 0, "cal_span_raw": 0, "cal_span_pct": 0.0})
        shown_old, shown_new = (("(hidden)", "(hidden)") if key == "pin" else
                                (self._show(key).split("=", 1)[1], text))
        note = " (calibration reset)" if "cal_span_raw" in updates and key != "cal_span_raw" else ""
        if key in settings.REBOOT_KEYS:
            note += " (takes effect at the next boot)"
        if self._change(updates, "SET", "%s %s -> %s%s" % (key, shown_old, shown_new, note)):
            self._ok("%s=%s%s (save to keep it after a reboot)" % (key, shown_new, note))

    def cmd_profile(self, args, now):
        if not self._nargs(args, 1, 1, "profile <name>"):
            return
        name = args[0]
        if name not in settings.PROFILE_NAMES:
            self._err("profile must be " + settings.allowed("profile"))
            return
        c = self.ctl
        old = c.s["profile"]
        updates = {"profile": name}
        note = ""
        if (name == "plant") != (old == "plant") and c.s["cal_span_raw"]:
            updates.update({"cal_zero_raw": 0, "cal_span_raw": 0, "cal_span_pct": 0.0})
            note = " (unit changed: calibration reset)"
        if self._change(updates, "PROFILE", "%s -> %s%s" % (old, name, note)):
            a = c.alarm
            self._ok("profile %s: alarm %s, power-off %s, restore below %s %%%s%s" % (
                name, protocol.fixed(a.alarm, 2), protocol.fixed(a.poweroff, 2), protocol.fixed(a.restore, 2),
                c.unit, note))

    def cmd_cal(self, args, now):
        if not args or args[0] not in ("zero", "span") or len(args) != (1 if args[0] == "zero" else 2):
            self._err("usage: cal zero | cal span <pct> (span gas concentration, 0.10..full scale)")
            return
        c = self.ctl
        m = c.methane
        if c.warming():
            self._err("sensor warming up: wait %d s" % max(0, c.warmup_s - c.uptime_ms() // 1000))
            return
        if m.faults & 0x0003:
            self._err("no usable signal (%s): fix the sensor line first" % protocol.fault_names(m.faults & 3))
            return
        from methane import NOMINAL, RAW_UNITS
        nz, nf = NOMINAL[m.front]
        min_sep = (nf - nz) // 20
        unit = RAW_UNITS[m.front]
        s = c.s
        if args[0] == "zero":
            span = s["cal_span_raw"] or nf   # uncalibrated: the nominal full-scale signal
            if span - m.raw < min_sep:
                self._err("zero signal %d %s too close to span %d (needs <= %d): clean air?" % (
                    m.raw, unit, span, span - min_sep))
                return
            if self._change({"cal_zero_raw": m.raw}, "CAL",
                            "zero %d -> %d %s" % (s["cal_zero_raw"], m.raw, unit)):
                self._ok("zero set at %d %s" % (m.raw, unit))
            return
        full = m.range_x100 / 100
        try:
            pct = float(args[1])
        except ValueError:
            pct = -1.0
        if not (0.10 <= pct <= full):
            self._err("span must be 0.10..%.2f (%% %s, the certified gas)" % (full, c.unit))
            return
        zero = s["cal_zero_raw"] or nz
        if m.raw - zero < min_sep:
            self._err("span signal %d %s too close to zero %d (needs >= %d)" % (m.raw, unit, zero,
                                                                                 zero + min_sep))
            return
        if self._change({"cal_zero_raw": zero, "cal_span_raw": m.raw, "cal_span_pct": pct}, "CAL",
                        "span %d -> %d %s at %.2f %s" % (s["cal_span_raw"], m.raw, unit, pct, c.unit)):
            c.cal_pending = True   # the age restarts when the calibration is saved, not before
            self._ok("span set: %d %s = %.2f %%%s; save to keep it (the 15-day count restarts then)" % (
                m.raw, unit, pct, c.unit))

    def cmd_ack(self, args, now):
        c = self.ctl
        m = c.methane
        err = c.alarm.request_ack(m.x100, m.valid, c.faults)
        if err:
            self._err(err)
            return
        c.record("ACK", "acknowledged at %s %s" % (protocol.fixed(m.x100, 2), c.unit))
        self._ok("acknowledged: power returns if the reading stays below restore")

    def cmd_selftest(self, args, now):
        self.ctl.start_selftest()
        self._ok("self-test started: a SELFTEST event follows")

    def cmd_save(self, args, now):
        c = self.ctl
        try:
            c.store.save(c.s)
        except (OSError, ValueError) as exc:
            self._err("save failed, settings unchanged on flash: %s" % exc)
            return
        c.dirty = False
        c.settings_fault = False
        if c.cal_pending:
            c.cal_pending = False
            c.cal_age_s = 0
            c._cal_ms = 0
        c.save_runtime()
        c.record("SAVE", "settings saved")
        self._ok("saved")

    def cmd_factory_reset(self, args, now):
        c = self.ctl
        new = settings.defaults()
        new["device_id"] = c.s["device_id"]
        old = c.s
        c.s = new
        c.apply()
        try:
            c.store.save(new)
        except (OSError, ValueError) as exc:
            c.s = old
            c.apply()
            self._err("factory reset failed, nothing changed: %s" % exc)
            return
        c.dirty = False
        c.settings_fault = False
        c.cal_pending = False
        self._unlocked = False
        c.record("FACTORY", "defaults restored (device_id kept, pin back to default)")
        self._ok("factory settings saved; calibration due; console locked")
