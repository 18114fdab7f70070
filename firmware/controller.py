"""The control loop: sensors -> alarm -> relay, buzzer and beacon; frames and console on the serial stream.

One `Controller.step()` is one loop iteration at the injected clock's time (see main.py for the API). The
parts decide for themselves (methane.py, flow.py, alarm.py, health.py); this module wires them, runs them in
order, and is the one place the console changes the board through (`change`, `acknowledge`, `save`, ...).
auxiliary.py (pressure, temperature, standard flow, battery: the A frame) is imported only by a board
configured with them.
"""

import alarm
import console
import display
import flow
import health
import methane
import protocol
import records
import runtime
import selftest
import settings
from compat import const

VERSION = "0.1.0"
_WDT_TIMEOUT_MS = const(1500)   # a hung loop cuts power through the relay's own drop-out within this


class Controller:
    """The whole board: sensors -> alarm -> relay/buzzer/beacon, frames and console on the stream."""

    def __init__(self, board, clock):
        self.board = board
        self.clock = clock
        self.stream = board.stream
        self.store = settings.Store(board.root)
        self.records_path = self.store.path[: -len("settings.json")] + "records.txt"
        self.uptime = protocol.Uptime()
        self.frames = protocol.Frames(board.stream, self.uptime)
        self._last = clock.ticks_ms()
        self._last_report = self._last
        self._iter = 0
        self.faults = 0
        self.flags = 0
        self.selftest = selftest.SelfTest(board.buzzer, board.beacon, board.relay_sense)
        self.health = health.Health(board.relay_sense, board.vsys_adc, board.vsys_divider, self.event)
        self._relay_out = 0   # what the relay pin was driven to last (relay_sense must follow it)
        self._prev = (-1, -1, -1, -1)   # state, relay, faults and flags of the last R frame: a change sends one
        self.dirty = False   # settings changed and not saved
        self.flash_pause = False  # this iteration wrote flash: the next one may start late (no LOOP fault)
        self.flow_counter = flow.PulseCounter(clock.ticks_us, clock.ticks_diff)
        self.freq_counter = flow.PulseCounter(clock.ticks_us, clock.ticks_diff)
        board.flow_pin.irq(handler=self.flow_counter.irq, trigger=board.irq_rising, hard=True)
        board.ch4_freq_pin.irq(handler=self.freq_counter.irq, trigger=board.irq_rising, hard=True)
        self.methane = methane.Methane(board.ch4_adc, self.freq_counter, clock.ticks_diff)
        self.flow = flow.Flow(self.flow_counter, clock.ticks_diff)
        self.alarm = alarm.Alarm()
        self.runtime = runtime.Runtime(board.root, self.flow, self.alarm)
        self.auxiliary = None   # auxiliary.Auxiliary: pt_input not "none", or battery_low_mv > 0
        self.console = console.Console(self)
        values, problem = self.store.load()
        self.s = values
        self.frames.configure(values["device_id"], "VOL", "L/min")
        self.event("BOOT", "fw %s board=%s reset=%s" % (VERSION, board.name, board.reset_cause))
        if problem:
            self.health.settings_fault = True
            self.event("SETTINGS", problem)
        self.apply()
        problem = self.runtime.load(self.methane.calibrated, self.cal_due_s)
        if problem:
            self.event("SETTINGS", problem)
        self.display = display.Display(self.s["display"], board.i2c)
        if self.display.error:
            self.event("DISPLAY", self.display.error)
        self.wdt = board.watchdog(_WDT_TIMEOUT_MS)

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
        self.health.s = s
        self.frames.configure(s["device_id"], unit, self.flow_unit)
        self.period_ms = s["loop_period_ms"]
        self.report_ms = s["report_period_ms"]
        self.warmup_s = s["warmup_s"]
        self.cal_due_s = s["cal_interval_days"] * 86400
        if s["pt_input"] != "none" or (s["battery_low_mv"] and self.board.vsys_adc is not None):  # ESP32: none
            if self.auxiliary is None:
                import auxiliary  # not at start: a board without P/T or battery never loads it

                self.auxiliary = auxiliary.build(self)
            self.auxiliary.configure(s)
        elif self.auxiliary is not None:
            self.auxiliary.configure(s)   # hands its standard totaliser to runtime.json
            self.auxiliary = None
        self.runtime.auxiliary = self.auxiliary

    # ---- what the console may change (each: None, or why not, with nothing changed) ------------------
    def change(self, updates):
        """New values for some settings, applied all together or not at all."""
        new = dict(self.s)
        for k in updates:
            new[k] = updates[k]
        err = settings.check(new)
        if err:
            return err
        old = self.s
        self.s = new
        try:
            self.apply()
        except ValueError as exc:
            self.s = old
            self.apply()
            return str(exc)
        self.dirty = True
        self._prev = (-1, -1, -1, -1)   # an R frame in this iteration, even if nothing it shows changed
        return None

    def calibrated(self):
        """A span calibration was applied: its age restarts when it is saved."""
        self.runtime.cal_pending = True

    def request_ack(self):
        """The operator's acknowledgement of a latched power-off (applied at the next iteration)."""
        m = self.methane
        return self.alarm.request_ack(m.x100, m.valid, self.faults)

    def save(self):
        """Settings to flash (and a pending calibration starts its age)."""
        try:
            self.store.save(self.s)
        except (OSError, ValueError) as exc:
            return "save failed, settings unchanged on flash: %s" % exc
        self.dirty = False
        self.health.settings_fault = False
        self.runtime.saved()
        self.save_runtime()
        return None

    def factory_reset(self):
        """The default settings (device_id kept), saved: calibration due."""
        new = settings.defaults()
        new["device_id"] = self.s["device_id"]
        old = self.s
        self.s = new
        self.apply()
        try:
            self.store.save(new)
        except (OSError, ValueError) as exc:
            self.s = old
            self.apply()
            return "factory reset failed, nothing changed: %s" % exc
        self.dirty = False
        self.health.settings_fault = False
        self.runtime.cal_pending = False
        return None

    def start_selftest(self):
        self.selftest.start()

    def record(self, code, text):
        """A state-changing console action: E frame now, and a line in records.txt (`log` shows them)."""
        text = "%s, uptime %d ms" % (text, self.uptime_ms())
        self.event(code, text)
        self.flash_pause = True
        try:
            records.append(self.records_path, "%s %s\n" % (code, text))
        except (OSError, MemoryError) as exc:
            self.event("SETTINGS", "records.txt: %s" % exc)

    # ---- frames ----------------------------------------------------------------------------------
    def uptime_ms(self):
        return self.uptime.uptime_ms()

    def event(self, code, text):
        self.frames.text(b"E", code, text)

    def report(self):
        m = self.methane
        a = self.alarm
        fl = self.flow
        self.frames.reading(m.x100 if (m.valid and a.state != alarm.WARMUP) else None, fl.rate_x1000,
                            fl.total_m, fl.total_r, a.state, a.relay, self.faults, self.flags)

    def save_runtime(self):
        self.flash_pause = True
        problem = self.runtime.save()
        if problem:
            self.event("SETTINGS", problem)

    # ---- the loop --------------------------------------------------------------------------------
    def warming(self):
        return self.selftest.boot or self.uptime.s < self.warmup_s

    def step(self):
        clock = self.clock
        now = clock.ticks_ms()
        dt = clock.ticks_diff(now, self._last)
        self._last = now
        if dt < 0:
            dt = 0
        n = self.uptime.update(dt)
        if n:
            self.runtime.count(n)   # the calibration ages
        st = self.selftest
        if st.boot and st.step == 0:
            st.start()
        warming = self.warming()
        m = self.methane
        m.sample(dt)
        fl = self.flow
        fl.update(dt)
        x = self.auxiliary
        faults = self.health.faults(m, fl, st, warming, dt, self.flash_pause, self._relay_out)
        if x is not None:
            x.step(dt)
            faults |= x.faults   # BATTERY: not masked during warm-up
        self.flash_pause = False
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
        flags = self.health.flags(not m.calibrated or self.runtime.cal_age_s >= self.cal_due_s, flow_low,
                                  a.ack_awaited, self.console.unlocked(now))
        if x is not None:
            flags |= x.flags
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
            if x is not None:
                x.report()   # the A frame, after each periodic R only
            self._last_report = now
        # flash writes, after the relay is set: the latch at once, the totaliser and calibration age sparingly
        if self.runtime.due(self.uptime.s, self.s["total_save_s"]):
            self.save_runtime()
        d = self.display
        if d.ok:
            d.tick(self)
            if d.error:
                self.event("DISPLAY", d.error)
        self.wdt.feed()  # only reached by a loop iteration that completed
        spent = clock.ticks_diff(clock.ticks_ms(), now)
        return self.period_ms - spent if spent < self.period_ms else 0
