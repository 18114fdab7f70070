"""The whole firedamp system on this machine, shown live: a virtual board, the edge service, an MQTT broker.

It starts a virtual board (the real firmware code measuring a simulated mine, behind a pseudo-terminal),
the edge service with the shipped model reading that port, a private MQTT broker (Mosquitto when
installed, else a built-in one) unless --broker names one, an MQTT subscriber that shows the alerts in
this terminal, and the control room (`firedamp control-room`; the page's address and logins are printed).
The default scenario, "story", runs in about a minute and a half: normal
operation, a ventilation loss in which the model's advisory early warning comes before the board's own
alarm, the board cutting the power, an operator acknowledging at the board's console, and the restore.
It stops by itself at the end of the scenario (or after --seconds), then prints a summary.

Examples:
    firedamp demo
    firedamp demo --scenario outburst --speed 20
    firedamp demo --broker 192.168.1.10:1883 --seconds 60
    firedamp demo --target rp2040      # the board is MicroPython's RP2040 port on an emulated chip (slower)

With --target rp2040 the board is `firedamp board --target rp2040`: the firmware is installed on a fresh
emulated Pico first (mpremote, about 15 s on a quiet machine), the story is shortened to 600 simulated s
unless --duration says otherwise, and --speed is capped at 10x (default 8x): the emulator keeps up with
that only while the machine is quiet (the firmware mostly sleeps between loop iterations, and sleep is
skipped; busy code runs at 0.06-0.17x real time), so on a loaded machine it runs slower and the demo takes
longer. Either way it ends with the scenario and says in its summary how fast the emulated chip ran.
"""

from __future__ import annotations

import argparse
import logging
import queue
import shutil
import subprocess
import sys
import time
from pathlib import Path

from edge.errors import ConfigError, FiredampError

DEVICE = "demo-01"
SITE = "demo"
EDGE_ID = "demo-edge"
PIN = "1234"  # the firmware's default console pin (firmware/settings.py); the demo's board is always fresh
SPEED = 10.0  # the CPython twin's default speed
RP2040_SPEED = 8.0  # the emulated Pico's default speed, and its cap (RP2040_SPEED_MAX)
RP2040_SPEED_MAX = 10.0
RP2040_STORY_S = 600.0  # the story on the emulated Pico (the story scales to its duration; the model warms up for
# ~120 s after the board's 30 s warm-up, so its early warning needs the onset (25 %) after ~150 s)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--scenario", default="story",
                        help="what the simulated mine does (default story; see `firedamp board --help`)")
    parser.add_argument("--seconds", type=float, default=None, metavar="N",
                        help="stop after N wall-clock seconds at most (default: at the end of the scenario)")
    parser.add_argument("--speed", type=float, default=None,
                        help="simulated seconds per wall-clock second (default 10: the story takes ~95 s; "
                             f"with --target rp2040 default {RP2040_SPEED:g}, at most {RP2040_SPEED_MAX:g})")
    parser.add_argument("--target", choices=("cpython", "rp2040"), default="cpython",
                        help="the board: cpython (default, fast): the firmware modules on CPython; rp2040: "
                             "MicroPython's RP2040 port on an emulated chip, the firmware installed by mpremote "
                             f"(slower: the story shortened to {RP2040_STORY_S:g} s unless --duration is given)")
    parser.add_argument("--broker", default=None, metavar="HOST:PORT",
                        help="use this MQTT broker (anonymous, plain TCP) instead of starting a private one")
    parser.add_argument("--local-broker", choices=("auto", "mosquitto", "amqtt"), default="auto",
                        help="without --broker: which private broker to start (default auto: Mosquitto when "
                             "installed, else the built-in amqtt)")
    parser.add_argument("--seed", type=int, default=0, help="scenario seed (default 0)")
    parser.add_argument("--duration", type=float, default=None, metavar="S",
                        help="scenario length in simulated seconds (default: the scenario's own; story 900)")
    parser.add_argument("--run-dir", default="run/demo", metavar="DIR",
                        help="where the outbox, history, logs and the board's files go (default run/demo; "
                             "emptied of the previous demo's files at start)")
    parser.add_argument("--no-operator", action="store_true",
                        help="nobody acknowledges the power-off: the board keeps the power cut")
    parser.add_argument("--control-port", type=int, default=8080, metavar="PORT",
                        help="the control room's web page on http://127.0.0.1:PORT/ (default 8080; a free port "
                             "if 8080 is taken)")
    parser.add_argument("--no-control-room", action="store_true", help="do not start the control room")


