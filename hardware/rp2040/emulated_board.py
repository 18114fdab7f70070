"""`firedamp board --target rp2040`: the firmware on MicroPython's RP2040 port in an emulated chip, fed by the
simulated mine, behind the same kind of pty as the CPython twin.

A new board (no flash image yet) gets the firmware installed over its own serial port by mpremote, exactly as
`firedamp flash` does, with the twin's installer settings (calibrated against the nominal sensor). Every
loop period of the emulated clock (100 ms) the scenario's methane goes onto the ADC (through the RP2040 ADC
noise model) or the 200-1000 Hz input, and its flow onto the pulse input at the meter's real rate; with
--pressure-kpa the gas pressure and temperature go onto ADC1/ADC2, with --battery-hours the cell onto VSYS
(ADC3), as on the CPython twin (hardware/twin/cli.py's instruments()). The
flash image is `--flash DIR`/pico-flash.bin: restarting with the same folder reboots the same board.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

from edge.errors import ConfigError, LinkError

_STEP_NS = 100_000_000  # inputs follow the scenario at the firmware's loop period


def run(args) -> int:
    from hardware.rp2040 import driver
    from hardware.rp2040.board import OUTPUTS, Instruments, board_settings, install
    from hardware.twin.adc_noise import AdcNoise
    from hardware.twin.cli import instruments
    from hardware.twin.virtual import BATTERY_SETTINGS
    from models import scenarios

    why = driver.missing()
    if why:
        raise ConfigError(f"--target rp2040 needs the emulated Pico: {why}")
    link = Path(args.link)
    device_id = args.device_id or link.name
    scenario = scenarios.make(args.scenario, seed=args.seed, duration_s=args.duration)
    process, cell = instruments(args)
    folder = Path(args.flash) if args.flash else Path(str(link) + ".flash")
    folder.mkdir(parents=True, exist_ok=True)
    image = folder / "pico-flash.bin"
    wiring = folder / "pico-instruments.json"  # what the installer wired: front end, range (our side's view)
    new = not image.exists() or not wiring.exists()
    pico = driver.EmulatedPico(image, link=link, speed=args.speed, noise=None if getattr(args, "adc_noise", None) == "off" else AdcNoise(seed=args.seed),
                               log=folder / "pico-runner.log")
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    parent = os.getppid()
    record = open(args.record, "a", buffering=1) if args.record else None  # noqa: SIM115 - closed below
    extra: dict = {"pt_input": "analog"} if process is not None else {}
    if cell is not None:
        extra.update(BATTERY_SETTINGS)
    values = board_settings(device_id, args.front_end, **extra) if new else json.loads(wiring.read_text())
    t0 = wall0 = None
    pico.start(paused=True)
    try:
        inst = Instruments(pico, values, args.sensor_offset, args.sensor_gain)
        inst.wire()  # the sensors are connected before power-on
        inst.gas(scenario.sample(0.0).ch4)
        if process is not None:
            inst.pt(*process.at(0.0))
        if cell is not None:
            inst.vsys(cell.mv(0.0))
        pico.run()
        if new:
            print(f"emulated Pico {device_id}: new board, installing the firmware with mpremote over {link} ...",
                  flush=True)
            install(str(pico.link.path), values)
            wiring.write_text(json.dumps(values))
        # the console port appears once the firmware is in (a demo waits for it): its output is the board's
        console = pico.add_link(args.console_link) if args.console_link else None
        print(f"emulated Pico {values['device_id']}: MicroPython RP2040 port in rp2040js, serial {pico.link.device}, "
              f"link {pico.link.path}" + (f", console link {console.path}" if console else "")
              + f"; scenario {args.scenario} (seed {args.seed}, {scenario.duration_s:g} s) at {args.speed:g}x "
              f"(at most: busy code emulates at 0.06-0.17x); flash {image}", flush=True)
        t0, wall0 = pico.now_ns(), time.monotonic()
        last_flow = None
        gas_file = Path(str(link) + ".gas")
        while not stopping:
            now = pico.now_ns()
            sim_s = (now - t0) / 1e9
            if args.seconds is not None and sim_s >= args.seconds:
                break
            if args.exit_with_parent and os.getppid() != parent:
                break
            sample = scenario.sample(sim_s)
            try:
                ch4 = float(gas_file.read_text().strip())
            except (OSError, ValueError):
                ch4 = sample.ch4
            inst.gas(ch4)
            if process is not None:
                inst.pt(*process.at(sim_s))
            if cell is not None:
                inst.vsys(cell.mv(sim_s))
            if last_flow is None or abs(sample.flow - last_flow) > 0.005 * max(last_flow, 1.0):
                inst.flow(sample.flow)
                last_flow = sample.flow
            with pico._cond:  # noqa: SLF001 - drain the pin record
                changes, pico.changes = pico.changes, []
            if record is not None:
                for t, g, v in changes:
                    if g in OUTPUTS:
                        record.write(json.dumps({"t_s": round((t - t0) / 1e9, 6), "pin": OUTPUTS[g], "value": v})
                                     + "\n")
            # next step: wait (wall) until the emulated clock has moved one loop period on
            target = now + _STEP_NS
            while not stopping and pico.alive and pico.now_ns() < target:
                time.sleep(0.02)
            if not pico.alive:
                raise LinkError(f"the emulator stopped; see {pico.log}")
    except KeyboardInterrupt:
        pass
    finally:
        ran = ""
        if t0 is not None and pico.alive:
            emulated_s, wall_s = (pico.now_ns() - t0) / 1e9, time.monotonic() - wall0
            ran = f" after {emulated_s:.1f} emulated s in {wall_s:.1f} s wall ({emulated_s / max(wall_s, 1e-9):.2f}x)"
        pico.stop()
        if record is not None:
            record.close()
        print(f"emulated Pico stopped{ran}: {len(pico.boots)} boots", file=sys.stderr, flush=True)
    return 0
