"""Over-limit methane → relay cut, measured on the unchanged firmware (fake machine, simulated 10 Hz clock):
for every mine profile and the plant profile, gas steps over the power-off level at a random moment inside a
loop period, and the relay pin must drop within one period (100 ms) of that moment — the regulation allows
2 s. The figures (worst and mean latency over all trials) are printed for docs/safety.md.
"""

import importlib
import random
import tempfile

import pytest

from hardware.twin.virtual import SimClock, load_firmware

load_firmware()
machine = importlib.import_module("machine")
board = importlib.import_module("board")
fw_main = importlib.import_module("main")
settings = importlib.import_module("settings")
alarm = importlib.import_module("alarm")

RELAY_PIN = board.PINMAPS["pico"]["relay"]
TRIALS = 25


class _Sink:
    def read(self, n=256):
        return None

    def write(self, data):
        return len(data)


def counts(pct, full):
    """ADC counts of a nominal 4-20 mA sensor reading `pct` of full scale `full` (150 ohm shunt, 3.3 V)."""
    ma = 4.0 + 16.0 * pct / full
    return min(65535, int(ma * 150 * 1000 * 65535 / 3_300_000) + 1)


@pytest.mark.parametrize("profile", sorted(alarm.PROFILES))
def test_relay_drops_within_one_loop_period_of_the_gas_crossing_power_off(profile):
    unit, _warn, _al, poweroff, _restore, _auto = alarm.PROFILES[profile]
    full = 100.0 if unit == "LEL" else 4.0
    rng = random.Random(profile)
    latencies = []
    for _ in range(TRIALS):
        machine.Pin.clear()
        machine.ADC.clear()
        root = tempfile.mkdtemp(prefix="relay-time-")
        settings.Store(root).save(dict(settings.defaults(), profile=profile, warmup_s=0, display=0))
        machine.ADC.set(29, 33000)
        machine.ADC.set(26, counts(poweroff / 100 * 0.3, full))  # well below every level
        clock = SimClock(1_000_000)
        ctl = fw_main.build(board.Board("pico", stream=_Sink(), root=root), clock)
        for _ in range(20):  # past the boot self-test, power on
            ctl.step()
            clock.us += ctl.period_ms * 1000
        relay = machine.Pin.get(RELAY_PIN)
        assert relay.value() == 1, f"{profile}: relay not energised on clean air"
        cross_us = clock.us - rng.randrange(1, ctl.period_ms * 1000)  # the gas crossed inside the last period
        machine.ADC.set(26, counts(poweroff / 100 * 1.05, full))
        while relay.value() == 1:
            assert clock.us - cross_us < 2_000_000, f"{profile}: relay still on 2 s after the crossing"
            ctl.step()
            if relay.value() == 1:
                clock.us += ctl.period_ms * 1000
        latencies.append((clock.us - cross_us) / 1000)
        assert ctl.alarm.state == alarm.POWEROFF
    print(f"{profile}: over-limit -> relay off worst {max(latencies):.0f} ms, mean "
          f"{sum(latencies) / len(latencies):.0f} ms over {TRIALS} trials (loop period 100 ms)")
    assert max(latencies) <= 100.0
