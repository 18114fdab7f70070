"""Alert policy: board transitions at once, advisory model alerts with hysteresis and hold-off, link and
sequence alerts, unique ids, and a saved state that a restarted service resumes from."""

from typing import NamedTuple

from hypothesis import given, settings
from hypothesis import strategies as st

from edge.config import PolicyConfig
from edge.frames import FAULT_NAMES, STATES, Gap, Reading
from edge.policy import Policy


def reading(state="NORMAL", ch4=0.5, relay=1, faults=0, flags=0, seq=1, device="b1"):
    return Reading(device, seq, seq * 1000, ch4, "VOL", 10.0, "m3/min", 1.0, state, relay, faults, flags)


class Res(NamedTuple):
    score: float
    threshold: float = 1.0
    anomalous: bool = False
    forecast: float = 0.5
    top_channel: str = "ch4"
    ready: bool = True


def kinds(alerts):
    return [(a.kind, a.state) for a in alerts]


def test_board_transitions_are_alerts_at_once_with_readings_and_unique_ids():
    p = Policy("mine", "pi", model_version="1.0")
    assert p.on_reading(reading(), 1.0) == []
    out = p.on_reading(reading("ALARM", 1.2), 2.0)
    assert kinds(out) == [("alarm", "raised")]
    a = out[0].to_dict()
    assert a["severity"] == "critical" and a["readings"]["ch4"] == 1.2 and a["site"] == "mine" and a["device"] == "b1"
    assert a["time"].endswith("Z") and not a["advisory"]
    assert p.on_reading(reading("ALARM", 1.3), 3.0) == []  # same state: nothing
    out = p.on_reading(reading("POWEROFF", 1.6, relay=0), 4.0)
    assert kinds(out) == [("power_off", "raised"), ("alarm", "cleared")]
    out = p.on_reading(reading("POWEROFF", 0.9, relay=0, flags=0x04), 5.0)
    assert out == []  # acknowledgement awaited is state, not a new alert
    out = p.on_reading(reading("FAULT", None, relay=0, faults=0x0009, flags=0x03), 6.0)
    # the fault takes over with the relay still off: the power-off is not "cleared" (power is still cut)
    assert kinds(out) == [("fault", "raised"), ("low_flow", "raised"), ("calibration_due", "raised")]
    assert out[0].details["faults"] == ["LINE", "STUCK"]
    out = p.on_reading(reading(), 7.0)
    assert kinds(out) == [("power_off", "cleared"), ("fault", "cleared"), ("low_flow", "cleared"),
                          ("calibration_due", "cleared")]
    assert out[0].message == "b1: power restored (state NORMAL)"
    ids = [a.id for a in p.on_reading(reading("WARNING"), 8.0) + p.on_reading(reading(), 9.0)]
    assert len(set(ids)) == 2


def test_anomaly_needs_consecutive_samples_clears_with_hysteresis_and_holds_off():
    cfg = PolicyConfig(anomaly_raise_samples=3, anomaly_clear_samples=2, anomaly_clear_ratio=0.8,
                       anomaly_holdoff_samples=5)
    p = Policy("s", "e", cfg, model_version="2.1")
    assert p.on_score("b1", Res(5.0, ready=False), 0) == []  # warming up: ignored
    out = []
    for t, score in enumerate([1.5, 1.5, 0.5, 1.5, 1.5, 1.5, 1.6, 0.9, 0.85, 0.7, 0.7, 1.5, 1.5, 1.5]):
        out += p.on_score("b1", Res(score), t)
    # raised once at the 3rd consecutive sample over 1.0; 0.9/0.85 are inside the hysteresis band;
    # cleared after two samples under 0.8; the burst right after is inside the hold-off
    assert kinds(out) == [("anomaly", "raised"), ("anomaly", "cleared")]
    d = out[0].details
    assert d["score"] == 1.5 and d["threshold"] == 1.0 and d["model_version"] == "2.1" and d["top_channel"] == "ch4"
    assert out[0].advisory and out[0].severity == "warning"
    later = []
    for t in range(20, 26):
        later += p.on_score("b1", Res(2.0), t)
    assert kinds(later) == [("anomaly", "raised")]


def test_forecast_early_warning_only_for_vol_boards():
    p = Policy("s", "e", PolicyConfig(anomaly_raise_samples=2, forecast_ch4_vol_pct=1.0))
    out = []
    for t in range(3):
        out += p.on_score("b1", Res(0.1, forecast=1.3), t, forecast_ok=True)
        out += p.on_score("b2", Res(0.1, forecast=1.3), t, forecast_ok=False)
    assert [(a.device, a.kind, a.state) for a in out] == [("b1", "forecast", "raised")]


