"""The fault and flag bits of the R frame: the one table of them (docs/protocol.md and tests/vectors/ are
checked against it, as hardware/pinmap.md is against board.py).

`faults` (4 hex digits): any bit set puts the board in FAULT (relay off). `flags` (2 hex digits): states
worth showing that are not faults. The names are the edge's (edge/frames.py), so one word means one bit.
"""

from compat import const

# faults, bit 0 up; FAULT_NAMES[i] is the name of bit i
F_LINE = const(0x0001)      # 4-20 mA out of 3.6..21 mA; frequency input without pulses or out of band
F_RAIL = const(0x0002)      # ADC at a rail
F_RANGE = const(0x0004)     # reading outside the configured range (with hysteresis)
F_STUCK = const(0x0008)     # signal frozen for stuck_s (methane.py: ADC noise only; frequency unchanged)
F_NOFLOW = const(0x0010)    # no flow pulses while flow is expected
F_SETTINGS = const(0x0020)  # settings file unreadable: running on last good or defaults
F_SELFTEST = const(0x0040)  # self-test failed, or relay_sense did not follow the relay
F_POWER = const(0x0080)     # supply brown-out
F_LOOP = const(0x0100)      # control loop overran its period badly
F_BATTERY = const(0x0200)   # battery at or below battery_cutoff_mv (battery.py; clears above battery_low_mv)
FAULT_NAMES = ("LINE", "RAIL", "RANGE", "STUCK", "NOFLOW", "SETTINGS", "SELFTEST", "POWER", "LOOP", "BATTERY")
F_SENSOR = const(0x000F)    # LINE RAIL RANGE STUCK: masked during warm-up (sensors start out of band)

# flags, bit 0 up
FLAG_CALIBRATION_DUE = const(0x01)   # not calibrated, or older than cal_interval_days
FLAG_LOW_FLOW = const(0x02)          # flow below flow_low_per_min (ventilation loss)
FLAG_ACK_AWAITED = const(0x04)       # power-off latched and the reading already below restore
FLAG_CONSOLE_UNLOCKED = const(0x08)  # the console is unlocked
FLAG_PT_FAULT = const(0x10)          # pressure/temperature input failed: no standard flow (process.py)
FLAG_BATTERY_LOW = const(0x20)       # battery at or below battery_low_mv (battery.py)


def fault_names(mask):
    """0x0011 -> "LINE NOFLOW" (for status and the display)."""
    names = []
    for i in range(len(FAULT_NAMES)):
        if mask & (1 << i):
            names.append(FAULT_NAMES[i])
    return " ".join(names) if names else "none"
