"""What survives a reboot besides the settings: totalisers, calibration age and the power-off latch.

They live in runtime.json (store.py). The latch is written whenever it changes (a reboot is no
acknowledgement); the totalisers and the calibration age at most every total_save_s (flash wear). The
standard totaliser (std_total_x1000, auxiliary.py's) came after 0.1.0: a file without it counts from 0,
unreported, and a board without a P/T input keeps the value it found.
"""

from store import Store


class Runtime:
    """flow: its totaliser is kept; alarm: its power-off latch is kept."""

    def __init__(self, root, flow, alarm):
        self.store = Store(root, "runtime")
        self.flow = flow
        self.alarm = alarm
        self.auxiliary = None   # auxiliary.Auxiliary (set by the controller): its total_x1000 is kept too
        self.raw: dict = {}     # runtime.json as last read or written
        self.cal_age_s = 0
        self.cal_pending = False   # a span calibration not saved yet: its age starts when it is (saved)
        self._cal_ms = 0
        self._saved_total = 0
        self._saved_cal_age = 0
        self._saved_latch = False
        self._save_due_s = 0

    def load(self, calibrated, cal_due_s):
        """Read runtime.json. Values that are missing or not counts are reported; an unknown calibration age
        counts as due (never as a fresh calibration). -> text for a SETTINGS event, or None."""
        raw, problem = self.store.load_raw()
        bad = []
        for key in ("total_x1000", "cal_age_s"):
            v = raw.get(key) if isinstance(raw, dict) else None
            if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
                if key == "cal_age_s":
                    self.cal_age_s = v
                else:
                    self.flow.total_x1000 = v
            else:
                bad.append(key)
        self.raw = raw if isinstance(raw, dict) else {}
        v = self.raw.get("std_total_x1000")
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            v = 0
        self.raw["std_total_x1000"] = v
        if self.auxiliary is not None:
            self.auxiliary.total_x1000 = v
        # a power-off latched before a reset stays latched: a reboot is no acknowledgement. A runtime file
        # that exists but cannot be read may have held one: latched too (safe side).
        if isinstance(raw, dict) and raw.get("latched") or problem and " missing" not in problem:
            self.alarm.latched = True
        lost = bool(bad) and (raw is not None or calibrated)
        if "cal_age_s" in bad and calibrated:
            self.cal_age_s = cal_due_s
        text = None
        if lost or (problem and " missing" not in problem):
            text = problem or "runtime.json"
            if bad:
                text += "; no %s: %s" % (" or ".join(bad), "calibration due" if calibrated and
                                         "cal_age_s" in bad else "counting from 0")
        self._saved_total = self.flow.total_x1000
        self._saved_cal_age = self.cal_age_s
        self._saved_latch = self.alarm.latched
        return text

    def count(self, n):
        """n seconds of uptime passed: the calibration ages (in whole minutes, so the loop rarely adds)."""
        self._cal_ms += n * 1000
        if self._cal_ms >= 60000:
            self.cal_age_s += self._cal_ms // 1000
            self._cal_ms = 0

    def saved(self):
        """The settings were saved: a pending calibration starts its age now."""
        if self.cal_pending:
            self.cal_pending = False
            self.cal_age_s = 0
            self._cal_ms = 0

    def due(self, t, period):
        """Should runtime.json be written now (uptime t in s)? The latch at once, the rest every period s."""
        a = self.alarm
        if a.latched != self._saved_latch and not a.auto:  # auto-restore: a reboot needs no ack anyway
            return True
        if t >= self._save_due_s:
            self._save_due_s = t + period
            return self.flow.total_x1000 != self._saved_total or self.cal_age_s != self._saved_cal_age
        return False

    def save(self):
        """Write runtime.json. -> None, or the text of a SETTINGS event when flash refused it."""
        latched = self.alarm.latched
        a = self.auxiliary
        v = None if a is None else a.total_x1000
        data = {"total_x1000": self.flow.total_x1000, "cal_age_s": self.cal_age_s, "latched": 1 if latched else 0,
                "std_total_x1000": self.raw.get("std_total_x1000", 0) if v is None else v}
        try:
            self.store.save(data)
            self.raw = data
            self._saved_total = self.flow.total_x1000
            self._saved_cal_age = self.cal_age_s
            self._saved_latch = latched
        except (OSError, ValueError) as exc:
            self._saved_latch = self.alarm.latched   # reported once, not retried every iteration
            return "runtime save failed: %s" % exc
        return None
