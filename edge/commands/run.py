"""`firedamp run`: the edge service (edge/service.py) as a command, until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import logging
import signal
import textwrap
import threading
from typing import Any

from edge.config import load
from edge.service import Service

log = logging.getLogger("firedamp")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = textwrap.fill(
        "Run the edge service: read every sensor board listed in edge.toml over serial, check each frame, "
        "score the readings with the anomaly model (advisory only), keep a local history, and publish "
        "telemetry, board state and alerts over MQTT. Alerts are stored on disk until the broker has them, "
        "so none is lost while the broker or network is down. The settings in effect are logged at start "
        "(passwords never). Normally started by systemd (deploy/firedamp.service).")
    p.epilog = ("Stops cleanly on Ctrl-C or SIGTERM (systemctl stop firedamp): sends waiting alerts, publishes\n"
                "`offline`, closes.  Example:  firedamp run --config /etc/firedamp/edge.toml\n"
                "Topics and payloads: docs/mqtt.md.  Example config: deploy/edge.toml.")
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--config", default="/etc/firedamp/edge.toml",
                   help="the edge.toml to use (default: /etc/firedamp/edge.toml; see deploy/edge.toml)")
    p.add_argument("--log-level", default=None, choices=["debug", "info", "warning", "error"],
                   help="override log_level from the config")


def setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper()), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("paho").setLevel(logging.WARNING)


def run(args: argparse.Namespace) -> int:
    cfg = load(args.config)
    setup_logging(args.log_level or cfg.log_level)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("%s received: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    svc = Service(cfg)
    svc.start()
    try:
        while not stop.wait(1.0):
            pass
    finally:
        svc.stop()
    return 0
