"""Calibration console on the serial link: one command per line, answered by C frames ending OK or ERR.

help, status, get [key] and log work at any time; set, profile, cal, ack, selftest, save, factory-reset
(commands.py's: those that change the board) need `unlock <pin>` first (it lapses after unlock_timeout_s of
silence). A refused command changes nothing and its one-line ERR says what is wrong and the allowed range.
State changes leave a record (records.txt).

commands.py is imported by the first line that is not one of the console's own commands, not at start, and
dropped again whenever the console is locked (`lock`, the unlock timeout, or a refused line): it is used only
in maintenance, and loaded it holds ~5 KB of heap (bench/firmware_loop.py measures the free heap at start,
while unlocked with it loaded, and after the console locked again).
"""

import sys

import records
import settings
from bits import fault_names
from compat import const
from methane import RAW_UNITS
from protocol import MAX_COMMAND, STATES, fixed

_MAX_BAD_PINS = const(3)
_LOCKOUT_MS = const(60000)
_LOG_LINES = const(10)


class Console:
    """Reads command lines from the controller's stream and answers them; the commands that change the
    board are commands.py's, which answer through this console's _reply, _err, _nargs and _show."""

    def __init__(self, ctl):
        self.ctl = ctl
        self.errors = 0            # commands answered ERR
        self.failures = 0          # commands that raised (counted, answered ERR; the loop goes on)
        self.buf = bytearray(MAX_COMMAND)
        self.n = 0
        self.overflow = False
        self._last_ms = 0
        self._bad_pins = 0
        self._lockout_ms = 0
        self._unlocked = False

    # ---- replies ---------------------------------------------------------------------------------
    def _reply(self, status, text):
        """One reply; text too long for one frame goes first in MORE lines (cut at spaces), so the allowed
        values are never cut off; the last line carries the status."""
        f = self.ctl.frames   # C frames: the console's own lines, no change to the board
        room = f.room()
        while len(text) > room:
            cut = text.rfind(" ", 0, room)
            if cut <= 0:
                cut = room
            f.text(b"C", "MORE", text[:cut])
            text = text[cut:].lstrip()
        f.text(b"C", status, text)

    def _err(self, text):
        self.errors += 1
        self._reply("ERR", text)

    def _nargs(self, args, lo, hi, usage):
        if lo <= len(args) <= hi:
            return True
        self._err("usage: " + usage)
        return False

    def _show(self, key):
        """`key=value` as `get` shows it: the pin hidden, numbers with 2 places (3 from 1000 up)."""
        v = self.ctl.s[key]
        if key == "pin":
            return "pin=(hidden)"
        if isinstance(v, float):
            return "%s=%.2f" % (key, v) if v < 1000 else "%s=%.3f" % (key, v)
        return "%s=%s" % (key, v)

    # ---- the lock --------------------------------------------------------------------------------
    def lock(self):
        self._unlocked = False
        sys.modules.pop("commands", None)   # its ~5 KB back to the heap; the next maintenance line re-imports it

    def unlocked(self, now):
        if self._unlocked:
            timeout = self.ctl.s["unlock_timeout_s"] * 1000
            if self.ctl.clock.ticks_diff(now, self._last_ms) > timeout:
                self.lock()
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
                    self._err("line longer than %d bytes, discarded" % MAX_COMMAND)
                elif self.n:
                    line = bytes(self.buf[: self.n])
                    self.n = 0
                    self._last_ms = now
                    try:
                        self.run(line, now)
                    except Exception as exc:  # noqa: BLE001 - a console bug must not stop the safety loop
                        self.failures += 1
                        self._err("command failed (%s); check with status and get" % type(exc).__name__)
            elif self.n < MAX_COMMAND:
                self.buf[self.n] = b
                self.n += 1
            else:
                self.overflow = True

    # ---- dispatch --------------------------------------------------------------------------------
    def run(self, raw, now):
        """Run one command line (bytes)."""
        try:
            line = raw.decode()
        except UnicodeError:
            self._err("not ASCII text")
            return
        for ch in line:
            if ord(ch) > 126:
                self._err("not ASCII text")
                return
            if ord(ch) < 32 and ch != "\t":  # CPython's split() takes some as spaces, MicroPython's does not
                self._err("control character 0x%02x in the line" % ord(ch))
                return
        words = line.split()
        if not words:
            return
        cmd = words[0].lower()
        args = words[1:]
        name = "cmd_" + cmd.replace("-", "_")
        handler = getattr(self, name, None)
        if handler is not None:
            handler(args, now)
            return
        import commands  # not at start (~5 KB of heap): a board nobody unlocks never loads it (see above)

        handler = getattr(commands, name, None)   # one that changes the board: unlocked only
        if handler is None:
            self._err("unknown command '%s' (help lists the commands)" % cmd[:20])
        elif not self.unlocked(now):
            self._err("locked: unlock <pin> first (%s changes the board)" % cmd)
        else:
            handler(self, args, now)
        if not self._unlocked:
            self.lock()

    # ---- commands that work at any time ----------------------------------------------------------
    def cmd_help(self, args, now):
        for line in ("commands: help, status, get [key], log, unlock <pin>, lock",
                     "after unlock: set <key> <value>, profile <name>, cal zero, cal span <pct>",
                     "after unlock: ack, selftest, save, factory-reset",
                     "profiles: " + ", ".join(settings.PROFILE_NAMES)):
            self._reply("MORE", line)
        self._reply("OK", "state-changing commands need unlock <pin>; errors say the allowed range")

    def cmd_status(self, args, now):
        c = self.ctl
        m = c.methane
        a = c.alarm
        gas = fixed(m.x100, 2) if m.valid else "--"
        self._reply("MORE", "state %s, relay %s, profile %s" % (STATES[a.state], a.relay, c.s["profile"]))
        self._reply("MORE", "gas %s %%%s, front end %s, raw %d %s" % (gas, c.unit, c.s["front_end"], m.raw,
                                                                      RAW_UNITS[m.front]))
        self._reply("MORE", "levels: alarm %s, power-off %s, restore below %s%s" % (
            fixed(a.alarm, 2), fixed(a.poweroff, 2), fixed(a.restore, 2),
            ", auto-restore" if a.auto else ", needs ack"))
        ln = "flow %s %s, total %s %s" % (fixed(c.flow.rate_x1000, 3), c.flow_unit, fixed(c.flow.total_x1000, 3),
                                          c.flow_unit[:-4])
        x = c.auxiliary
        for ln in ((ln,) if x is None else x.lines(ln)):   # with P/T and battery: more lines
            self._reply("MORE", ln)
        self._reply("MORE", "faults %s" % fault_names(c.faults))
        t = c.runtime.cal_age_s
        due = c.cal_due_s - t
        cal = "calibrated" if m.calibrated else "NOT calibrated (nominal)"
        self._reply("MORE", "%s, age %d h, due %s" % (
            cal, t // 3600, "NOW" if due <= 0 or not m.calibrated else "in %d h" % (due // 3600)))
        self._reply("OK", "uptime %d s, %s, %s" % (
            c.uptime_ms() // 1000, "unsaved changes" if c.dirty else "saved",
            "unlocked" if self.unlocked(now) else "locked"))

    def cmd_get(self, args, now):
        if not self._nargs(args, 0, 1, "get [key]"):
            return
        if args:
            if args[0] not in settings.KEYS:
                self._err("unknown key '%s' (get lists the keys)" % args[0][:24])
                return
            self._reply("OK", self._show(args[0]))
            return
        for key in settings.KEYS:
            self._reply("MORE", self._show(key))
        self._reply("OK", "%d settings" % len(settings.KEYS))

    def cmd_log(self, args, now):
        count, last = records.last(self.ctl.records_path, _LOG_LINES)
        if not count:
            self._reply("OK", "no records yet")
            return
        for ln in last:
            self._reply("MORE", ln)
        self._reply("OK", "%d records (last %d shown)" % (count, len(last)))

    def cmd_unlock(self, args, now):
        if not self._nargs(args, 1, 1, "unlock <pin>"):
            return
        diff = self.ctl.clock.ticks_diff
        # 0 <= : a week later ticks_diff has wrapped (2**30 ms) and would lock the console out for days
        if self._bad_pins >= _MAX_BAD_PINS and 0 <= diff(now, self._lockout_ms) < _LOCKOUT_MS:
            self._err("too many wrong pins: wait %d s" % ((_LOCKOUT_MS - diff(now, self._lockout_ms)) // 1000))
            return
        if args[0] != self.ctl.s["pin"]:
            self._bad_pins += 1
            self._lockout_ms = now
            self._err("wrong pin (4..8 digits; %d tries before a 60 s wait)" % max(0, _MAX_BAD_PINS - self._bad_pins))
            return
        self._bad_pins = 0
        self._unlocked = True
        self._reply("OK", "unlocked for %d s of silence" % self.ctl.s["unlock_timeout_s"])

    def cmd_lock(self, args, now):
        self.lock()
        self._reply("OK", "locked")
