"""Run the unchanged board firmware against a simulated mine, behind a serial port you can open.

The port appears at --link (a symlink to a pseudo-terminal): point `firedamp run` or `firedamp console` at
it as you would at /dev/ttyACM0. The board keeps its settings, calibration and totaliser in --flash, so a
restart with the same folder is a board reboot. Several boards: run this command once per board, each with
its own --link, --flash and --device-id.

Calibration gas: write a concentration in % CH4 to LINK.gas (e.g. `echo 2.00 > /tmp/board-1.gas`) and the
simulated sensor sees that gas instead of the mine, as with a calibration cap; delete the file to remove it.

Examples:
    firedamp board --scenario story --link /tmp/board-1 --speed 10
    firedamp board --scenario normal --link /tmp/board-2 --device-id face-2 --seed 7
    firedamp board --target rp2040 --scenario story --link /tmp/pico-1   # MicroPython's RP2040 port, emulated
    firedamp board --link /tmp/drain-3 --pressure-kpa 98.4 --temperature-c 21.5 --battery-hours 8 --speed 60
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
from pathlib import Path

from firedamp.errors import ConfigError

_ID = re.compile(r"^[A-Za-z0-9_-]{1,16}$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--scenario", default="normal",
                        help="what the simulated mine does: normal, story, outburst, ventilation_loss, "
                             "fan_stoppage, drainage_leak, sensor_drift, stuck_sensor, spikes, pulse_dropout "
                             "(default normal)")
    parser.add_argument("--link", required=True, metavar="PATH",
                        help="where the board's serial port appears (a symlink to a pty), e.g. /tmp/board-1")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="simulated seconds per wall-clock second (default 1; 10 runs ten times faster)")
    parser.add_argument("--seed", type=int, default=0, help="scenario seed: same seed, same mine (default 0)")
    parser.add_argument("--seconds", type=float, default=None, metavar="S",
                        help="stop after S simulated seconds (default: run until Ctrl-C)")
    parser.add_argument("--duration", type=float, default=None, metavar="S",
                        help="scenario length in simulated seconds (default: the scenario's own; "
                             "after its end the last sample holds, with a live sensor's noise)")
    parser.add_argument("--device-id", default=None,
                        help="device id for a new board (default: the link's file name); a board keeps the "
                             "id in its settings")
    parser.add_argument("--flash", default=None, metavar="DIR",
                        help="folder for the board's files: settings, calibration log, totaliser "
                             "(default: LINK.flash next to the link)")
    parser.add_argument("--front-end", choices=("ma", "volt", "freq"), default="ma",
                        help="methane input of a new board: 4-20 mA (default), voltage, or 200-1000 Hz")
    parser.add_argument("--console-link", default=None, metavar="PATH",
                        help="a second serial port on the same board for a technician's console "
                             "(the board's output goes to both ports)")
    parser.add_argument("--record", default=None, metavar="FILE",
                        help="append every relay/buzzer/beacon pin change here as JSON lines")
    parser.add_argument("--exit-with-parent", action="store_true",
                        help="stop when the process that started this board ends (used by `firedamp demo`)")
    parser.add_argument("--sensor-offset", type=float, default=0.0, metavar="PCT",
                        help="simulated sensor zero error in %% CH4 (default 0: a perfect sensor)")
    parser.add_argument("--sensor-gain", type=float, default=1.0,
                        help="simulated sensor gain error (default 1.0)")
    parser.add_argument("--adc-noise", choices=("on", "off"), default=None,
                        help="the RP2040 ADC's read-to-read noise and DNL errors on the methane and supply inputs "
                             "(default: on with --target rp2040, off on the CPython twin)")
    parser.add_argument("--pressure-kpa", type=float, default=None, metavar="KPA",
                        help="gas pressure (kPa absolute) at the flow meter: a new board gets the pressure and "
                             "temperature input (pt_input analog) and reports standard flow in A frames")
    parser.add_argument("--temperature-c", type=float, default=15.0, metavar="C",
                        help="gas temperature at the flow meter with --pressure-kpa (default 15)")
    parser.add_argument("--pt-swing", type=float, default=0.0, metavar="FRACTION",
                        help="pressure and temperature swing slowly (10 min sine) by this fraction of their "
                             "level, pressure in kPa and temperature in kelvin (default 0: steady)")
    parser.add_argument("--battery-hours", type=float, default=None, metavar="H",
                        help="the board runs on a full Li-ion cell whose constant load takes it to the cut-off "
                             "(3300 mV) in H simulated hours; a new board gets the battery levels")
    parser.add_argument("--target", choices=("cpython", "rp2040"), default="cpython",
                        help="cpython (default, fast): the firmware modules on CPython with a fake machine; "
                             "rp2040: MicroPython's own RP2040 port on an emulated chip (rp2040js under Node.js), "
                             "the firmware installed on it with mpremote, real USB serial, flash, heap and ADC noise "
                             "(slower: busy code emulates at 0.06-0.17x real time on 2 cores; the time the firmware "
                             "sleeps is skipped)")


def check_scenario_args(args: argparse.Namespace) -> None:
    """--speed, --scenario and --duration, shared by `firedamp board` and `firedamp demo`."""
    from models import scenarios

    if not args.speed > 0:
        raise ConfigError(f"--speed must be > 0, got {args.speed}")
    if args.scenario not in scenarios.SCENARIOS:
        raise ConfigError(f"--scenario {args.scenario!r} is not one of: {', '.join(scenarios.SCENARIOS)}")
    if args.duration is not None and not args.duration >= 60:
        raise ConfigError(f"--duration must be at least 60 simulated seconds, got {args.duration}")


def instruments(args: argparse.Namespace):
    """(ProcessConditions or None, LiIonCell or None) from --pressure-kpa / --temperature-c / --battery-hours."""
    from hardware.twin.signals import LiIonCell, ProcessConditions

    process = battery = None
    kpa = getattr(args, "pressure_kpa", None)
    if kpa is not None:
        if not 0 < kpa < 10000:
            raise ConfigError(f"--pressure-kpa must be 0..10000 kPa absolute, got {kpa}")
        t_c = args.temperature_c
        if not -50 <= t_c <= 150:
            raise ConfigError(f"--temperature-c must be -50..150, got {t_c}")
        swing = args.pt_swing
        process = ProcessConditions(kpa, t_c, kpa * swing, (t_c + 273.15) * swing)
    hours = getattr(args, "battery_hours", None)
    if hours is not None:
        if not hours > 0:
            raise ConfigError(f"--battery-hours must be > 0, got {hours}")
        battery = LiIonCell.lasting(hours)
    return process, battery


def run(args: argparse.Namespace) -> int:
    from hardware.twin.virtual import VirtualBoard
    from models import scenarios

    check_scenario_args(args)
    link = Path(args.link)
    device_id = args.device_id or link.name
    if not _ID.match(device_id):
        raise ConfigError(f"--device-id {device_id!r} must be 1-16 of A-Z a-z 0-9 _ -")
    if getattr(args, "target", "cpython") == "rp2040":
        from hardware.rp2040 import emulated_board

        return emulated_board.run(args)
    scenario = scenarios.make(args.scenario, seed=args.seed, duration_s=args.duration)
    process, battery = instruments(args)
    flash = Path(args.flash) if args.flash else Path(str(link) + ".flash")
    board = VirtualBoard(scenario, str(link), flash, device_id=device_id, speed=args.speed,
                         front_end=args.front_end, console_link=args.console_link,
                         record=Path(args.record) if args.record else None,
                         sensor_offset_pct=args.sensor_offset, sensor_gain=args.sensor_gain,
                         adc_noise_seed=args.seed if getattr(args, "adc_noise", None) == "on" else None,
                         process=process, battery=battery)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    parent = os.getppid()

    def stop() -> bool:
        if args.exit_with_parent and os.getppid() != parent:  # the parent died; we were adopted
            stopping.append(1)
        return bool(stopping)

    print(f"virtual board {board.settings['device_id']}: firmware {board.fw_main.VERSION} on {board.links[0].device}, "
          f"link {board.links[0].path}"
          + (f", console link {board.links[1].path}" if len(board.links) > 1 else "")
          + f"; scenario {args.scenario} (seed {args.seed}, {scenario.duration_s:g} s) at {args.speed:g}x; "
          f"flash {flash}", flush=True)
    try:
        board.run(args.seconds, stop=stop)
    except KeyboardInterrupt:
        pass
    finally:
        board.close()
        print(f"virtual board stopped after {board.sim_s:.1f} simulated s: {board.steps} loop iterations, "
              f"{board.reboots} resets, {board.crashes} firmware crashes, {board.dropped_bytes} bytes "
              f"sent while no one listened", file=sys.stderr, flush=True)
    return 0
