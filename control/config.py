"""control.toml: one typed, validated config for the control room, with defaults and errors that name the key.

Each section is a dataclass; a field's metadata gives its allowed range, values or pattern (built by
firedamp/config.py). Unknown keys are an error (a typo must not pass silently). `describe()` lists the
settings in effect for the start-up log, with secrets masked. See deploy/control.toml for a commented example.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from firedamp.config import SECRET_KEYS, build, choices, flatten, range_, read_toml
from firedamp.errors import ConfigError

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
_DSN_PASSWORD = re.compile(r"(password\s*=\s*|://[^:/@]*:)[^\s@]*")  # a password written in a DSN


_range, _choices = range_, choices

_TOPIC_NAME = {"pattern": _NAME, "allowed": "1–32 of A-Z a-z 0-9 _ -"}


@dataclass
class WebConfig:
    host: str = "127.0.0.1"
    port: int = field(default=8080, metadata=_range(1, 65535))
    session_hours: float = field(default=12.0, metadata=_range(0.05, 24 * 30))  # a login lasts this long
    cookie_secure: bool = False  # true when served over HTTPS (e.g. behind a TLS reverse proxy)
    login_failures: int = field(default=5, metadata=_range(1, 1000))  # per user name or address ...
    login_window_s: float = field(default=300.0, metadata=_range(1, 86400))  # ... within this: then refused
    threads_max: int = field(default=64, metadata=_range(4, 4096))  # connections served at once (each live page: 1)


@dataclass
class SourceConfig:
    kind: str = field(default="mqtt", metadata=_choices("mqtt", "jetstream"))
    host: str = "localhost"
    port: int = field(default=1883, metadata=_range(1, 65535))
    protocol: str = field(default="5", metadata=_choices("5", "3.1.1"))
    topic_prefix: str = field(default="firedamp", metadata=_TOPIC_NAME)
    client_id: str = field(default="firedamp-control-room", metadata=_TOPIC_NAME)
    username: str = ""
    password: str = ""
    password_file: str = ""
    tls: bool = False
    ca_file: str = ""
    keepalive_s: int = field(default=30, metadata=_range(5, 3600))
    reconnect_max_s: float = field(default=10.0, metadata=_range(0.1, 3600))
    # kind = "jetstream" (a NATS cluster; docs/fleet.md): the cluster's NATS URLs, the stream of the edges' QoS 0
    # subjects (made if missing), the durable consumer all replicas share, and how long a fetched message may
    # stay unacknowledged before JetStream hands it to another replica
    servers: list[str] = field(default_factory=list)
    stream: str = field(default="firedamp", metadata=_TOPIC_NAME)
    durable: str = field(default="firedamp-control-room", metadata=_TOPIC_NAME)
    ack_wait_s: float = field(default=30.0, metadata=_range(0.5, 3600))


@dataclass
class StoreConfig:
    kind: str = field(default="sqlite", metadata=_choices("sqlite", "postgresql"))
    path: str = "/var/lib/firedamp/control.sqlite"  # kind = "sqlite"
    dsn: str = ""  # kind = "postgresql": libpq DSN, e.g. "host=db1 port=5432 dbname=firedamp user=firedamp"
    password_file: str = ""  # kind = "postgresql": the database password, kept out of the DSN and the log
    raw_hours: float = field(default=48.0, metadata=_range(1, 24 * 31))  # 1 Hz readings kept this long
    minute_days: int = field(default=100, metadata=_range(90, 3650))  # per-minute min/mean/max: ≥ 3 months
    fsync: bool = True  # synchronous=FULL (PostgreSQL: synchronous_commit); false only for demos and benchmarks


@dataclass
class StaleConfig:
    board_silent_s: float = field(default=30.0, metadata=_range(2, 86400))  # no telemetry this long: "no data"
    edge_silent_s: float = field(default=120.0, metadata=_range(5, 86400))  # no message from an edge this long


@dataclass
class ShiftConfig:
    timezone: str = "UTC"  # the site's time zone (IANA name, e.g. "Europe/Warsaw")
    starts: list[str] = field(default_factory=lambda: ["06:00", "14:00", "22:00"])  # local start of each shift


@dataclass
class BoardLevels:
    """The levels a board's readings are drawn against. The board's own settings decide its state; these
    only say where the lines go (the frames do not carry the levels)."""

    site: str = field(default="", metadata={"required": True})
    device: str = field(default="", metadata={"required": True})
    profile: str = ""  # one of the firmware's profiles (control/levels.py); or give the levels:
    warning_pct: float = field(default=-1.0, metadata=_range(-1, 100))
    alarm_pct: float = field(default=-1.0, metadata=_range(-1, 100))
    poweroff_pct: float = field(default=-1.0, metadata=_range(-1, 100))


@dataclass
class Config:
    log_level: str = field(default="info", metadata=_choices("debug", "info", "warning", "error"))
    default_profile: str = "coal_face"  # levels drawn for a % vol board not listed in [[boards]]
    web: WebConfig = field(default_factory=WebConfig)
    source: SourceConfig = field(default_factory=SourceConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    stale: StaleConfig = field(default_factory=StaleConfig)
    shifts: ShiftConfig = field(default_factory=ShiftConfig)
    boards: list[BoardLevels] = field(default_factory=list)

    def password(self) -> str:
        """The broker password from `password` or `password_file` (read when needed, never logged)."""
        s = self.source
        if s.password_file:
            try:
                return Path(s.password_file).read_text().strip()
            except OSError as exc:
                raise ConfigError(f"[source] password_file {s.password_file!r}: {exc.strerror}") from exc
        return s.password

    def store_password(self) -> str | None:
        """The database password from [store] password_file (None: the DSN or libpq's own files say)."""
        if not self.store.password_file:
            return None
        try:
            return Path(self.store.password_file).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"[store] password_file {self.store.password_file!r}: {exc.strerror}") from exc

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.shifts.timezone)

    def describe(self) -> list[str]:
        """`section.key = value` lines of every setting in effect; secrets shown as *** (or <unset>)."""
        out = []
        for name, value in flatten(self):
            if name == "store.dsn":
                masked = _DSN_PASSWORD.sub(r"\1***", value)
                out.append(f"{name} = {masked!r}")
            elif name.rsplit(".", 1)[-1] in SECRET_KEYS:
                value = "***" if value else "<unset>"
                out.append(f"{name} = {value}")
            else:
                out.append(f"{name} = {value!r}")
        return out


