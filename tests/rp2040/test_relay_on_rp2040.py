"""Over-limit methane → relay cut on the emulated Pico, each front end, with ADC noise, times on the emulated
clock; then gas cleared, `ack` at the console, power back. A few cycles here; `make rp2040-long` runs every
profile x front end (25 each, the figures in docs/safety.md) and the 500-cycle approval run."""

import pytest

from hardware.rp2040 import relay_time
from hardware.rp2040.board import ready

# the firmware cuts the relay in the loop iteration that first reads the gas over power-off: one loop
# period (100 ms) plus that iteration's work; the frequency input needs its 50 ms counting window on top
ONE_PERIOD_MS = {"ma": 130.0, "volt": 130.0, "freq": 250.0}


@pytest.mark.parametrize(("front_end", "profile", "cycles"),
                         [("ma", "coal_face", 3), pytest.param("volt", "plant", 2, marks=pytest.mark.long),
                          ("freq", "intake_air", 2)])
def test_relay_drops_soon_after_the_crossing_and_returns_after_ack(board, front_end, profile, cycles):
    b = board(front_end, profile, seed=len(profile))
    ready(b.probe)
    result = relay_time.run(b, profile, cycles, seed=7, front_end=front_end)
    print(result.line())
    assert result.misses == []
    assert len(result.latencies_ms) == cycles
    assert max(result.latencies_ms) < ONE_PERIOD_MS[front_end], result.latencies_ms
    assert min(result.latencies_ms) > 0
    assert result.buzzer_seen == cycles  # the alarm sounded every time, not only the relay
