"""Alarm state machine: per-location profiles, latched power-off with acknowledgement, fail-safe relay, patterns.

Levels are integers in hundredths of the profile's unit (% CH4 by volume, or % LEL for the plant profile),
so the 10 Hz loop compares without floats. The relay output is 1 = energised = power allowed.
"""

from compat import const

WARMUP = const(0)
NORMAL = const(1)
WARNING = const(2)
ALARM = const(3)
POWEROFF = const(4)
FAULT = const(5)

# name: (unit, warn, alarm, power-off, restore below, auto-restore), levels in hundredths of the unit.
# Mine rows follow the coal-mine safety regulations; "plant" counts % LEL (100 % LEL = 4.4 % CH4 by volume,
# IEC 60079-20-1): low alarm 10 % LEL (WARNING), high alarm and trip 20 % LEL. Mine profiles have no separate
# warning level (warn = alarm). "custom" is filled from the ch4_*_pct settings.
PROFILES = {
    "coal_face": ("VOL", 100, 100, 150, 100, False),
    "return_airway": ("VOL", 100, 100, 100, 100, False),
    "heading_face": ("VOL", 100, 100, 150, 100, False),
    "intake_air": ("VOL", 50, 50, 50, 50, False),
    "drainage": ("VOL", 250, 250, 250, 250, False),
    "plant": ("LEL", 1000, 2000, 2000, 1000, False),
}

# Buzzer and beacon patterns: 16 steps of one loop period each (1.6 s at 10 Hz), bit i = on at step i
# (the controller drives the pins from these in every iteration that no self-test runs).
BUZZER = (0x0000, 0x0000, 0x0001, 0x0055, 0xFFFF, 0x0F0F)   # indexed by state
BEACON = (0x0101, 0x0000, 0x00FF, 0x5555, 0x3333, 0xFF00)


def profile_levels(name, settings):
    """Profile name -> (unit, warn, alarm, power-off, restore, auto) in hundredths; custom from settings."""
    if name == "custom":
        a = int(round(settings["ch4_alarm_pct"] * 100))
        return ("VOL", a, a, int(round(settings["ch4_poweroff_pct"] * 100)),
                int(round(settings["ch4_restore_pct"] * 100)), bool(settings["auto_restore"]))
    return PROFILES[name]


class Alarm:
    """Decides state and relay from one reading; call update() once per loop iteration."""

    def __init__(self):
        self.state = WARMUP
        self.relay = 0
        self.latched = False       # power-off latched (by gas or a fault) until restore + acknowledgement
        self.ack_awaited = False   # latched and the reading is already below restore
        self.restored = False      # set by update() in the iteration that restored power
        self._ack = False
        self.set_levels(*PROFILES["coal_face"])   # until the controller applies the settings' profile

    def set_levels(self, unit, warn, alarm, poweroff, restore, auto):
        if not (restore <= alarm <= poweroff and warn <= alarm):
            raise ValueError("levels need restore <= alarm <= power-off")
        self.unit = unit
        self.warn = warn
        self.alarm = alarm
        self.poweroff = poweroff
        self.restore = restore
        self.auto = auto

    def update(self, x, valid, faults, warming, flow_low):
        """One decision. x: reading in hundredths; valid: x means something; faults: bit mask."""
        self.restored = False
        ack, self._ack = self._ack, False
        if faults:
            if not warming:
                self.latched = True  # a fault cuts power and, once cleared, needs the same acknowledgement
            self.ack_awaited = False
            self.state = FAULT
            self.relay = 0
            return
        if warming or not valid:
            self.ack_awaited = False
            self.state = WARMUP
            self.relay = 0
            return
        if x >= self.poweroff:
            self.latched = True
        if self.latched:
            if x < self.restore:
                if ack or self.auto:
                    self.latched = False
                    self.restored = True
                    self.ack_awaited = False
                else:
                    self.ack_awaited = True
            else:
                self.ack_awaited = False
        if self.latched:
            self.state = POWEROFF
            self.relay = 0
        elif x >= self.alarm:
            self.state = ALARM
            self.relay = 1
        elif x >= self.warn or flow_low:
            self.state = WARNING
            self.relay = 1
        else:
            self.state = NORMAL
            self.relay = 1

    def request_ack(self, x, valid, faults):
        """Console `ack`: None if accepted (applied at the next update), else why not."""
        if faults:
            return "cannot acknowledge while a fault is active"
        if not self.latched:
            return "nothing to acknowledge (power is not latched off)"
        if not valid or x >= self.restore:
            return "reading must be below the restore level %d.%02d first" % (self.restore // 100,
                                                                          self.restore % 100)
        self._ack = True
        return None
