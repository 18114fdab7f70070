"""Boot and on-demand self-test: pulses buzzer, beacon and relay one loop period each and checks the relay.

The self-test never energises the relay: at boot (no valid reading yet, so no power) the relay step keeps
it off and checks that it is off; on demand the relay only gets a short OFF pulse if it is energised.
With `relay_sense` wired, the relay's auxiliary contact (closed to GND when energised) must follow.
"""

# one loop iteration each: (output, level)
STEPS = (("buzzer", 1), ("buzzer", 0), ("beacon", 1), ("beacon", 0), ("relay", 1), ("relay", 0))
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
        if i >= len(STEPS):
            self.step = 0
            self.failed = bool(self.problem)
            self.finished = True
            self.boot = False
            out = relay
        else:
            self.step += 1
            what, level = STEPS[i]
            out = relay
            if what == "relay":
                if level == 1:
                    out = 0  # an OFF pulse (at boot the relay is off already): never an ON pulse
            else:
                (self.buzzer if what == "buzzer" else self.beacon).value(level)
        self._driven = out
        return out
