"""Serve the control room: one live web page over every board of every edge, with acknowledgement and history.

It subscribes to the MQTT broker the edges publish to (docs/mqtt.md), stores what they send (alerts once by
id, readings raw for [store] raw_hours and per minute for ≥ 90 days) and serves the page: all boards grouped
by site and edge, the alert list (live, no reload), acknowledgement with a note, each board's history with
its levels and alert marks, CSV export, and shift reports. A board or edge that goes quiet shows "no data"
and raises an alert. Acknowledging never changes a board: only `ack` at the board's console returns power.

Commands:
  firedamp control-room --config control.toml                    serve (until Ctrl-C or SIGTERM)
  firedamp control-room adduser NAME --role operator --config …  add a user or set a new password
  firedamp control-room users --config control.toml              list the users
"""

from __future__ import annotations

import argparse
import getpass
import logging
import signal
import sys
import threading
import time
from typing import Any

from edge.errors import ConfigError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("action", nargs="?", default="serve", choices=("serve", "adduser", "users"),
                   help="serve (default), adduser, or users")
    p.add_argument("name", nargs="?", help="adduser: the user name (A-Z a-z 0-9 . _ - @)")
    p.add_argument("--config", default="/etc/firedamp/control.toml",
                   help="the control.toml to use (default /etc/firedamp/control.toml; see deploy/control.toml)")
    p.add_argument("--role", choices=("viewer", "operator"), default="viewer",
                   help="adduser: viewer sees everything; operator may also acknowledge alerts (default viewer)")
    p.add_argument("--password-stdin", action="store_true",
                   help="adduser: read the password from the first line of standard input (for scripts)")
    p.add_argument("--log-level", default=None, choices=["debug", "info", "warning", "error"],
                   help="override log_level from the config")
    p.epilog = "Example config: deploy/control.toml. The page, roles and figures: docs/control-room.md."


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass(f"password for {args.name}: ")
    if getpass.getpass("again: ") != first:
        raise ConfigError("the two passwords differ; nothing changed")
    return first


def run(args: argparse.Namespace) -> int:
    from control.config import load
    from control.store import StoreError, open_store

    cfg = load(args.config)
    logging.basicConfig(level=getattr(logging, (args.log_level or cfg.log_level).upper()),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("paho").setLevel(logging.WARNING)
    if args.action in ("adduser", "users"):
        from control.auth import AuthError, check_name, hash_password

        try:
            store = open_store(cfg)
        except StoreError as exc:
            raise ConfigError(str(exc)) from exc
        try:
            if args.action == "users":
                for u in store.users():
                    print(f"{u['name']}\t{u['role']}")
                return 0
            if not args.name:
                raise ConfigError("adduser needs a user name: firedamp control-room adduser NAME --role operator")
            try:
                name = check_name(args.name)
                store.add_user(name, args.role, hash_password(_password(args)), time.time())
            except AuthError as exc:
                raise ConfigError(str(exc)) from exc
            where = cfg.store.path if cfg.store.kind == "sqlite" else "the PostgreSQL database of [store] dsn"
            print(f"user {name} ({args.role}) saved in {where}")
            return 0
        finally:
            store.close()
    return serve(cfg)


def serve(cfg) -> int:
    from control.server import ControlRoom

    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        logging.getLogger("firedamp.control").info("%s received: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    room = ControlRoom(cfg).start()
    print(f"firedamp control room: {room.url}", flush=True)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        room.stop()
    return 0
