"""Each loop iteration's fault mask and flags (the bits of bits.py), decided from what the parts found.

The sensors report their own faults (methane.py: LINE RAIL RANGE STUCK); the board-level ones are decided
here: SETTINGS, SELFTEST (also a relay that its auxiliary contact says did not move), NOFLOW, LOOP, POWER.
"""

import bits
from selftest import SENSE_PROBLEM


class Health:
    """relay_sense: the relay's auxiliary contact pin (closed to GND when energised); vsys_adc: the supply
    through a divider of `vsys_divider` (None: no brown-out check); event(code, text) sends an E frame."""

    def __init__(self, relay_sense, vsys_adc, vsys_divider, event):
        self.relay_sense = relay_sense
        self.vsys_adc = vsys_adc
        self.vsys_divider = vsys_divider
        self.event = event
        self.settings_fault = False   # the settings file had a problem: SETTINGS until a save succeeds
        self.s: dict = {}             # the settings in effect (the controller sets them)
        self._sense_bad = 0           # consecutive iterations in which relay_sense did not follow

    def faults(self, methane, flow, selftest, warming, dt, flash_pause, relay):
        """The fault mask of this iteration. relay: what the relay was driven to in the last iteration;
        flash_pause: that iteration wrote flash, so this one may start late without a LOOP fault."""
        s = self.s
        faults = methane.faults
        if warming:
            faults &= ~bits.F_SENSOR
        elif not methane.valid:
            faults |= bits.F_LINE
        if self.settings_fault:
            faults |= bits.F_SETTINGS
        if s["relay_sense"] and not selftest.step:
            # the auxiliary contact closes to GND when energised: it must read the opposite of the drive
            if self.relay_sense.value() == relay:
                if self._sense_bad < 2:
                    self._sense_bad += 1
                    if self._sense_bad == 2:   # two periods: longer than any relay takes to move
                        selftest.failed = True
                        selftest.problem = SENSE_PROBLEM
                        self.event("SELFTEST", SENSE_PROBLEM)
            else:
                self._sense_bad = 0
        if selftest.failed:
            faults |= bits.F_SELFTEST
        if s["flow_expected"] and not warming and flow.rate.idle_ms >= flow.timeout_ms:
            faults |= bits.F_NOFLOW
        if dt > 2 * s["loop_period_ms"] + 200 and not flash_pause:
            faults |= bits.F_LOOP   # (a flash write of our own, after the relay was set, may take that long)
        vs = self.vsys_adc
        if vs is not None and s["supply_min_mv"]:
            if vs.read_u16() * self.vsys_divider * s["adc_vref_mv"] // 65535 < s["supply_min_mv"]:
                faults |= bits.F_POWER
        return faults

    def flags(self, due, flow_low, ack_awaited, unlocked):
        """The flags of this iteration; due: the calibration is due."""
        flags = 0
        if due:
            flags |= bits.FLAG_CALIBRATION_DUE
        if flow_low:
            flags |= bits.FLAG_LOW_FLOW
        if ack_awaited:
            flags |= bits.FLAG_ACK_AWAITED
        if unlocked:
            flags |= bits.FLAG_CONSOLE_UNLOCKED
        return flags
