"""The alarm levels the page draws each board's readings against (the board decides; these only draw lines).

The frames do not carry a board's levels, so the control room takes them from control.toml: a board listed
in [[boards]] with its profile or its own levels, otherwise the firmware's profile for its unit
(`default_profile` for % vol boards, `plant` for % LEL). PROFILES is the firmware's table
(firmware/alarm.py, in hundredths there); tests/control/test_levels.py checks the two agree.
"""

from __future__ import annotations

from typing import NamedTuple


class Levels(NamedTuple):
    unit: str  # "VOL" or "LEL"
    warning: float  # in unit; equal to alarm where the profile has no separate warning
    alarm: float
    poweroff: float
    source: str  # where these came from, shown on the board page


# name: (unit, warning, alarm, power-off) as firmware/alarm.py PROFILES (which counts hundredths)
PROFILES: dict[str, tuple[str, float, float, float]] = {
    "coal_face": ("VOL", 1.00, 1.00, 1.50),
    "return_airway": ("VOL", 1.00, 1.00, 1.00),
    "heading_face": ("VOL", 1.00, 1.00, 1.50),
    "intake_air": ("VOL", 0.50, 0.50, 0.50),
    "drainage": ("VOL", 2.50, 2.50, 2.50),
    "plant": ("LEL", 10.0, 20.0, 20.0),
}


def of_profile(name: str, source: str) -> Levels:
    unit, warn, alarm, off = PROFILES[name]
    return Levels(unit, warn, alarm, off, source)


def levels_for(cfg, site: str, device: str, unit: str | None) -> Levels:
    """The levels to draw for one board (cfg: control.config.Config)."""
    for b in cfg.boards:
        if b.site == site and b.device == device:
            if b.profile:
                return of_profile(b.profile, f"control.toml: profile {b.profile}")
            warn = b.warning_pct if b.warning_pct >= 0 else b.alarm_pct
            return Levels(unit or "VOL", warn, b.alarm_pct, b.poweroff_pct, "control.toml: levels of this board")
    if unit == "LEL":
        return of_profile("plant", "profile plant (the board reports % LEL)")
    return of_profile(cfg.default_profile, f"profile {cfg.default_profile} (control.toml default_profile)")
