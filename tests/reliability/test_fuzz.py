"""Short fuzz runs of every parser that meets outside input (the long run is `make fuzz`), plus hypothesis.

Each target's oracle is written from the documents (protocol, settings schema, config fields, model
metadata), not from the parser: a crash, a hang, a bad input accepted or a good one refused fails the test.
"""

import importlib
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.frames import REASONS
from fuzz import engine
from fuzz.run import TARGETS

SHORT = int(os.environ.get("FIREDAMP_FUZZ_SHORT", "3000"))
SEED = int(os.environ.get("FIREDAMP_FUZZ_SEED", "20261125"))


@pytest.mark.parametrize("name", list(TARGETS))
def test_short_fuzz_run_finds_no_crash_hang_or_violation(name):
    stats = engine.run(importlib.import_module(TARGETS[name]), SHORT, seed=SEED)
    report = "\n".join(stats.lines())
    assert stats.ok, report
    assert stats.inputs == SHORT
    # the generator reaches past the first checks: some inputs are accepted, several different reasons refuse
    assert stats.accepted > SHORT // 50 and len(stats.rejected) >= 5, report


def test_the_frame_fuzzer_reaches_every_reject_reason_of_the_protocol():
    stats = engine.run(importlib.import_module(TARGETS["frames"]), SHORT, seed=SEED)
    assert set(stats.rejected) == set(REASONS), stats.rejected


def test_the_frame_oracle_catches_a_parser_that_takes_nan(monkeypatch):
    """The oracle itself can fail: a parser that lets 'nan' through as a gas reading is caught."""
    from edge import frames
    from fuzz import frames_target

    real = frames._decimal

    def lenient(s, lo, hi, name):
        return float(s) if s.lower() == "nan" else real(s, lo, hi, name)

    monkeypatch.setattr(frames, "_decimal", lenient)
    line = frames.seal("$FD1,R,b1,1,1000,nan,VOL,1.000,L/min,1.000,NORMAL,1,0000,00")
    stats = engine.run(frames_target, 0, inputs=[line])
    assert stats.violation_count == 1 and "plain decimal" in stats.violations[0][1]


def test_the_console_oracle_catches_a_command_that_changes_settings_and_answers_err(monkeypatch):
    from fuzz import console_target

    rig = console_target.rig()

    def bad_lock(args, now):
        rig.ctl.s["warmup_s"] = 899  # a change ...
        rig.ctl.console._err("refused")  # ... reported as refused

    monkeypatch.setattr(rig.ctl.console, "cmd_lock", bad_lock)
    stats = engine.run(console_target, 0, inputs=[b"lock"])
    rig.ctl.s["warmup_s"] = 0
    assert stats.violation_count == 1 and "settings changed" in stats.violations[0][1]


_quick = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_quick
@given(st.binary(max_size=300))
def test_any_bytes_as_the_board_settings_file(data):
    from fuzz import settings_target

    settings_target.check(data)  # raises Violation (or crashes) on a broken promise


@_quick
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=300))
def test_any_text_as_edge_toml(text):
    from fuzz import config_target

    config_target.check(text.encode())


@_quick
@given(st.binary(max_size=80))
def test_any_bytes_as_a_console_command(data):
    from fuzz import console_target

    console_target.check(data)


@_quick
@given(st.dictionaries(st.sampled_from(["schema", "features", "units", "mean", "std", "window", "threshold",
                                        "residual_std", "forecast_feature", "warmup", "form"]),
                       st.text(max_size=40) | st.from_regex(r"\[-?[0-9]{1,5}(, ?-?[0-9.e]{1,8}){0,2}\]", fullmatch=True),
                       max_size=6))
def test_any_change_to_the_model_metadata(changes):
    from fuzz import model_target

    props = model_target.base()
    props.update(changes)
    model_target.check(props)
