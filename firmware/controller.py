"""The control loop: sensors -> alarm -> relay, buzzer and beacon; frames and console on the serial stream.

One `Controller.step()` is one loop iteration at the injected clock's time (see main.py for the API).
"""

import os

import alarm
import protocol
import settings
from console import Console
from display import Display
from flow import Flow, PulseCounter
from methane import F_LINE, Methane
from selftest import SelfTest

try:
    from micropython import const
except ImportError:
    def const(x):  # type: ignore[misc,no-redef]
        return x

VERSION = "0.1.0"
F_NOFLOW = const(0x0010)
F_SETTINGS = const(0x0020)
F_SELFTEST = const(0x0040)
F_POWER = const(0x0080)
F_LOOP = const(0x0100)
_SENSOR_FAULTS = const(0x000F)  # LINE RAIL RANGE STUCK: masked during warm-up (sensors start out of band)
FLAG_CAL_DUE = const(0x01)
FLAG_FLOW_LOW = const(0x02)
FLAG_ACK = const(0x04)
FLAG_UNLOCKED = const(0x08)
_RECORDS_MAX = const(4096)     # bytes per records file (records.txt + records.txt.old on flash)
WDT_TIMEOUT_MS = const(1500)    # a hung loop cuts power through the relay's own drop-out within this