def _parse_broker(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--broker must be HOST:PORT, e.g. 127.0.0.1:1883, not {text!r}")
    return host, int(port)


def _clean(run_dir: Path) -> None:
    """Remove what an earlier demo left (only the names the demo itself writes)."""
    for pattern in ("outbox.sqlite*", "history.sqlite*", "control.sqlite*", "control.toml", "control-room-users.txt",
                    "*.log", "*-pins.jsonl", "edge.toml", "mosquitto.*",
                    f"{DEVICE}*"):
        for path in run_dir.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def _edge_toml(run_dir: Path, link: Path, host: str, port: int, protocol: str) -> Path:
    path = run_dir / "edge.toml"
    path.write_text(f"""# written by `firedamp demo`: `firedamp run --config {path}` runs the same edge service
edge_id = "{EDGE_ID}"
site = "{SITE}"
data_dir = "{run_dir.resolve()}"
log_level = "info"

[[boards]]
port = "{link.resolve()}"
name = "virtual board"

[mqtt]
host = "{host}"
port = {port}
client_id = "firedamp-demo-edge"
protocol = "{protocol}"
discovery = false
status_interval_s = 10

[outbox]
fsync = false
""")
    return path


def run(args: argparse.Namespace) -> int:
    from edge.config import load
    from edge.demo.broker import LocalBroker
    from edge.demo.operator import Operator
    from edge.demo.subscriber import Subscriber
    from edge.demo.view import LiveView
    from edge.service import Service
    from hardware.twin.cli import check_scenario_args
    from models import scenarios

    speed_note = _pick_speed(args)
    check_scenario_args(args)
    if args.seconds is not None and not args.seconds > 0:
        raise ConfigError(f"--seconds must be > 0, got {args.seconds}")
    scenario = scenarios.make(args.scenario, seed=args.seed, duration_s=args.duration)
    duration = scenario.duration_s
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    _clean(run_dir)
    log_file = run_dir / "edge.log"
    handler = logging.FileHandler(log_file)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)

    link, console_link = run_dir / DEVICE, run_dir / f"{DEVICE}-console"
    pins = run_dir / f"{DEVICE}-pins.jsonl"
    broker = board = svc = sub = room = None
    view = None
    pace: list[float] = []  # first and last reading: simulated s, wall s
    places: dict[str, str] = {}
    counters: dict[str, object] = {}
    error: FiredampError | None = None
    try:
        if args.broker:
            host, port = _parse_broker(args.broker)
            broker_text = f"broker {host}:{port}"
        else:
            broker = LocalBroker(run_dir, prefer=args.local_broker)
            host, port = broker.host, broker.port
            broker_text = f"private {broker.kind} broker on {broker.address}"
        # amqtt speaks MQTT 3.1.1 only; Mosquitto (and most brokers) speak 5, which reports refused alerts
        protocol = "3.1.1" if broker is not None and broker.kind == "amqtt" else "5"
        if not args.no_control_room:
            from edge.demo.control_room import ControlRoomProcess

            if not 0 < args.control_port < 65536:
                raise ConfigError(f"--control-port must be 1..65535, not {args.control_port}")
            # the board is quiet for ~30 simulated s while it warms up: no "no data" for that
            # the emulated Pico may run as slowly as ~0.25x real time on a loaded machine
            rate = max(args.speed, 1.0) if args.target == "cpython" else 0.25
            room = ControlRoomProcess(run_dir, host, port, protocol, web_port=args.control_port,
                                      silent_s=max(10.0, 40.0 / rate))
            places["control room (web page)"] = f"{room.url}  user operator / {room.users['operator']}, " \
                                                f"viewer / {room.users['viewer']}"
        board = _start_board(args, run_dir, link, console_link, pins)
        cfg = load(_edge_toml(run_dir, link, host, port, protocol))
        svc = Service(cfg)
        observations = svc.observe()
        speed_text = f"{args.speed:g}x" if args.speed != 1 else "real time"
        board_text = "; board: RP2040 port, emulated" if args.target == "rp2040" else ""
        view = LiveView(f"firedamp demo: scenario {args.scenario} at {speed_text}{board_text}; {broker_text}",
                        every_s=max(15.0, duration / 60.0))
        view.script = _script(args.scenario, scenario)
        view.note(f"the simulated mine: {view.script}")
        if speed_note:
            view.note(speed_note)
        places["MQTT broker"] = broker_text
        model_spec = svc.detector.spec if svc.detector else None
        if model_spec is not None:
            view.horizon_s = model_spec.horizon * model_spec.sample_period_s
        sub = Subscriber(host, port, [f"{cfg.mqtt.topic_prefix}/{SITE}/+/alert"], record=None, on_message=view.alert,
                         client_id="firedamp-demo-subscriber")
        svc.start()
        view.note(f"edge service started: model {model_spec.version if model_spec else '(none)'}, "
                  f"board {DEVICE} on {link}")
        if room is not None:
            view.note(f"control room: open {room.url} (operator / {room.users['operator']}, "
                      f"viewer / {room.users['viewer']})")
        operator = None if args.no_operator else Operator(console_link, PIN, view.note)
        _loop(args, view, observations, operator, board, duration, pace)
    except KeyboardInterrupt:
        if view:
            view.note("stopped by Ctrl-C")
    except FiredampError as exc:
        error = exc
    finally:
        if svc is not None:
            svc.stop()
            d = svc.decoder
            counters = {"frames received": d.ok, "frames rejected": sum(d.rejected.values()),
                        "frames lost (sequence gaps)": d.lost_frames,
                        "alerts raised by the edge (each may clear later)": svc.policy.raised,
                        "alerts still in the outbox (not acknowledged by the broker)": svc.outbox.depth}
            rejected = {reason: n for reason, n in d.rejected.items() if n}
            if rejected:
                counters["rejected by reason"] = rejected
            if len(pace) == 4 and pace[3] > pace[1]:
                sim, wall = pace[2] - pace[0], pace[3] - pace[1]
                counters["board's simulated time per wall second, first to last reading"] = \
                    f"{sim / wall:.2f}x ({sim:.0f} s in {wall:.0f} s; asked {args.speed:g}x)"
            places |= {"outbox": str(svc.cfg.outbox_path), "history": str(svc.cfg.history_path),
                      "edge service log": str(log_file), "edge config": str(run_dir / "edge.toml")}
        if sub is not None:
            time.sleep(0.3)  # alerts published at the very end
            sub.close()
        if room is not None:
            stored = room.summary()
            if stored is not None:
                counters["alerts stored by the control room, from the edge"] = stored["from_edges"]
                if stored["own"]:
                    counters["alerts the control room raised itself"] = \
                        f"{stored['own']} ({', '.join(stored['own_kinds'])}: the demo stopped the edge first)"
            room.stop()
            places["control room log"] = str(room.log)
        if board is not None:
            _stop_board(board)
            places["virtual board log"] = str(run_dir / "board.log")
            places["relay/buzzer/beacon pin record"] = str(pins)
        if broker is not None:
            broker.stop()
            if broker.log:
                places["broker log"] = str(broker.log)
        logging.getLogger().removeHandler(handler)
        handler.close()
    if view is not None:
        view.draw()
        print(view.summary(counters, places), flush=True)
    if error is not None:
        raise error
    return 0


