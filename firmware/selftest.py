"""Boot and on-demand self-test: pulses buzzer, beacon and relay one loop period each and checks the relay.

The self-test never energises the relay: at boot (no valid reading yet, so no power) the relay step keeps
it off and checks that it is off; on demand the relay only gets a short OFF pulse if it is energised.
With `relay_sense` wired, the relay's auxiliary contact (closed to GND when energised) must follow.
"""

from compat import const

# one loop iteration each: step i drives output i // 2 (buzzer, beacon, relay) on at even i, back at odd i
# (a number, not a table of (output, level) pairs: 6 small tuples cost ~250 B of heap)
_STEPS = const(6)
SENSE_PROBLEM = "relay sense did not follow the relay"


class SelfTest:
    """buzzer, beacon: the output pins it pulses; relay_sense: the relay's auxiliary contact input."""

    def __init__(self, buzzer, beacon, relay_sense):
        self.buzzer = buzzer
        self.beacon = beacon
        self.relay_sense = relay_sense
        self.step = 0            # 0 = not running, else 1 + index of the next step
        self.boot = True         # the boot self-test (part of the warm-up) has not finished yet
        self.problem = ""
        self.failed = False
        self.finished = False    # set in the iteration that finished (the caller sends SELFTEST)
        self._driven = 0

    def start(self):
        self.step = 1
        self.problem = ""

    def tick(self, relay, sense_wired):
        """One iteration while running: drives buzzer/beacon, returns the relay level to drive now."""
        self.finished = False
        i = self.step - 1
        # auxiliary contact closes to GND when energised: sense must read the opposite of what was driven
        if i > 0 and sense_wired and self.relay_sense.value() == self._driven:
            self.problem = SENSE_PROBLEM
        if i >= _STEPS:
            self.step = 0
            self.failed = bool(self.problem)
            self.finished = True
            self.boot = False
            out = relay
        else:
            self.step += 1
            level = 1 - (i & 1)
            out = relay
            if i >= 4:       # the relay
                if level == 1:
                    out = 0  # an OFF pulse (at boot the relay is off already): never an ON pulse
            else:
                (self.buzzer if i < 2 else self.beacon).value(level)
        self._driven = out
        return out
