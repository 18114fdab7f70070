"""Calibration console on the serial link: one command per line, answered by C frames ending OK or ERR.

help, status, get [key] and log work at any time; set, profile, cal, ack, selftest, save, factory-reset
need `unlock <pin>` first (it lapses after unlock_timeout_s of silence). A refused command changes nothing
and its one-line ERR says what is wrong and the allowed range. State changes leave a record (records.txt).
"""

import protocol
import settings

try:
    from micropython import const
except ImportError:
    def const(x):  # type: ignore[misc,no-redef]
        return x

_MAX = const(64)           # bytes per command line
_MAX_BAD_PINS = const(3)
_LOCKOUT_MS = const(60000)
_LOG_LINES = const(10)

HELP = (
    "commands: help, status, get [key], log, unlock <pin>, lock",
    "after unlock: set <key> <value>, profile <name>, cal zero, cal span <pct>",
    "after unlock: ack, selftest, save, factory-reset",
    "profiles: " + ", ".join(settings.PROFILE_NAMES),
)
_LOCKED_CMDS = ("set", "profile", "cal", "ack", "selftest", "save", "factory-reset")


class Console:
    def __init__(self, ctl):
        self.ctl = ctl
        self.buf = bytearray(_MAX)
        self.n = 0
        self.overflow = False
        self.commands = 0
        self.errors = 0
        self._unlocked = False
        self._last_ms = 0
        self._bad_pins = 0
        self._lockout_ms = 0

    def unlocked(self, now):
        if self._unlocked:
            timeout = self.ctl.s["unlock_timeout_s"] * 1000
            if self.ctl.clock.ticks_diff(now, self._last_ms) > timeout:
                self._unlocked = False
        return self._unlocked

    def poll(self, now):
        """Read what the stream has (never blocks) and run each complete line."""
        data = self.ctl.stream.read()
        if not data:
            return
        for b in data:
            if b == 10 or b == 13:
                if self.overflow:
                    self.overflow = False
                    self.n = 0
                    self._err("line longer than %d bytes, discarded" % _MAX)
                elif self.n:
                    line = bytes(self.buf[: self.n])
                    self.n = 0
                    self._last_ms = now
                    self.run(line, now)
            elif self.n < _MAX:
                self.buf[self.n] = b
                self.n += 1
            else:
                self.overflow = True

    # ---- replies ---------------------------------------------------------------------------------
    def _ok(self, text):
        self.ctl.reply("OK", text)

    def _more(self, text):
        self.ctl.reply("MORE", text)

    def _err(self, text):
        self.errors += 1
        self.ctl.reply("ERR", text)

    # ---- dispatch --------------------------------------------------------------------------------
    def run(self, raw, now):
        """Run one command line (bytes)."""
        self.commands += 1
        try:
            line = raw.decode()
        except UnicodeError:
            self._err("not ASCII text")
            return
        for ch in line:
            if ord(ch) > 126:
                self._err("not ASCII text")
                return
        words = line.split()
        if not words:
            return
        cmd = words[0].lower()
        args = words[1:]
        handler = getattr(self, "cmd_" + cmd.replace("-", "_"), None)
        if handler is None:
            self._err("unknown command '%s' (help lists the commands)" % cmd[:20])
            return
        if cmd in _LOCKED_CMDS and not self.unlocked(now):
            self._err("locked: unlock <pin> first (%s changes the board)" % cmd)
            return
        handler(args, now)

    def _nargs(self, args, lo, hi, usage):
        if lo <= len(args) <= hi:
            return True
        self._err("usage: " + usage)
        return False

    # ---- commands that work at any time ----------------------------------------------------------
    def cmd_help(self, args, now):
        for line in HELP:
            self._more(line)
        self._ok("state-changing commands need unlock <pin>; errors say the allowed range")

    def cmd_status(self, args, now):
        c = self.ctl
        m = c.methane
        a = c.alarm
        gas = protocol.fixed(m.x100, 2) if m.valid else "--"
        self._more("state %s, relay %s, profile %s" % (protocol.STATES[a.state], a.relay, c.s["profile"]))
        self._more("gas %s %%%s, front end %s, raw %s" % (gas, c.unit, c.s["front_end"], m.raw_text()))
        self._more("levels: alarm %s, power-off %s, restore below %s%s" % (
            protocol.fixed(a.alarm, 2), protocol.fixed(a.poweroff, 2), protocol.fixed(a.restore, 2),
            ", auto-restore" if a.auto else ", needs ack"))
        self._more("flow %s %s, total %s %s" % (protocol.fixed(c.flow.rate_x1000, 3), c.flow_unit,
                                               protocol.fixed(c.flow.total_x1000, 3), c.flow_unit[:-4]))
        self._more("faults %s" % protocol.fault_names(c.faults))
        due = c.cal_due_s - c.cal_age_s
        cal = "calibrated" if m.calibrated else "NOT calibrated (nominal)"
        self._more("%s, age %d h, due %s" % (cal, c.cal_age_s // 3600,
                                            "NOW" if due <= 0 or not m.calibrated else "in %d h" % (due // 3600)))
        self._ok("uptime %d s, %s, %s" % (c.uptime_ms() // 1000, "unsaved changes" if c.dirty else "saved",
                                          "unlocked" if self.unlocked(now) else "locked"))

    def _show(self, key):
        v = self.ctl.s[key]
        if key == "pin":
            return "pin=(hidden)"
        if isinstance(v, float):
            return "%s=%.2f" % (key, v) if v < 1000 else "%s=%.3f" % (key, v)
        return "%s=%s" % (key, v)

    def cmd_get(self, args, now):
        if not self._nargs(args, 0, 1, "get [key]"):
            return
        if args:
            if args[0] not in settings.KEYS:
                self._err("unknown key '%s' (get lists the keys)" % args[0][:24])
                return
            self._ok(self._show(args[0]))
            return
        for key in settings.KEYS:
            self._more(self._show(key))
        self._ok("%d settings" % len(settings.KEYS))

    def cmd_log(self, args, now):
        try:
            with open(self.ctl.records_path) as f:
                lines = f.read().split("\n")
        except OSError:
            self._ok("no records yet")
            return
        lines = [ln for ln in lines if ln]
        for ln in lines[-_LOG_LINES:]:
            self._more(ln)
        self._ok("%d records (last %d shown)" % (len(lines), min(len(lines), _LOG_LINES)))

    def cmd_unlock(self, args, now):
        if not self._nargs(args, 1, 1, "unlock <pin>"):
            return
        diff = self.ctl.clock.ticks_diff
        if self._bad_pins >= _MAX_BAD_PINS and diff(now, self._lockout_ms) < _LOCKOUT_MS:
            self._err("too many wrong pins: wait %d s" % ((_LOCKOUT_MS - diff(now, self._lockout_ms)) // 1000))
            return
        if args[0] != self.ctl.s["pin"]:
            self._bad_pins += 1
            self._lockout_ms = now
            self._err("wrong pin (4..8 digits; %d tries before a 60 s wait)" % max(0, _MAX_BAD_PINS - self._bad_pins))
            return
        self._bad_pins = 0
        self._unlocked = True
        self._ok("unlocked for %d s of silence" % self.ctl.s["unlock_timeout_s"])

    def cmd_lock(self, args, now):
        self._unlocked = False
        self._ok("locked")

    # ---- commands that change the board ----------------------------------------------------------
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
        if self._change(updates, "SET", "%s %s -> %s%s" % (key, shown_old, shown_new, note)):
            self._ok("%s=%s%s (save to keep it after a reboot)" % (key, shown_new, note))

    def cmd_profile(self, args, now):
        if not self._nargs(args, 1, 1, "profile <name>"):
            return
        name = args[0]
        if name not in settings.PROFILE_NAMES:
            self._err("profile must be one of " + ", ".join(settings.PROFILE_NAMES))
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
            span = s["cal_span_raw"]
            if span and span - m.raw < min_sep:
                self._err("zero signal %d %s too close to span %d (needs <= %d)" % (m.raw, unit, span,
                                                                                 span - min_sep))
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
            c.cal_age_s = 0
            c.save_runtime()
            self._ok("span set: %d %s = %.2f %%%s; calibration age reset" % (m.raw, unit, pct, c.unit))

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
        self._unlocked = False
        c.record("FACTORY", "defaults restored (device_id kept, pin back to default)")
        self._ok("factory settings saved; calibration due; console locked")
