"""The A frame's inputs for the controller: process conditions (process.py) and the battery (battery.py).

Imported by the controller only when a board has either (pt_input not "none", battery_low_mv > 0): a board
without them keeps their heap (and their names out of MicroPython's qstr pool) and sends the frames it sent
before. Every loop iteration: one read of each input; with each periodic R frame (report()): their means over
the period, the PT and BATTERY events, the A frame, and the bits for the controller to add to the next
iterations: `faults` (BATTERY) and `flags` (PT_FAULT, BATTERY_LOW).
"""

import bits


def build(ctl):
    """The controller's Auxiliary (named `build`, a name the firmware already has: each new name is a qstr,
    and the board is a few qstrs short of MicroPython allocating its next qstr pool, ~7 KB)."""
    return Auxiliary(ctl)


class Auxiliary:
    """ctl: the controller (its board, flow, frames, runtime and event())."""

    def __init__(self, ctl):
        self.ctl = ctl
        self.process = None   # process.Process with pt_input analog
        self.battery = None   # battery.Battery with battery_low_mv > 0 (boards with a VSYS divider)
        self.faults = 0
        self.flags = 0
        self._ms = 0

    def configure(self, s):
        b = self.ctl.board
        if s["pt_input"] != "none":
            if self.process is None:
                import process

                self.process = process.Process(b.adc("pressure_adc"), b.adc("temperature_adc"))
                self.process.std_x1000 = self.ctl.runtime.raw.get("std_total_x1000", 0)
            self.process.configure(s)
        elif self.process is not None:
            self.ctl.runtime.raw["std_total_x1000"] = self.process.std_x1000   # kept in runtime.json
            self.process = None
        if s["battery_low_mv"] and b.vsys_adc is not None:
            if self.battery is None:
                import battery

                self.battery = battery.Battery(b.vsys_adc, b.vsys_divider)
            self.battery.configure(s)
        else:
            self.battery = None
        self.period_ms = s["report_period_ms"]

    @property
    def total_x1000(self):
        """The standard totaliser (thousandths of NL or Nm3), or None without a P/T input (runtime.py)."""
        return None if self.process is None else self.process.std_x1000

    @total_x1000.setter
    def total_x1000(self, value):
        if self.process is not None:
            self.process.std_x1000 = value

    def step(self, dt):
        """One loop iteration: one read of each input. The means are taken with each periodic R frame
        (report()), or here if none went for two report periods (state changes keep sending R at once)."""
        pr = self.process
        if pr is not None:
            pr.sample(self.ctl.flow)
        if self.battery is not None:
            self.battery.sample()
        self._ms += dt
        if self._ms >= 2 * self.period_ms:
            self.update()

    def update(self):
        """The end of a measuring period: the means, the events, the bits."""
        ms = self._ms
        if not ms:
            return
        self._ms = 0
        pr = self.process
        bt = self.battery
        ctl = self.ctl
        flags = 0
        if pr is not None:
            if pr.update():
                ctl.event("PT", ("input ok: " if pr.valid else "input failed, no standard flow: ") + pr.problem())
            if not pr.valid:
                flags |= bits.FLAG_PT_FAULT
        faults = 0
        if bt is not None:
            e = bt.update(ms)
            if e:
                ctl.event("BATTERY", bt.event_text(e))
            if bt.low:
                flags |= bits.FLAG_BATTERY_LOW
            if bt.cut:
                faults |= bits.F_BATTERY
        self.flags = flags
        self.faults = faults

    def report(self):
        """After a periodic R: the means of the period it closes, then the A frame (docs/protocol.md) with
        them. Their bits go into the next iteration's R (one at once if they changed)."""
        self.update()
        pr = self.process
        bt = self.battery
        p = t = std = m = None
        r = 0
        if pr is not None:
            m = pr.std_m
            r = pr.std_r
            if pr.valid:
                p = pr.p_x100
                t = pr.t_x100
                std = pr.scale(self.ctl.flow.rate_x1000)
        self.ctl.frames.auxiliary(p, t, std, m, r, None if bt is None else bt.mv, None if bt is None else bt.run_min)

    def lines(self, flow_line):
        """The console status lines: P, T, actual and standard flow and totals (else `flow_line`, the
        console's own); the battery."""
        ctl = self.ctl
        out = [flow_line]
        if self.process is not None:
            out = list(self.process.status(ctl.flow.rate_x1000, ctl.flow.total_x1000, ctl.flow_unit))
        if self.battery is not None:
            out.append(self.battery.status())
        return out
