"""Regulation limits named in docs/safety.md that no setting can undo."""

import importlib

import pytest

from edge.config import parse_config
from edge.errors import ConfigError
from hardware.twin.virtual import load_firmware


def test_regulation_limits_cannot_be_configured_away():
    load_firmware()
    settings = importlib.import_module("settings")
    assert settings.parse("cal_interval_days", "15") == 15
    for text in ("16", "0", "365"):  # re-calibration every 15 days at most
        with pytest.raises(ValueError, match="cal_interval_days"):
            settings.parse("cal_interval_days", text)
    assert parse_config({"history": {"minute_days": 90}}).history.minute_days == 90
    with pytest.raises(ConfigError, match="minute_days"):  # methane records: at least 90 days
        parse_config({"history": {"minute_days": 89.9}})