class Controller:
    """The whole board: sensors -> alarm -> relay/buzzer/beacon, frames and console on the stream."""

    def __init__(self, board, clock):
        self.board = board
        self.clock = clock
        self.stream = board.stream
        self.store = settings.Store(board.root)
        self.runtime = settings.Store(board.root, "runtime")
        self.records_path = self.store.path[: -len("settings.json")] + "records.txt"
        self.seq = 0
        self._up_s = 0
        self._up_ms = 0
        self._last = clock.ticks_ms()
        self._last_report = self._last
        self._iter = 0
        self.faults = 0
        self.flags = 0
        self.settings_fault = False
        self.selftest = SelfTest(board)
        self._relay_out = 0   # what the relay pin was driven to last (relay_sense must follow it)
        self._sense_bad = 0   # consecutive iterations in which relay_sense did not follow
        self._prev = (-1, -1, -1, -1)
        self.cal_age_s = 0
        self._cal_ms = 0
        self._saved_total = 0
        self._saved_cal_age = 0
        self._save_due_s = 0
        self.dirty = False   # settings changed and not saved
        self.flash_pause = False  # this iteration wrote flash: the next one may start late (no LOOP fault)
        self.cal_pending = False  # a span calibration not saved yet: its age starts at `save`
        self.flow_counter = PulseCounter(clock.ticks_us, clock.ticks_diff)
        self.freq_counter = PulseCounter(clock.ticks_us, clock.ticks_diff)
        board.flow_pin.irq(handler=self.flow_counter.irq, trigger=board.irq_rising, hard=True)
        board.ch4_freq_pin.irq(handler=self.freq_counter.irq, trigger=board.irq_rising, hard=True)
        self.methane = Methane(board.ch4_adc, self.freq_counter, clock.ticks_diff)
        self.flow = Flow(self.flow_counter, clock.ticks_diff)
        self.alarm = alarm.Alarm()
        self.console = Console(self)
        values, problem = self.store.load()
        self.s = values
        self.event("BOOT", "fw %s board=%s reset=%s" % (VERSION, board.name, board.reset_cause))
        if problem:
            self.settings_fault = True
            self.event("SETTINGS", problem)
        self.apply()
        self._load_runtime()
        self.display = Display(board, self.s["display"])
        if self.display.error:
            self.event("DISPLAY", self.display.error)
        self.wdt = board.watchdog(WDT_TIMEOUT_MS)

    # ---- settings --------------------------------------------------------------------------------
    def apply(self):
        """Push self.s into the parts (precomputing integers for the loop). Raises ValueError if invalid."""
        s = self.s
        unit, warn, al, off, rest, auto = alarm.profile_levels(s["profile"], s)
        self.alarm.set_levels(unit, warn, al, off, rest, auto)
        self.unit = unit
        rng = s["range_lel_pct"] if unit == "LEL" else s["range_vol_pct"]
        self.methane.configure(s["front_end"], s, int(round(rng * 100)))
        per_l = s["k_pulses_per_l"] > 0
        self.flow_unit = "L/min" if per_l else "m3/min"
        self.flow.configure(s["k_pulses_per_l"] if per_l else s["k_pulses_per_m3"], s["flow_timeout_ms"],
                            s["debounce_us"])
        self.flow_low_x1000 = int(round(s["flow_low_per_min"] * 1000))
        self.period_ms = s["loop_period_ms"]
        self.report_ms = s["report_period_ms"]
        self.warmup_s = s["warmup_s"]
        self.cal_due_s = s["cal_interval_days"] * 86400
        self.vsys_min_mv = s["supply_min_mv"]

    def _load_runtime(self):
        """Totaliser and calibration age from runtime.json. Values that are missing or not counts are
        reported; an unknown calibration age counts as due (never as a fresh calibration)."""
        raw, problem = self.runtime.load_raw()
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
        # a power-off latched before a reset stays latched: a reboot is no acknowledgement. A runtime file
        # that exists but cannot be read may have held one: latched too (safe side).
        if isinstance(raw, dict) and raw.get("latched") or problem and " missing" not in problem:
            self.alarm.latched = True
        lost = bool(bad) and (raw is not None or self.methane.calibrated)
        if "cal_age_s" in bad and self.methane.calibrated:
            self.cal_age_s = self.cal_due_s
        if lost or (problem and " missing" not in problem):
            text = problem or "runtime.json"
            if bad:
                text += "; no %s: %s" % (" or ".join(bad), "calibration due" if self.methane.calibrated and
                                         "cal_age_s" in bad else "counting from 0")
            self.event("SETTINGS", text)
        self._saved_total = self.flow.total_x1000
        self._saved_cal_age = self.cal_age_s
        self._saved_latch = self.alarm.latched

    def save_runtime(self):
        """Totaliser and calibration age (every total_save_s at most: flash wear) and the power-off latch
        (whenever it changes)."""
        self.flash_pause = True
        try:
            latched = self.alarm.latched
            self.runtime.save({"total_x1000": self.flow.total_x1000, "cal_age_s": self.cal_age_s,
                               "latched": 1 if latched else 0})
            self._saved_total = self.flow.total_x1000
            self._saved_cal_age = self.cal_age_s
            self._saved_latch = latched
        except (OSError, ValueError) as exc:
            self._saved_latch = self.alarm.latched   # reported once, not retried every iteration
            self.event("SETTINGS", "runtime save failed: %s" % exc)

    # ---- frames ----------------------------------------------------------------------------------
    def uptime_ms(self):
        return self._up_s * 1000 + self._up_ms

    def _send(self, line):
        self.seq = (self.seq + 1) & 0xFFFFFFFF
        self.stream.write(line.encode())

    def event(self, code, text):
        self._send(protocol.text("E", self.s_device(), self.seq, self.uptime_ms(), code, text))

    def reply(self, status, text):
        self._send(protocol.text("C", self.s_device(), self.seq, self.uptime_ms(), status, text))

    def s_device(self):
        s = getattr(self, "s", None)
        return s["device_id"] if s else "pico-01"

    def report(self):
        m = self.methane
        a = self.alarm
        self._send(protocol.reading(
            self.s["device_id"], self.seq, self.uptime_ms(), m.x100 if (m.valid and a.state != alarm.WARMUP)
            else None, self.unit, self.flow.rate_x1000, self.flow_unit, self.flow.total_x1000,
            protocol.STATES[a.state], a.relay, self.faults, self.flags))

    def report_now(self):
        """Send an R frame in this iteration even if state, relay, faults and flags are unchanged."""
        self._prev = (-1, -1, -1, -1)

    def record(self, code, text):
        """A state-changing console action: E frame now, and a line in records.txt (`log` shows them)."""
        text = "%s, uptime %d ms" % (text, self.uptime_ms())
        self.event(code, text)
        self.flash_pause = True
        path = self.records_path
        try:
            with open(path, "a") as f:
                f.write("%s %s\n" % (code, text))
            if os.stat(path)[6] > _RECORDS_MAX:  # rotate: records.old keeps the previous file
                try:
                    os.remove(path + ".old")
                except OSError:
                    pass
                os.rename(path, path + ".old")
        except (OSError, MemoryError) as exc:
            self.event("SETTINGS", "records.txt: %s" % exc)

    # ---- the loop --------------------------------------------------------------------------------
    def warming(self):
        return self.selftest.boot or self._up_s < self.warmup_s

    def start_selftest(self):
        self.selftest.start()

    def step(self):
        clock = self.clock
        now = clock.ticks_ms()
        dt = clock.ticks_diff(now, self._last)
        self._last = now
        if dt < 0:
            dt = 0
        ms = self._up_ms + dt
        while ms >= 1000:
            ms -= 1000
            self._up_s += 1
            self._cal_ms += 1000
        self._up_ms = ms
        st = self.selftest
        if st.boot and st.step == 0:
            st.start()
        warming = self.warming()
        m = self.methane
        m.sample(dt)
        fl = self.flow
        fl.update(dt)
        faults = m.faults
        if warming:
            faults &= ~_SENSOR_FAULTS
        elif not m.valid:
            faults |= F_LINE
        if self.settings_fault:
            faults |= F_SETTINGS
        if self.s["relay_sense"] and not st.step:
            # the auxiliary contact closes to GND when energised: it must read the opposite of the drive
            if self.board.relay_sense.value() == self._relay_out:
                if self._sense_bad < 2:
                    self._sense_bad += 1
                    if self._sense_bad == 2:   # two periods: longer than any relay takes to move
                        st.failed = True
                        st.problem = "relay sense did not follow the relay"
                        self.event("SELFTEST", st.problem)
            else:
                self._sense_bad = 0
        if st.failed:
            faults |= F_SELFTEST
        if self.s["flow_expected"] and not warming and fl.rate.idle_ms >= fl.timeout_ms:
            faults |= F_NOFLOW
        if dt > 2 * self.period_ms + 200 and not self.flash_pause:
            faults |= F_LOOP   # (a flash write of our own, after the relay was set, may take that long)
        self.flash_pause = False
        vs = self.board.vsys_adc
        if vs is not None and self.vsys_min_mv:
            if vs.read_u16() * self.board.vsys_divider * self.methane.vref_mv // 65535 < self.vsys_min_mv:
                faults |= F_POWER
        self.faults = faults
        flow_low = (not warming) and self.flow_low_x1000 > 0 and fl.rate_x1000 < self.flow_low_x1000
        a = self.alarm
        a.update(m.x100, m.valid, faults, warming, flow_low)
        # outputs: the relay follows the decision made from this very sample
        relay = a.relay
        if st.step:
            relay = st.tick(relay, self.s["relay_sense"])
            if st.finished:
                self.event("SELFTEST", st.problem or "pass")
        else:
            i = self._iter & 15
            self.board.buzzer.value((alarm.BUZZER[a.state] >> i) & 1)
            self.board.beacon.value((alarm.BEACON[a.state] >> i) & 1)
        self.board.relay.value(relay)
        self._relay_out = relay
        self.board.led.value((self._iter >> 3) & 1)
        self._iter += 1
        # calibration age and flags
        if self._cal_ms >= 60000:
            self.cal_age_s += self._cal_ms // 1000
            self._cal_ms = 0
        flags = 0
        if not m.calibrated or self.cal_age_s >= self.cal_due_s:
            flags |= FLAG_CAL_DUE
        if flow_low:
            flags |= FLAG_FLOW_LOW
        if a.ack_awaited:
            flags |= FLAG_ACK
        if self.console.unlocked(now):
            flags |= FLAG_UNLOCKED
        self.flags = flags
        # serial: console input, then state-change frames at once, else the periodic frame
        self.console.poll(now)
        if a.restored:
            self.event("RESTORE", "power restored at %s %s" % (protocol.fixed(m.x100, 2), self.unit))
        prev = self._prev
        if prev[0] != a.state or prev[1] != a.relay or prev[2] != faults or prev[3] != flags:
            self._prev = (a.state, a.relay, faults, flags)
            self.report()
            self._last_report = now
        elif clock.ticks_diff(now, self._last_report) >= self.report_ms:
            self.report()
            self._last_report = now
        # flash writes, after the relay is set: the latch at once, the totaliser and calibration age sparingly
        if a.latched != self._saved_latch and not a.auto:  # auto-restore: a reboot needs no ack anyway
            self.save_runtime()
        elif self._up_s >= self._save_due_s:
            self._save_due_s = self._up_s + self.s["total_save_s"]
            if self.flow.total_x1000 != self._saved_total or self.cal_age_s != self._saved_cal_age:
                self.save_runtime()
        d = self.display
        if d.ok:
            d.tick(self)
            if d.error:
                self.event("DISPLAY", d.error)
        self.wdt.feed()  # only reached by a loop iteration that completed
        spent = clock.ticks_diff(clock.ticks_ms(), now)
        return self.period_ms - spent if spent < self.period_ms else 0
