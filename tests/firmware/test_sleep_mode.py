"""main.py's sleep between loop iterations (setting `sleep`, issue 12 s.4) on CPython: which mechanism it picks
per port and link, and that light sleep with early wake-ups (every pulse edge ends a lightsleep on rp2) never
sleeps past the next iteration, feeds the watchdog every iteration and loses no pulse. The same firmware on the
emulated RP2040 port: tests/rp2040/test_sleep_on_rp2040.py."""

import random

import fwkit
import machine
import main
import pytest

WAKE_US = 430  # what one lightsleep took beyond the ms asked for on the emulated RP2040 (docs/safety.md s.3)


class FakeMachine:
    """machine as the rp2 port has it, for sleeper(): only lightsleep matters."""

    def lightsleep(self, ms):
        raise AssertionError("not called in these choice tests")


class Sleepy:
    """A board rig whose simulated clock sleeps: sleep_ms/sleep_us advance it exactly, lightsleep(ms) advances
    it by ms + `wake_us`, or ends at the next scheduled edge (fired then, as the IRQ handler runs on waking)."""

    def __init__(self, overrides=None, wake_us=WAKE_US, edges=()):
        self.rig = fwkit.Rig(overrides)
        self.clock = self.rig.clock
        self.clock.sleep_ms = self.sleep_ms
        self.clock.sleep_us = self.sleep_us
        self.wake_us = wake_us
        self.edges = list(edges)  # (t_us, pin name), ascending
        self.calls = []  # ("light", ms) / ("ms", ms) / ("us", us)

    def sleep_ms(self, ms):
        self.calls.append(("ms", ms))
        self._fire_until(self.clock.us + ms * 1000)

    def sleep_us(self, us):
        self.calls.append(("us", us))
        self._fire_until(self.clock.us + us)

    def lightsleep(self, ms):
        assert ms >= 2, ms  # lightsleep(1) or less is only a delay on rp2: LightSleep never asks for it
        self.calls.append(("light", ms))
        end = self.clock.us + ms * 1000 + self.wake_us
        if self.edges and self.edges[0][0] < end:
            t, name = self.edges.pop(0)
            self.clock.us = t
            self.rig.pin(name).edge()
            self.clock.us = min(t + self.wake_us, end)
            return
        self.clock.us = end

    def _fire_until(self, end):
        while self.edges and self.edges[0][0] < end:  # awake: edges are counted as they come
            t, name = self.edges.pop(0)
            self.clock.us = t
            self.rig.pin(name).edge()
        self.clock.us = end


def test_sleeper_picks_lightsleep_only_on_rp2_over_usb():
    rig = Sleepy().rig
    ctl = rig.ctl
    nap = main.sleeper(ctl, "usb", "rp2", FakeMachine())
    assert isinstance(nap, main.LightSleep)
    # the UART link: lightsleep gates its clock; esp32: pulses and UART input are lost in its light sleep;
    # CPython and the unix port: no lightsleep (the twin's machine has none either)
    assert main.sleeper(ctl, "uart", "rp2", FakeMachine()) == ctl.clock.sleep_ms
    assert main.sleeper(ctl, "usb", "esp32", FakeMachine()) == ctl.clock.sleep_ms
    assert main.sleeper(ctl, "usb", "linux", machine) == ctl.clock.sleep_ms
    assert not hasattr(machine, "lightsleep")
    assert main.sleeper(ctl, "usb", "rp2", machine) == ctl.clock.sleep_ms
    rig.close()


@pytest.mark.parametrize("setting", [None, 0])
def test_sleep_0_or_no_sleep_key_sleeps_with_sleep_ms_unchanged(setting):
    s = Sleepy()
    ctl = s.rig.ctl
    if setting is None:
        ctl.s.pop("sleep", None)  # settings from before the key existed
    else:
        ctl.s["sleep"] = setting
    nap = main.LightSleep(ctl, s.lightsleep)
    for _ in range(5):
        nap(ctl.step())
    assert s.calls and all(kind == "ms" for kind, _ in s.calls), s.calls
    assert [ms for _, ms in s.calls] == [ctl.period_ms - 0] * 5  # the sim clock spends nothing in step()
    s.rig.close()


def test_light_sleep_sleeps_to_the_deadline_in_pieces_and_never_past_it():
    rng = random.Random(3)
    for wake_us in (0, WAKE_US, main._WAKE_US):  # up to the margin LightSleep keeps for waking
        for _ in range(200):
            ms = rng.randrange(0, 501)
            start = 5_000_000
            edges = sorted((start + rng.randrange(0, ms * 1000 + 1), "flow_pulse") for _ in range(rng.randrange(0, 40)))
            s = Sleepy(wake_us=wake_us, edges=edges)
            s.rig.ctl.s["sleep"] = 1
            s.clock.us = start
            main.LightSleep(s.rig.ctl, s.lightsleep)(ms)
            assert s.clock.us == start + ms * 1000, (ms, wake_us, s.calls)  # exactly due: not late, not early
            lights = [v for kind, v in s.calls if kind == "light"]
            assert all(kind != "ms" for kind, _ in s.calls)
            if ms >= 3 + wake_us // 1000 and not edges:
                assert len(lights) == 1  # one sleep for the whole wait when nothing wakes it
            assert sum(v for kind, v in s.calls if kind == "us") < 2000 + main._WAKE_US  # the short tail only
            s.rig.close()


def test_light_sleep_loop_keeps_the_period_the_watchdog_and_every_pulse():
    """30 simulated s of the whole controller with sleep 1: ~1 kHz of flow pulses wake it ~1000 times a
    second; every iteration starts when due, each feeds the watchdog, no pulse is lost, and gas over the
    power-off level at a random instant cuts the relay in the next iteration."""
    rng = random.Random(12)
    start = 1_000_000
    n_edges = 30_000
    t, edges = start, []
    for _ in range(n_edges):
        t += rng.randrange(600, 1400)  # ~1 kHz, irregular
        edges.append((t, "flow_pulse"))
    s = Sleepy({"sleep": 1, "k_pulses_per_l": 0.0, "k_pulses_per_m3": 10.0}, edges=edges)
    rig, ctl = s.rig, s.rig.ctl
    nap = main.sleeper(ctl, "usb", "rp2", FakeMachine())
    nap.lightsleep = s.lightsleep
    wdt = machine.WDT.last
    starts = []
    cut_at = start + rng.randrange(10_000_000, 20_000_000)
    gas_on = latency_us = None
    while s.clock.us < t + 2_000_000:
        if gas_on is None and s.clock.us >= cut_at:
            assert ctl.alarm.relay == 1  # power on until the gas comes
            gas_on = s.clock.us
            rig.set_pct(2.0)  # over coal_face power-off (1.50 %)
        starts.append(s.clock.us)
        feeds = wdt.feeds
        nap(ctl.step())
        assert wdt.feeds == feeds + 1
        if gas_on is not None and latency_us is None and ctl.alarm.relay == 0:
            latency_us = starts[-1] - gas_on
    gaps = {b - a for a, b in zip(starts, starts[1:], strict=False)}
    assert gaps == {ctl.period_ms * 1000}, sorted(gaps)[:3] + sorted(gaps)[-3:]
    assert nap.naps > 0.9 * n_edges  # each edge in a lightsleep ended it early (a few came in the awake tails)
    assert latency_us is not None and 0 <= latency_us <= ctl.period_ms * 1000, latency_us
    assert rig.pin("relay").value() == 0
    assert round(ctl.flow.total_x1000 / 100) == n_edges  # K = 10 / m3: one pulse is 100 thousandths
    rig.close()