def parse_config(data: dict[str, Any], source: str = "control.toml") -> Config:
    """A dict shaped like control.toml → a validated Config (ConfigError names the key and what is allowed)."""
    from control.levels import PROFILES

    cfg = build(Config, data, "", source)
    s = cfg.source
    if not s.host.strip() or any(c.isspace() for c in s.host):
        raise ConfigError(f"{source}: [source] host = {s.host!r} is not allowed; allowed: the broker's host name "
                          "or IP address")
    if s.kind == "jetstream" and (not s.servers or any(not re.match(r"^(nats|tls)://[^\s/]+$", u) for u in s.servers)):
        raise ConfigError(f"{source}: [source] servers = {s.servers!r} is not allowed; allowed: a list of the NATS "
                          'cluster\'s URLs, e.g. ["nats://10.0.0.1:4222", "nats://10.0.0.2:4222"]')
    if s.password and s.password_file:
        raise ConfigError(f"{source}: [source] give password or password_file, not both")
    if (s.password or s.password_file) and not s.username:
        raise ConfigError(f"{source}: [source] a password needs a username")
    if s.tls and s.ca_file and not Path(s.ca_file).is_file():
        raise ConfigError(f"{source}: [source] ca_file = {s.ca_file!r}: no such file")
    if cfg.store.kind == "postgresql" and not cfg.store.dsn.strip():
        raise ConfigError(f"{source}: [store] kind = 'postgresql' needs dsn, e.g. "
                          "\"host=db1 dbname=firedamp user=firedamp\"")
    try:
        cfg.zone()
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{source}: [shifts] timezone = {cfg.shifts.timezone!r} is not a known time zone; "
                          "allowed: an IANA name such as 'UTC' or 'Europe/Warsaw'") from None
    starts = cfg.shifts.starts
    if not starts or any(not isinstance(t, str) or not _HHMM.match(t) for t in starts):
        raise ConfigError(f"{source}: [shifts] starts = {starts!r} is not allowed; allowed: a list of local "
                          'start times "HH:MM", e.g. ["06:00", "14:00", "22:00"]')
    if sorted(starts) != starts or len(set(starts)) != len(starts):
        raise ConfigError(f"{source}: [shifts] starts = {starts!r}: list each start once, in order of the day")
    if cfg.default_profile not in PROFILES:
        raise ConfigError(f"{source}: default_profile = {cfg.default_profile!r} is not allowed; allowed: "
                          f"{', '.join(PROFILES)}")
    for i, b in enumerate(cfg.boards):
        given = [v for v in (b.alarm_pct, b.poweroff_pct) if v >= 0]
        if b.profile and b.profile not in PROFILES:
            raise ConfigError(f"{source}: [[boards]] {i}: profile = {b.profile!r} is not allowed; allowed: "
                              f"{', '.join(PROFILES)}")
        if bool(b.profile) == bool(given) or (given and len(given) != 2):
            raise ConfigError(f"{source}: [[boards]] {i} ({b.site}/{b.device}): give either profile or both "
                              "alarm_pct and poweroff_pct")
        if given and b.alarm_pct > b.poweroff_pct:
            raise ConfigError(f"{source}: [[boards]] {i}: alarm_pct must not be above poweroff_pct")
    return cfg


def load(path: str | Path) -> Config:
    """Read and validate control.toml; ConfigError names the file, key, value and what is allowed."""
    return parse_config(read_toml(path), str(Path(path)))
