"""Optional SSD1306 OLED (micropython-lib `ssd1306`): % CH4, flow, state and faults where people stand.

The loop never waits on it: the text is redrawn into the frame buffer every 8 iterations and one of the 8
pages (128 bytes, ~3 ms at 400 kHz I2C) is sent per iteration instead of the whole 1 KB buffer at once.
A missing driver, a missing display or an I2C error disables it and is reported, never raised.
"""

from bits import FLAG_CALIBRATION_DUE, fault_names
from compat import const
from protocol import STATES, fixed

_COL = const(0x21)   # SSD1306 set column address
_PAGE = const(0x22)  # SSD1306 set page address


class Display:
    """enabled: settings display; i2c: a function returning the I2C bus (board.i2c), called only when the
    driver is there (it may raise: the display is optional)."""

    def __init__(self, enabled, i2c):
        self.ok = False
        self.error = ""
        self.oled = None
        self._page = 0
        self._pages = []
        if not enabled:
            return
        try:
            import ssd1306  # type: ignore[import-not-found]
        except ImportError:
            self.error = "no ssd1306 driver on the board (firedamp flash installs it)"
            return
        try:
            oled = ssd1306.SSD1306_I2C(128, 64, i2c())
            buf = memoryview(oled.buffer)
            for p in range(8):
                self._pages.append(buf[p * 128:(p + 1) * 128])
        except Exception as exc:  # OSError from I2C, ValueError from a bad bus: all mean "no display"
            self.error = "display missing: %s" % exc
            return
        self.oled = oled
        self.ok = True

    def _draw(self, o, ctl):
        m = ctl.methane
        a = ctl.alarm
        o.fill(0)
        gas = fixed(m.x100, 2) if m.valid and a.state else "--"
        o.text("CH4 %s %%%s" % (gas, ctl.unit), 0, 0)
        o.text("%s %s" % (fixed(ctl.flow.rate_x1000, 3), ctl.flow_unit), 0, 12)
        o.text(STATES[a.state] + (" RELAY ON" if a.relay else " RELAY OFF"), 0, 24)
        o.text(fault_names(ctl.faults)[:16], 0, 36)
        note = "ACK NEEDED" if a.ack_awaited else ("CAL DUE" if ctl.flags & FLAG_CALIBRATION_DUE else "")
        o.text(note, 0, 48)

    def tick(self, ctl):
        """Called once per loop iteration: redraw every 8th call, send one page per call."""
        self.error = ""
        o = self.oled
        if o is None:
            return
        try:
            p = self._page
            if p == 0:
                self._draw(o, ctl)
            o.write_cmd(_COL)
            o.write_cmd(0)
            o.write_cmd(127)
            o.write_cmd(_PAGE)
            o.write_cmd(p)
            o.write_cmd(p)
            o.write_data(self._pages[p])
            self._page = (p + 1) & 7
        except Exception as exc:
            self.ok = False
            self.oled = None
            self.error = "display failed, disabled: %s" % exc
