"""What a host may send on the board's USB link: never a control character (0x03 is Ctrl-C to MicroPython)."""

import pytest
import serial

from edge.console import Console
from edge.errors import LinkError


def test_edge_console_never_sends_a_control_character():
    """A 0x03 byte on the USB link raises KeyboardInterrupt in the board's loop: the firmware stops (power cut,
    beacon on) until someone resets the board. `firedamp console` refuses such a command instead."""
    port = serial.serial_for_url("loop://", timeout=0.05)
    sent = []
    write = port.write
    port.write = lambda data: sent.append(bytes(data)) or write(data)
    with Console(port) as console:
        for text in ("status\x03", "\x03", "st\x04atus", "get\x1b[A"):
            with pytest.raises(LinkError, match="control characters"):
                console.send(text)
        assert sent == []
        console.send("get\tpin")                      # a tab is only a space to the board
        assert sent == [b"get\tpin\n"]
