"""The demo's operator: acknowledges a latched power-off at the board's console, as a person would.

The board keeps the power cut after methane falls below the restore level until someone acknowledges
(`unlock <pin>`, then `ack`) at its console: the edge service never does it. In the demo this class plays
that person, through the same console code `firedamp console` uses, on the board's technician port, and
says on screen what it typed and what the board answered.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from edge.console import Console, open_port
from edge.errors import FiredampError
from edge.frames import FLAG_ACK_AWAITED, Reading


class Operator:
    def __init__(self, console_port: Path, pin: str, say: Callable[[str], None]):
        self.port = console_port
        self.pin = pin
        self.say = say
        self.acks = 0
        self._busy = False
        self._done = False  # acknowledged this power-off already

    def on_reading(self, r: Reading) -> None:
        if r.state != "POWEROFF":
            self._done = False
            return
        if r.flags & FLAG_ACK_AWAITED and not self._busy and not self._done:
            self._busy = True
            threading.Thread(target=self._acknowledge, args=(r,), name="operator", daemon=True).start()

    def _acknowledge(self, r: Reading) -> None:
        try:
            self.say(f"operator: CH4 {r.ch4:.2f} % is below the restore level and the board waits for an "
                     f"acknowledgement; at its console ({self.port}) the operator types `unlock <pin>` and `ack`")
            with Console(open_port(str(self.port))) as console:
                for text in (f"unlock {self.pin}", "ack"):
                    reply = console.command(text)
                    shown = "unlock ****" if text.startswith("unlock") else text
                    self.say(f"operator> {shown}   board: {reply.status} {' / '.join(reply.lines)}")
                    if reply.status != "OK":
                        return
            self.acks += 1
            self._done = True
        except FiredampError as exc:
            self.say(f"operator: console failed: {exc}")
        finally:
            self._busy = False
