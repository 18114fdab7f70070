"""edge.toml: one typed, validated config for the edge service, with defaults and errors that name the key.

Every section is a dataclass; each field's metadata gives its allowed range, values or pattern (built by
firedamp/config.py, as control.toml is). Unknown keys are an error (a typo must not pass silently). `describe()` lists the settings in effect for the start-up log,
with secrets masked. See deploy/edge.toml for a commented example.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.errors import ConfigError
from firedamp.config import SECRET_KEYS, build, choices, flatten, range_, read_toml

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$")  # safe inside an MQTT topic level
_range, _choices = range_, choices

_TOPIC_NAME = {"pattern": _NAME, "allowed": "1–32 of A-Z a-z 0-9 _ -"}


@dataclass
class BoardConfig:
    port: str = field(default="", metadata={"required": True})  # /dev/ttyACM0, /dev/serial/by-id/..., a pty
    baudrate: int = field(default=115200, metadata=_range(1200, 4_000_000))
    name: str = ""  # a label for logs (the device id comes from the frames)
    # the board's alarm profile (firmware/alarm.py PROFILES): the frames do not carry its levels, so the Modbus
    # map takes them from here
    profile: str = field(default="coal_face", metadata=_choices("coal_face", "return_airway", "heading_face",
                                                                "intake_air", "drainage", "plant"))
    modbus_unit: int = field(default=0, metadata=_range(0, 247))  # Modbus unit id; 0 = not served (docs/modbus.md)


@dataclass
class MqttConfig:
    host: str = "localhost"
    port: int = field(default=1883, metadata=_range(1, 65535))
    # several brokers (a cluster's nodes, or a spare): "host:port" each, tried in turn; the edge moves to the next
    # when its broker goes away. Instead of host/port, not with them.
    servers: list[str] = field(default_factory=list)
    client_id: str = ""  # default: firedamp-<edge id>
    username: str = ""
    password: str = ""  # prefer password_file (mode 0600) so edge.toml can be world-readable
    password_file: str = ""
    keepalive_s: int = field(default=30, metadata=_range(5, 3600))
    protocol: str = field(default="5", metadata=_choices("5", "3.1.1"))  # 5: refused alerts are noticed
    topic_prefix: str = field(default="firedamp", metadata=_TOPIC_NAME)
    tls: bool = False
    tls_required: bool = False  # refuse to start unless tls = true (never plaintext, whatever else changes)
    ca_file: str = ""  # empty with tls = true: the system CA store
    cert_file: str = ""  # client certificate (optional)
    key_file: str = ""
    reconnect_min_s: float = field(default=1.0, metadata=_range(0.05, 60))
    reconnect_max_s: float = field(default=30.0, metadata=_range(0.1, 3600))
    connect_timeout_s: float = field(default=10.0, metadata=_range(0.5, 120))
    telemetry: bool = True
    status_interval_s: float = field(default=30.0, metadata=_range(1, 3600))
    discovery: bool = True
    discovery_prefix: str = field(default="homeassistant", metadata=_TOPIC_NAME)
    max_inflight: int = field(default=20, metadata=_range(1, 1000))

    @property
    def brokers(self) -> list[tuple[str, int]]:
        """Every broker address in the order tried: `servers`, or the one `host`:`port`."""
        return [split_server(s) for s in self.servers] if self.servers else [(self.host, self.port)]


@dataclass
class ModelConfig:
    enabled: bool = True
    path: str = ""  # empty: the model shipped in models/
    threads: int = field(default=1, metadata=_range(1, 8))


@dataclass
class PolicyConfig:
    anomaly_clear_ratio: float = field(default=0.8, metadata=_range(0.1, 1.0))  # clear below ratio × threshold
    anomaly_raise_samples: int = field(default=3, metadata=_range(1, 600))  # consecutive samples over threshold
    anomaly_clear_samples: int = field(default=10, metadata=_range(1, 3600))  # consecutive samples under it
    anomaly_holdoff_samples: int = field(default=300, metadata=_range(0, 86400))  # quiet samples after a clear
    forecast_alert: bool = True
    forecast_ch4_vol_pct: float = field(default=1.0, metadata=_range(0.1, 5.0))  # early warning level, % vol
    frames_lost_holdoff_s: float = field(default=60.0, metadata=_range(0, 86400))
    silent_after_s: float = field(default=10.0, metadata=_range(1, 3600))  # no frame for this long: link lost
    max_gap_samples: int = field(default=5, metadata=_range(1, 3600))  # longer gaps restart the model state


@dataclass
class OutboxConfig:
    path: str = ""  # default <data_dir>/outbox.sqlite
    max_alerts: int = field(default=100_000, metadata=_range(10, 10_000_000))
    fsync: bool = True  # synchronous=FULL: an alert survives a power cut, not only a crash


@dataclass
class HistoryConfig:
    enabled: bool = True
    path: str = ""  # default <data_dir>/history.sqlite
    raw_days: float = field(default=7.0, metadata=_range(0.001, 3650))
    minute_days: float = field(default=400.0, metadata=_range(90, 36500))  # mine rules: ≥ 90 days


@dataclass
class MetricsConfig:
    enabled: bool = False  # Prometheus text format on http://host:port/metrics (no authentication)
    host: str = "127.0.0.1"
    port: int = field(default=9108, metadata=_range(1, 65535))


@dataclass
class ModbusConfig:
    enabled: bool = False  # read-only Modbus TCP server for a plant's DCS/PLC (docs/modbus.md)
    host: str = "0.0.0.0"
    port: int = field(default=502, metadata=_range(1, 65535))  # < 1024 needs root or CAP_NET_BIND_SERVICE
    stale_after_s: float = field(default=3.0, metadata=_range(0.5, 60))  # data-valid = 0 after this silence
    max_connections: int = field(default=64, metadata=_range(1, 4096))  # beyond: the longest-idle one is closed
    idle_timeout_s: float = field(default=60.0, metadata=_range(1, 3600))  # a connection silent this long: closed


@dataclass
class Config:
    edge_id: str = field(default="edge", metadata=_TOPIC_NAME)
    site: str = field(default="site", metadata=_TOPIC_NAME)
    data_dir: str = "/var/lib/firedamp"
    log_level: str = field(default="info", metadata=_choices("debug", "info", "warning", "error"))
    boards: list[BoardConfig] = field(default_factory=list)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    history: HistoryConfig = field(default_factory=HistoryConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    modbus: ModbusConfig = field(default_factory=ModbusConfig)

    @property
    def outbox_path(self) -> Path:
        return Path(self.outbox.path or Path(self.data_dir) / "outbox.sqlite")

    @property
    def history_path(self) -> Path:
        return Path(self.history.path or Path(self.data_dir) / "history.sqlite")

    @property
    def client_id(self) -> str:
        return self.mqtt.client_id or f"firedamp-{self.edge_id}"

    def mqtt_password(self) -> str:
        """The password from `password` or `password_file` (read when needed, never logged)."""
        if self.mqtt.password_file:
            try:
                return Path(self.mqtt.password_file).read_text().strip()
            except OSError as exc:
                raise ConfigError(f"[mqtt] password_file {self.mqtt.password_file!r}: {exc.strerror}") from exc
        return self.mqtt.password

    def describe(self) -> list[str]:
        """`section.key = value` lines of every setting in effect; secrets shown as *** (or <unset>)."""
        out = []
        for name, value in flatten(self):
            if name.rsplit(".", 1)[-1] in SECRET_KEYS:
                out.append(f"{name} = {'***' if value else '<unset>'}")
                continue
            out.append(f"{name} = {value!r}" if isinstance(value, str) else f"{name} = {value}")
        return out


def parse_config(data: dict[str, Any], source: str = "edge.toml") -> Config:
    """A dict shaped like edge.toml (top-level keys, [mqtt], [[boards]], ...) → a validated Config."""
    cfg = build(Config, data, "", source)
    seen = set()
    for i, board in enumerate(cfg.boards):
        if board.port in seen:
            raise ConfigError(f"{source}: [[boards]] {i}: port {board.port!r} is listed twice")
        seen.add(board.port)
    units = [b.modbus_unit for b in cfg.boards if b.modbus_unit]
    if len(set(units)) != len(units):
        raise ConfigError(f"{source}: [[boards]] modbus_unit {max(units, key=units.count)} is given to two boards; "
                          "allowed: a different unit id (1..247) per board")
    if cfg.modbus.enabled and not units:
        raise ConfigError(f"{source}: [modbus] enabled = true but no [[boards]] has a modbus_unit (1..247): the "
                          "server would answer every unit id with exception 0B")
    m = cfg.mqtt
    given = data.get("mqtt", {})
    if m.servers and ("host" in given or "port" in given):
        raise ConfigError(f"{source}: [mqtt] give servers, or host and port, not both")
    if "servers" in given and not m.servers:
        raise ConfigError(f"{source}: [mqtt] servers = [] names no broker; allowed: one or more \"host:port\"")
    for i, server in enumerate(m.servers):
        split_server(server, f"{source}: [mqtt] servers[{i}]")
    if len(set(m.servers)) != len(m.servers):
        raise ConfigError(f"{source}: [mqtt] servers lists a broker twice: {m.servers!r}")
    if not m.host.strip() or any(c.isspace() for c in m.host):
        raise ConfigError(f"{source}: [mqtt] host = {m.host!r} is not allowed; allowed: the broker's host name or "
                          "IP address")
    if m.reconnect_max_s < m.reconnect_min_s:
        raise ConfigError(f"{source}: [mqtt] reconnect_max_s = {m.reconnect_max_s} is below reconnect_min_s = "
                          f"{m.reconnect_min_s}; allowed: >= reconnect_min_s")
    if m.password and m.password_file:
        raise ConfigError(f"{source}: [mqtt] give password or password_file, not both")
    if (m.password or m.password_file) and not m.username:
        raise ConfigError(f"{source}: [mqtt] a password needs a username")
    if m.tls_required and not m.tls:
        raise ConfigError(f"{source}: [mqtt] tls_required = true but tls = false; refusing to send without TLS "
                          "(set tls = true and ca_file)")
    if bool(m.cert_file) != bool(m.key_file):
        raise ConfigError(f"{source}: [mqtt] cert_file and key_file go together (client certificate)")
    if m.tls:
        for key in ("ca_file", "cert_file", "key_file"):
            path = getattr(m, key)
            if path and not Path(path).is_file():
                raise ConfigError(f"{source}: [mqtt] {key} = {path!r}: no such file")
    return cfg


def split_server(text: str, where: str = "[mqtt] servers") -> tuple[str, int]:
    """"host:port" (or "[v6 address]:port") → (host, port); ConfigError saying what is wrong and where."""
    allowed = 'allowed: "host:port", e.g. "10.0.0.5:1883" or "[fd00::5]:8883"'
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or any(c.isspace() for c in host) or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ConfigError(f"{where} = {text!r} is not allowed; {allowed}")
    return host, int(port)


def join_server(host: str, port: int) -> str:
    """(host, port) → "host:port", the form `servers` takes and the log shows ("[v6]:port" for IPv6)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def load(path: str | Path) -> Config:
    """Read and validate edge.toml; ConfigError names the file, key, value and what is allowed."""
    return parse_config(read_toml(path), str(Path(path)))
