"""The optional OLED: missing driver, missing display, failing display are reported, never fatal."""

import sys

import fwkit
import machine


class FakeSSD1306:
    """Stands in for micropython-lib's ssd1306 module: same class name, constructor, write_cmd/write_data."""

    class SSD1306_I2C:
        def __init__(self, width, height, i2c, addr=0x3C):
            self.i2c = i2c
            self.addr = addr
            self.buffer = bytearray(width * height // 8)
            self.texts = []
            self.i2c.writeto(addr, b"\x00\xae")   # display off: fails when nothing answers

        def fill(self, c):
            self.texts = []

        def text(self, s, x, y, c=1):
            self.texts.append(s)

        def write_cmd(self, cmd):
            self.i2c.writeto(self.addr, bytes((0x80, cmd)))

        def write_data(self, buf):
            self.i2c.writevto(self.addr, (b"\x40", buf))


def events(rig, code):
    return [f[5] for f in rig.frames() if f[0] == "E" and f[4] == code]


def test_missing_driver_is_reported_not_fatal():
    sys.modules.pop("ssd1306", None)
    rig = fwkit.Rig({"display": 1})
    try:
        ev = events(rig, "DISPLAY")
        assert ev and "no ssd1306 driver" in ev[0]
        rig.set_pct(0.2)
        rig.boot()
        assert rig.relay == 1
    finally:
        rig.close()


def test_missing_display_and_failing_display():
    sys.modules["ssd1306"] = FakeSSD1306
    try:
        rig = fwkit.Rig({"display": 1})
        try:
            ev = events(rig, "DISPLAY")
            assert ev and ev[0].startswith("display missing")
        finally:
            rig.close()
        rig = fwkit.Rig({"display": 1}, i2c=[0x3C])
        try:
            assert rig.ctl.display.ok and not events(rig, "DISPLAY")
            rig.set_pct(0.2)
            rig.boot()
            rig.step(8)
            oled = rig.ctl.display.oled
            assert oled.texts[0].startswith("CH4 0.2") and oled.texts[2] == "NORMAL RELAY ON"
            pages = [w for w in machine.I2C.written if w[:1] == b"\x40"]
            assert len(pages) >= 8
            machine.I2C.devices = []              # the display falls off the bus
            rig.step(2)
            ev = events(rig, "DISPLAY")
            assert len(ev) == 1 and ev[0].startswith("display failed, disabled")
            rig.step(20)
            assert rig.relay == 1 and not rig.ctl.display.ok
        finally:
            rig.close()
    finally:
        sys.modules.pop("ssd1306", None)
