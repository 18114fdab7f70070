"""Optional Prometheus endpoint: the health counters as text exposition format on http://HOST:PORT/metrics.

Standard library only (no prometheus-client needed); off unless `[metrics] enabled = true`. Bind it to
127.0.0.1 (the default) or a management network: it has no authentication.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger("firedamp.metrics")

_COUNTERS = {"frames_ok", "frames_lost", "reboots", "link_reconnects", "inference_calls", "samples_scored",
             "readings_unscored_units", "alerts_raised", "outbox_dropped", "alerts_acked", "alerts_refused",
             "mqtt_connects", "mqtt_connect_failures", "mqtt_broker_switches", "ingest_dropped", "history_dropped",
             "alerts_unsaved_dropped", "link_partial_lines_dropped", "modbus_connections_closed"}
_LABELLED = {"frames_rejected": ("frames_rejected_total", "reason"), "modbus_requests": ("modbus_requests_total", "function"),
             "modbus_exceptions": ("modbus_exceptions_total", "code")}


def _label(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def render(health: dict[str, Any]) -> str:
    """health() dict → Prometheus text format (counters end in _total)."""
    base = f'edge="{_label(str(health.get("edge", "")))}",site="{_label(str(health.get("site", "")))}"'
    out: list[str] = []
    for key, value in health.items():
        if key in _LABELLED:
            name, label = _LABELLED[key]
            out.append(f"# TYPE firedamp_{name} counter")
            out += [f'firedamp_{name}{{{base},{label}="{_label(str(r))}"}} {n}' for r, n in value.items()]
        elif key == "links":
            out.append("# TYPE firedamp_link_up gauge")
            out += [f'firedamp_link_up{{{base},port="{_label(p)}"}} {int(up)}' for p, up in value.items()]
        elif key == "no_boards":
            out.append("# TYPE firedamp_no_boards gauge")
            out.append(f"firedamp_no_boards{{{base}}} {int(value)}")
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        else:
            name = f"firedamp_{key}_total" if key in _COUNTERS else f"firedamp_{key}"
            out.append(f"# TYPE {name} {'counter' if key in _COUNTERS else 'gauge'}")
            out.append(f"{name}{{{base}}} {value}")
    out.append(f'firedamp_mqtt_error{{{base}}} {int(bool(health.get("mqtt_last_error")))}')
    return "\n".join(out) + "\n"


class MetricsServer:
    def __init__(self, host: str, port: int, health: Callable[[], dict[str, Any]]):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404, "only /metrics here")
                    return
                body = render(health()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass  # scrapes every 15 s would flood the journal

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.address = self.httpd.server_address
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="metrics", daemon=True)

    def start(self) -> None:
        self._thread.start()
        log.info("Prometheus metrics on http://%s:%d/metrics", *self.address[:2])

    def stop(self) -> None:
        if self._thread.is_alive():
            self.httpd.shutdown()  # (would wait forever if serve_forever never ran)
        self.httpd.server_close()
