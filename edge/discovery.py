"""Home Assistant MQTT discovery payloads for one board (sensors read the telemetry, aux and state topics)."""

from __future__ import annotations

from typing import Any

from edge import __version__
from edge.config import Config
from edge.frames import STATES


def configs(cfg: Config, device: str, unit: str, flow_unit: str, base: str, status_topic: str,
            aux: tuple[str, bool, bool] | None = None) -> list[tuple[str, dict[str, Any]]]:
    """[(discovery topic, config payload)] for the board `device`; published retained. `aux`: (std_unit, has a
    P/T input, has a battery) for a board that sends A frames (None: it sends none, and gets no such sensors)."""
    prefix = cfg.mqtt.discovery_prefix
    node = f"firedamp_{cfg.site}_{device}".replace("-", "_").replace("@", "_")  # (HA ids: A-Z a-z 0-9 _)
    telemetry = f"{base}/{device}/telemetry"
    aux_topic = f"{base}/{device}/aux"
    state = f"{base}/{device}/state"
    dev = {"identifiers": [node], "name": f"firedamp {device}", "manufacturer": "firedamp",
           "model": "methane and flow monitor", "sw_version": __version__,
           "via_device": f"firedamp_{cfg.site}_{cfg.edge_id}".replace("-", "_")}
    availability = {
        "availability": [
            {"topic": status_topic},
            {"topic": state, "value_template": "{{ 'online' if value_json.link == 'up' else 'offline' }}"},
        ],
        "availability_mode": "all",
    }

    def entity(component: str, key: str, name: str, **extra: Any) -> tuple[str, dict[str, Any]]:
        payload = {"name": name, "unique_id": f"{node}_{key}", "object_id": f"{node}_{key}", "device": dev,
                   **availability, **extra}
        # node_id level = the site (firedamp_<site>): a broker ACL can confine each edge's discovery writes to
        # <prefix>/+/firedamp_<site>/# (deploy/mosquitto/firedamp.acl; tested in tests/reliability)
        site_node = f"firedamp_{cfg.site}".replace("-", "_")
        return f"{prefix}/{component}/{site_node}/{node[len(site_node) + 1:]}_{key}/config", payload

    def value(key: str) -> str:  # an empty A field is null, rendered None: unknown in Home Assistant (as ch4), never 0
        return f"{{{{ value_json.{key} }}}}"

    extra: list[tuple[str, dict[str, Any]]] = []
    if aux is not None:
        std_unit, pt, battery = aux
        normal = "Nm³" if std_unit == "Nm3/min" else "NL"
        if pt:
            extra += [
                entity("sensor", "pressure", "Gas pressure", state_topic=aux_topic, value_template=value("p_kpa"),
                       unit_of_measurement="kPa", device_class="pressure", state_class="measurement"),
                entity("sensor", "temperature", "Gas temperature", state_topic=aux_topic,
                       value_template=value("t_c"), unit_of_measurement="°C", device_class="temperature",
                       state_class="measurement"),
                entity("sensor", "std_flow", "Standard flow", state_topic=aux_topic, value_template=value("std_flow"),
                       unit_of_measurement=f"{normal}/min", state_class="measurement", icon="mdi:fan"),
                entity("sensor", "std_total", "Standard total", state_topic=aux_topic,
                       value_template=value("std_total"), unit_of_measurement=normal, state_class="total_increasing",
                       icon="mdi:counter"),
            ]
        if battery:
            extra += [
                entity("sensor", "battery", "Battery voltage", state_topic=aux_topic,
                       value_template=value("battery_mv"), unit_of_measurement="mV", device_class="voltage",
                       state_class="measurement"),
                entity("sensor", "run_time_left", "Run time left", state_topic=aux_topic,
                       value_template=value("run_min"), unit_of_measurement="min", device_class="duration",
                       state_class="measurement"),
                entity("binary_sensor", "battery_low", "Battery low", state_topic=state,
                       value_template="{{ 'ON' if value_json.flags is defined and value_json.flags.battery_low "
                       "else 'OFF' }}", device_class="battery"),
            ]
    return [
        entity("sensor", "ch4", "Methane", state_topic=telemetry, value_template="{{ value_json.ch4 }}",
               unit_of_measurement="%" if unit == "VOL" else "% LEL", state_class="measurement",
               suggested_display_precision=2, icon="mdi:molecule"),
        entity("sensor", "flow", "Flow", state_topic=telemetry, value_template="{{ value_json.flow }}",
               unit_of_measurement="m³/min" if flow_unit == "m3/min" else "L/min", state_class="measurement",
               icon="mdi:fan"),
        entity("sensor", "state", "Board state", state_topic=state, value_template="{{ value_json.state }}",
               device_class="enum", options=list(STATES)),
        entity("binary_sensor", "power", "Power allowed", state_topic=state,
               value_template="{{ 'ON' if value_json.relay == 1 else 'OFF' }}", device_class="power"),
        entity("binary_sensor", "gas_alarm", "Methane alarm", state_topic=state,
               value_template="{{ 'ON' if value_json.state in ['ALARM', 'POWEROFF'] else 'OFF' }}",
               device_class="gas"),
        entity("binary_sensor", "fault", "Board fault", state_topic=state,
               value_template="{{ 'ON' if value_json.faults else 'OFF' }}", device_class="problem"),
        entity("sensor", "anomaly_score", "Anomaly score (advisory)", state_topic=telemetry,
               value_template="{{ value_json.score if value_json.score is not none else 'unknown' }}",
               state_class="measurement", icon="mdi:chart-bell-curve"),
        *extra,
    ]
