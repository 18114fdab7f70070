"""control.toml: the example in deploy/ is valid; a wrong key, value or time zone is one clear error."""

from pathlib import Path

import pytest

from control.config import load, parse_config
from control.levels import PROFILES, levels_for
from edge.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_the_shipped_example_is_valid_and_says_every_section():
    cfg = load(ROOT / "deploy" / "control.toml")
    assert cfg.web.port == 8080 and cfg.store.minute_days >= 90 and cfg.shifts.starts == ["06:00", "14:00", "22:00"]
    assert any(line.startswith("source.password = ") and line.endswith(("***", "<unset>")) for line in cfg.describe())


@pytest.mark.parametrize("data, words", [
    ({"web": {"prot": 1}}, "unknown key [web] prot"),
    ({"web": {"port": 70000}}, "[web] port = 70000 is not allowed; allowed: 1..65535"),
    ({"store": {"minute_days": 30}}, "[store] minute_days = 30 is not allowed; allowed: 90..3650"),
    ({"shifts": {"timezone": "Mars/Olympus"}}, "not a known time zone"),
    ({"shifts": {"starts": ["6:00"]}}, "[shifts] starts"),
    ({"shifts": {"starts": ["14:00", "06:00"]}}, "in order of the day"),
    ({"source": {"password": "x"}}, "a password needs a username"),
    ({"default_profile": "moon"}, "default_profile = 'moon' is not allowed"),
    ({"boards": [{"site": "a", "device": "b"}]}, "give either profile or both alarm_pct and poweroff_pct"),
    ({"boards": [{"site": "a", "device": "b", "alarm_pct": 2.0, "poweroff_pct": 1.0}]}, "must not be above"),
    ({"stale": {"board_silent_s": "30"}}, "[stale] board_silent_s = '30' is not allowed; allowed: a number"),
])
def test_a_wrong_setting_names_the_key_and_what_is_allowed(data, words):
    with pytest.raises(ConfigError) as exc:
        parse_config(data, "control.toml")
    assert words in str(exc.value)


def test_broken_toml_is_one_line_naming_the_file(tmp_path):
    p = tmp_path / "control.toml"
    p.write_text("[web\nport = 1")
    with pytest.raises(ConfigError, match="control.toml: not valid TOML"):
        load(p)


def test_levels_come_from_the_board_entry_else_the_profile_for_its_unit():
    cfg = parse_config({"boards": [{"site": "mine", "device": "b7", "profile": "return_airway"},
                                   {"site": "mine", "device": "b8", "alarm_pct": 0.8, "poweroff_pct": 1.25}]})
    assert levels_for(cfg, "mine", "b7", "VOL")[1:4] == (1.0, 1.0, 1.0)
    assert levels_for(cfg, "mine", "b8", "VOL")[1:4] == (0.8, 0.8, 1.25)
    assert levels_for(cfg, "mine", "b9", "VOL")[1:4] == (1.0, 1.0, 1.5)  # coal_face
    assert levels_for(cfg, "plant", "g1", "LEL")[:4] == ("LEL", 10.0, 20.0, 20.0)


def test_the_profile_table_is_the_firmwares():
    """firmware/alarm.py PROFILES (hundredths) is the source: the control room's copy must agree with it."""
    import ast

    tree = ast.parse((ROOT / "firmware" / "alarm.py").read_text())
    table = next(ast.literal_eval(node.value) for node in ast.walk(tree) if isinstance(node, ast.Assign)
                 and any(getattr(t, "id", None) == "PROFILES" for t in node.targets))
    assert set(table) == set(PROFILES)
    for name, (unit, warn, alarm, off, _restore, _auto) in table.items():
        assert PROFILES[name] == (unit, warn / 100, alarm / 100, off / 100), name