def test_link_lost_restored_frames_lost_reboot_and_silence():
    p = Policy("s", "e", PolicyConfig(frames_lost_holdoff_s=10, silent_after_s=5))
    first = p.on_link("/dev/ttyACM0", False, "cannot open", 0.0)  # no board heard there yet: named after the port
    assert [(a.device, a.kind, a.state) for a in first] == [("ttyACM0", "link", "raised")]
    assert [(a.device, a.state) for a in p.on_frame("pico-9", "/dev/ttyACM0", 0.5)] == [("ttyACM0", "cleared")]
    p.on_frame("b1", "/dev/ttyUSB1", 1.0)
    assert kinds(p.on_link("/dev/ttyUSB1", False, "read failed", 2.0)) == [("link", "raised")]
    assert p.on_link("/dev/ttyUSB1", True, "open", 3.0) == []  # cleared when frames arrive, not on open
    assert kinds(p.on_frame("b1", "/dev/ttyUSB1", 3.5)) == [("link", "cleared")]
    assert kinds(p.on_gap("b1", Gap(3, False, False), 4.0)) == [("frames_lost", "raised")]
    assert p.on_gap("b1", Gap(2, False, False), 5.0) == []  # inside the hold-off: counted
    assert p.on_gap("b1", Gap(0, True, False), 5.5)[0].kind == "reboot"
    later = p.tick(14.5)  # silent for > 5 s (both boards), and the held-back count goes out
    assert sorted((a.device, a.kind) for a in later) == [("b1", "frames_lost"), ("b1", "link"), ("pico-9", "link")]
    assert [a.details.get("lost") for a in later if a.kind == "frames_lost"] == [2]


def test_saved_state_means_a_restarted_policy_neither_repeats_nor_forgets():
    p = Policy("s", "e")
    p.on_reading(reading("ALARM", 1.2), 1.0)
    saved = p.saved_state()
    q = Policy("s", "e", saved=saved)
    assert q.on_reading(reading("ALARM", 1.2), 2.0) == []
    assert kinds(q.on_reading(reading(), 3.0)) == [("alarm", "cleared")]


def test_a_link_alert_named_after_a_port_is_cleared_after_a_restart_when_a_board_speaks():
    p = Policy("s", "e")
    p.on_link("/dev/serial/by-id/usb-Board_e661-if00", False, "cannot open", 0.0)
    q = Policy("s", "e", saved=p.saved_state())
    out = q.on_frame("pico-1", "/dev/serial/by-id/usb-Board_e661-if00", 1.0)
    assert [(a.device, a.kind, a.state) for a in out] == [("usb-Board_e661-if00", "link", "cleared")]


_STATES = list(STATES)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_STATES), st.sampled_from([0, 1, 0x10]), st.integers(0, 3)),
                min_size=1, max_size=40), st.integers(0, 39))
def test_board_alerts_alternate_and_follow_the_last_reading_even_across_a_restart(steps, restart_at):
    p = Policy("s", "e")
    alerts = []
    for i, (state, faults, flags) in enumerate(steps):
        if i == restart_at:
            p = Policy("s", "e", saved=p.saved_state())
        alerts += p.on_reading(reading(state, faults=faults, flags=flags, seq=i), float(i))
    per = {}
    for a in alerts:
        if "was" in a.details:  # the faults changed while the fault stays raised: an update of the open alert
            assert a.kind == "fault" and per["fault"][-1] == "raised" and a.details["faults"] != a.details["was"]
            assert a.details["faults"] == [n for i, n in enumerate(FAULT_NAMES) if a.readings["faults"] >> i & 1]
            continue
        per.setdefault(a.kind, []).append(a.state)
    for kind, states in per.items():
        assert states == ["raised", "cleared"] * (len(states) // 2) + ["raised"] * (len(states) % 2), kind
    state, faults, flags = steps[-1]
    want = {"power_off": state == "POWEROFF", "alarm": state == "ALARM", "warning": state == "WARNING",
            "fault": state == "FAULT" or faults != 0, "low_flow": bool(flags & 2), "calibration_due": bool(flags & 1)}
    for kind, on in want.items():
        assert (per.get(kind, ["cleared"])[-1] == "raised") == on, kind


def test_power_off_then_over_range_fault_is_one_power_off_not_a_storm():
    p = Policy("mine", "pi")
    p.on_reading(reading(), 0.0)
    out = []
    for i in range(6):   # an outburst past full scale: POWEROFF and FAULT (RANGE) alternate, relay off
        out += p.on_reading(reading("POWEROFF", 3.9, relay=0, seq=2 * i + 1), 1.0 + 2 * i)
        out += p.on_reading(reading("FAULT", 4.3, relay=0, faults=0x4, seq=2 * i + 2), 2.0 + 2 * i)
    assert [k for k in kinds(out) if k[0] == "power_off"] == [("power_off", "raised")]
    # FAULT -> FAULT with other faults: the open fault alert is raised again saying which are present now, and
    # the power-off stays raised (the relay is still off)
    out = p.on_reading(reading("FAULT", None, relay=0, faults=0x1, seq=20), 20.0)
    assert [(a.kind, a.state, a.details) for a in out] == [("fault", "raised", {"faults": ["LINE"], "was": ["RANGE"]})]
    assert out[0].message == "b1: board fault now LINE (was RANGE)"
    assert p.on_reading(reading("FAULT", None, relay=0, faults=0x1, seq=21), 21.0) == []  # same faults: nothing
    # after a reboot the board is in WARMUP with the relay off: the clear says so, not "power restored"
    out = p.on_reading(reading("WARMUP", None, relay=0, seq=1), 21.0)
    cleared = [a for a in out if a.kind == "power_off"]
    assert cleared and cleared[0].message == "b1: gas power-off over (state WARMUP)"