def _script(name: str, scenario) -> str:
    """One line on what the simulator will do, so a watcher knows what to look for."""
    from edge.demo.view import mmss

    info = getattr(scenario, "info", {}) or {}
    what = "ventilation lost" if name == "story" else f"{name.replace('_', ' ')} begins"
    text = f"{name}, {mmss(scenario.duration_s)} long"
    if "onset_s" in info:
        text += f"; {what} at {mmss(info['onset_s'])}"
    if "restore_s" in info:
        text += f", ventilation restored at {mmss(info['restore_s'])}" if name == "story" else \
            f", over at {mmss(info['restore_s'])}"
    return text


def _pick_speed(args) -> str:
    """Set args.speed for the target; for the emulated Pico, also the story's length. Returns what the
    demo tells its watcher about it ("" for the CPython twin)."""
    if args.target == "cpython":
        if args.speed is None:
            args.speed = SPEED
        return ""
    from hardware.rp2040 import driver

    why = driver.missing()
    if why:
        raise ConfigError(f"--target rp2040 needs the emulated Pico: {why}")
    asked = RP2040_SPEED if args.speed is None else args.speed
    args.speed = min(asked, RP2040_SPEED_MAX)
    text = f"emulated RP2040 at {args.speed:g}x" + (f" (asked {asked:g}x, capped at {RP2040_SPEED_MAX:g}x)"
                                                   if asked > args.speed else "")
    if args.duration is None and args.scenario == "story":
        args.duration = RP2040_STORY_S
        text += f", the story shortened to {RP2040_STORY_S:g} simulated s"
    return (text + "; the emulator keeps that pace only on a quiet machine (the firmware sleeps between loop "
            "iterations, which is skipped; busy code runs at 0.06-0.17x real time), slower when loaded: the "
            "summary gives the pace it ran at")


