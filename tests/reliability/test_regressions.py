"""Regression tests for the bugs the reliability attacks found in other modules (one test per fix)."""

import binascii

import pytest

from edge.config import load
from edge.errors import ConfigError, ModelError
from edge.frames import BadFrame, Event, Reading, parse
from tests.helpers import board_event, board_line


def test_a_device_id_of_only_dashes_and_underscores_is_read_as_the_board_allows_it():
    # the board's settings accept device_id "--" (1-16 of A-Z a-z 0-9 _ -); the edge used to reject every frame
    for dev in ("-", "__", "_-_"):
        r = parse(board_line(1, ch4=0.5, device=dev, flow=1.0, flow_unit="L/min", total=1.0))
        assert isinstance(r, Reading) and r.device == dev
    e = parse(board_event(2, "_", "text"))
    assert isinstance(e, Event) and e.code == "_"


def _fw_settings():
    import importlib

    from hardware.twin.virtual import load_firmware

    load_firmware()
    return importlib.import_module("settings")


def test_a_checksummed_settings_file_of_deeply_nested_json_falls_back_instead_of_crashing_the_boot(tmp_path):
    settings = _fw_settings()
    body = "[" * 100_000
    (tmp_path / "settings.json").write_text(f"{body}\n{binascii.crc32(body.encode()):08x}\n")
    values, problem = settings.Store(str(tmp_path)).load()  # used to raise RecursionError: the board never booted
    assert values == settings.defaults() and "bad JSON" in problem


def test_a_number_setting_written_as_a_string_is_the_wrong_type_not_silently_converted(tmp_path):
    settings = _fw_settings()
    good = settings.defaults()
    for bad in ("1234", "\uff19"):  # "９" (full-width nine) used to load as warmup_s = 9 with no fault
        values = dict(good, warmup_s=bad)
        settings.Store(str(tmp_path)).save(values)
        loaded, problem = settings.Store(str(tmp_path)).load()
        assert loaded["warmup_s"] == good["warmup_s"] and "warmup_s has the wrong type" in problem


def test_edge_toml_nested_too_deep_is_a_config_error_not_a_traceback(tmp_path):
    path = tmp_path / "edge.toml"
    path.write_text("site = " + "[" * 100_000)
    with pytest.raises(ConfigError, match="nested too deep"):
        load(path)


@pytest.mark.parametrize(("key", "value", "words"), [
    ("mean", "[1" + "0" * 400 + ", 0]", "finite"),   # OverflowError: int too large to convert to float
    ("sample_period_s", "1" + "0" * 400, "> 0"),
    ("std", "[" * 50_000, "not valid JSON"),          # RecursionError
    ("units", "[1, 2]", "strings"),                   # used to pass; the edge then failed on units[i].replace
    ("window", "true", "integer"),                    # a JSON true used to pass as window = 1
    ("warmup", "false", "integer"),
    ("residual_std", "1", "list"),                    # a plain number used to raise TypeError (len of int)
])
def test_model_metadata_attacks_are_model_errors_naming_the_key(key, value, words):
    from models.features import ModelSpec
    from models.runtime import Model

    props = Model().spec.to_metadata()
    props[key] = value
    with pytest.raises(ModelError, match=key) as info:
        ModelSpec.from_metadata(props)
    assert words in str(info.value)


@pytest.mark.parametrize("text", ["__", "1_0", "1e3", " 7", "7 ", "+7", "nan", "0x10", ".", "-", "--1", "1.2.3"])
def test_a_number_setting_takes_plain_digits_only(text):
    # MicroPython's int("__") is 0: `set supply_min_mv __` used to switch the brown-out check off; CPython took
    # "1_0" as 10 (found by differential fuzzing on the MicroPython binary)
    settings = _fw_settings()
    for key in ("supply_min_mv", "display", "flow_low_per_min", "ch4_alarm_pct"):
        with pytest.raises(ValueError, match=key):
            settings.parse(key, text)
    assert settings.parse("flow_low_per_min", "12.5") == 12.5 and settings.parse("supply_min_mv", "0") == 0


def test_a_console_line_with_a_control_character_is_refused_on_both_interpreters():
    from fuzz import console_target

    rig = console_target.rig()
    for line in (b"\x1c", b"status\x1f", b"get\x0bpin"):  # CPython's split() took these as spaces
        replies = rig.send(line)
        assert [f.status for f in replies] == ["ERR"] and "control character" in replies[0].text
    assert [f.status for f in rig.send(b"get\tpin")] == ["OK"]  # a tab still separates words


def test_an_advisory_alert_of_an_earlier_frame_is_not_committed_after_a_later_board_alarm(edge_config, monkeypatch):
    # the soak found it: the batch's model call comes after the batch's board alerts, so a forecast for a frame
    # read at t=.274 went out after the alarm of a frame read at t=.308 (service.process now orders by time)
    from edge.config import parse_config
    from edge.policy import Policy
    from edge.service import Service

    svc = Service(parse_config(edge_config(None, [])))
    real = Policy._scored  # what frame() calls for each score, appending to the batch's list

    def scored(self, device, res, t, forecast_ok, out):
        real(self, device, res, t, forecast_ok, out)
        if t == 100.0:  # the first frame's score: an advisory alert, as the model may give
            out.append(self._alert(device, "forecast", "raised", t, "test forecast"))

    monkeypatch.setattr(Policy, "_scored", scored)
    try:
        alerts = svc.process([("p", board_line(1, ch4=0.9, flow=1.0, total=1.0), 100.0),
                              ("p", board_line(2, "ALARM", ch4=1.2, flow=1.0, total=1.0), 100.5)])
    finally:
        svc.outbox.close()
    assert [(a.kind, a.time) for a in alerts] == [("forecast", 100.0), ("alarm", 100.5)]


def test_a_line_whose_first_field_only_starts_with_fd1_is_refused():
    # found by atheris: "$FD1*bf$FD1,C,..." with a valid CRC passed the version check and became a reply
    line = b"$FD1*bf$FD1,C,WcdHuc89c3c,1,1582,ERR,b>) >101Yc_,*6b0b9892"
    with pytest.raises(BadFrame, match="first field"):
        parse(line)
