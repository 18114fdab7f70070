"""Short soak (the full one is `make soak`: 16 boards x 24 simulated hours): 16 virtual boards on one
`firedamp run` for half a simulated hour at 60x, the broker restarted every one or two seconds."""

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("firedamp_soak", Path(__file__).with_name("soak.py"))
soak = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(soak)

pytestmark = pytest.mark.skipif(not (shutil.which("mosquitto") or os.path.exists("/usr/sbin/mosquitto")),
                                reason="needs mosquitto")


def test_short_soak_16_boards_broker_restarts_every_alert_once_in_order_memory_flat(tmp_path):
    f = soak.soak(tmp_path / "soak", boards=16, hours=0.5, speed=60, seed=7, restart_s=(1.0, 2.5))
    print(soak.report(f))
    assert f["broker_restarts"] >= 5
    assert soak.failures(f) == [], soak.report(f)


def test_expected_alerts_follow_the_documented_alert_table():
    lines = [{"state": "WARMUP", "fault": False, "flags": 0}, {"state": "NORMAL", "fault": False, "flags": 1},
             {"state": "ALARM", "fault": False, "flags": 1}, {"state": "FAULT", "fault": True, "flags": 2},
             {"state": "NORMAL", "fault": False, "flags": 0}]
    assert soak.expected_alerts(lines) == [
        ("calibration_due", "raised"), ("alarm", "raised"), ("alarm", "cleared"), ("fault", "raised"),
        ("low_flow", "raised"), ("calibration_due", "cleared"), ("fault", "cleared"), ("low_flow", "cleared")]