def _start_board(args, run_dir: Path, link: Path, console_link: Path, pins: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "edge.cli", "board", "--scenario", args.scenario, "--link", str(link),
           "--console-link", str(console_link), "--flash", str(run_dir / f"{DEVICE}.flash"), "--device-id",
           DEVICE, "--speed", str(args.speed), "--seed", str(args.seed), "--record", str(pins), "--exit-with-parent"]
    if args.duration:
        cmd += ["--duration", str(args.duration)]
    wait_s = 30.0
    if args.target == "rp2040":
        cmd += ["--target", "rp2040"]
        wait_s = 600.0  # a fresh emulated Pico: the firmware goes on first (mpremote); its console link then
        print(f"firedamp demo: installing the firmware on a fresh emulated Pico (mpremote, ~15 s on a quiet "
              f"machine, minutes on a loaded one); log {run_dir / 'board.log'}", flush=True)
    with open(run_dir / "board.log", "ab") as log:
        # a session of its own: Ctrl-C stops the demo, which then stops the board after the edge service
        # (otherwise the board would die first and the edge would report its link lost)
        proc = subprocess.Popen(cmd, stdout=log, stderr=log, cwd=Path(__file__).resolve().parents[2],
                                start_new_session=True)
    deadline = time.monotonic() + wait_s
    while not (link.is_symlink() and console_link.is_symlink()):
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop_board(proc)
            raise FiredampError(f"the virtual board did not start; see {run_dir / 'board.log'}:\n"
                                + (run_dir / "board.log").read_text()[-1500:])
        time.sleep(0.05)
    return proc


def _stop_board(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _loop(args, view, observations: queue.Queue, operator, board: subprocess.Popen, duration: float,
          pace: list[float]) -> None:
    """Feed the view until the scenario's simulated time is over (plus a little), or --seconds of wall time.
    `pace` gets the simulated and wall time of the first and the latest reading."""
    start = time.monotonic()
    next_draw = 0.0
    end_sim = duration + 20.0  # let the last alerts clear
    while True:
        now = time.monotonic()
        if args.seconds is not None and now - start >= args.seconds:
            view.note(f"--seconds {args.seconds:g} reached")
            return
        if board.poll() is not None:
            raise FiredampError(f"the virtual board stopped unexpectedly (exit status {board.returncode}); "
                                f"see {Path(args.run_dir) / 'board.log'}")
        try:
            kind, data = observations.get(timeout=0.1)
        except queue.Empty:
            kind = ""
        if kind == "reading":
            r, res = data["reading"], data["result"]
            sim_s = r.uptime_ms / 1000.0
            pace[:] = (pace[:2] or [sim_s, now]) + [sim_s, now]
            view.reading(r.device, r._asdict(), sim_s)
            if res is not None and res.ready:
                view.score(r.device, float(res.score), float(res.threshold), bool(res.anomalous),
                           float(res.forecast), res.top_channel)
            if operator is not None:
                operator.on_reading(r)
            if sim_s >= end_sim:
                view.note("end of the scenario")
                return
        elif kind == "link":
            port, up, detail = data
            view.note(f"serial link {'open' if up else 'lost: ' + detail}")
        if now >= next_draw:
            next_draw = now + 0.25
            view.draw()

