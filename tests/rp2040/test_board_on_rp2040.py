"""Our firmware on MicroPython's own RP2040 port (emulated chip): flashed with `firedamp flash` over the
board's USB serial, calibrated at the console, read by the edge's frame parser; the relay measured."""

import pytest

from edge import cli
from hardware.rp2040.board import Instruments, Probe, board_settings


def flash(port, *args):
    assert cli.main(["flash", "--port", port, "--no-display-driver", *args]) == 0


@pytest.mark.long  # make test-long; the short path runs in make test
def test_new_board_flash_defaults_calibrate_save_then_update_keeps_the_calibration(blank_pico, capsys):
    pico = blank_pico(speed=0)
    port = str(pico.link.path)
    flash(port, "--defaults", "--device-id", "emu-7")
    # from here the emulated clock keeps to the wall clock: flat out, a slow host let it run past stuck_s
    # (600 s) while the test gas was held still, and the board then rightly reported the input STUCK
    pico.set_speed(1.0)
    inst = Instruments(pico, board_settings("emu-7", "ma"))  # the nominal 4-20 mA sensor, as wired
    inst.wire()
    inst.gas(0.0)
    probe = Probe(port)
    try:
        boot = probe.wait(lambda f: f.type == "E" and f.code == "BOOT", 120, "the BOOT event")
        assert boot.device == "emu-7"
        assert probe.console("unlock 1234").status == "OK"
        # the default 30 s warm-up runs on the emulated clock first
        r = probe.reading(lambda r: r.ch4 is not None, 300, "a valid reading after warm-up")
        assert r.flags & 0x01  # factory defaults: not calibrated, so calibration is due
        assert probe.console("cal zero").status == "OK"
        inst.gas(2.0)
        probe.reading(lambda r: r.ch4 is not None and r.ch4 > 1.5, 60, "the span gas on the sensor")
        reply = probe.console("cal span 2.00")
        assert reply.status == "OK", reply
        assert probe.console("save").status == "OK"
        inst.gas(0.3)
        assert probe.console("ack").status in ("OK", "ERR")  # power-off latch from the FAULT, if any
        r = probe.reading(lambda r: r.state == "NORMAL", 120, "NORMAL after save")
        assert abs(r.ch4 - 0.3) < 0.05 and r.relay == 1 and r.faults == 0
        zero = probe.console("get cal_zero_raw").text
        span = probe.console("get cal_span_raw").text
    finally:
        probe.close()
    capsys.readouterr()
    pico.set_speed(0.0)
    flash(port)  # an update: firmware only
    pico.set_speed(1.0)
    probe = Probe(port)
    try:
        probe.wait(lambda f: f.type == "E" and f.code == "BOOT", 120, "the BOOT event after the update")
        assert probe.console("get cal_zero_raw").text == zero
        assert probe.console("get cal_span_raw").text == span
        r = probe.reading(lambda r: r.state == "NORMAL", 300, "NORMAL after the update")
        assert r.device == "emu-7" and abs(r.ch4 - 0.3) < 0.05
    finally:
        probe.close()
