"""The virtual board's serial line: a pseudo-terminal whose slave is reached through a stable symlink.

The edge service and the console open the symlink exactly as they would open `/dev/ttyACM0`. The board keeps
the master side open for its whole life, so a reader may close the port and open it again (the edge does
that on every link error) and find the board still there. Like a USB CDC port with no host listening, what
the board sends while nobody has the port open is dropped, not queued: a reader that opens the port later
sees fresh frames, never minutes-old ones.
"""

from __future__ import annotations

import errno
import os
import select
import termios
import tty
from pathlib import Path

from firedamp.errors import LinkError

_OUT_LIMIT = 65536  # bytes held back while the reader is slow; past it whole writes are dropped and counted


class PtyLink:
    """The board end of a pty: non-blocking `read(n)` / `write(data)` for the firmware's stream.

    `path` is the symlink to the slave device. `dropped` counts bytes the board wrote that nobody was there
    to read (port closed, or the reader too slow for `_OUT_LIMIT` bytes).
    """

    def __init__(self, link: str | os.PathLike[str]):
        self.path = Path(link).absolute()
        if self.path.exists() and not self.path.is_symlink():
            raise LinkError(f"{self.path} exists and is not a symlink; refusing to replace it with a virtual board")
        self._master, slave = os.openpty()
        self.device = os.ttyname(slave)
        # raw, no echo: otherwise the slave's line discipline would echo each frame back as a console command
        tty.setraw(slave)
        attrs = termios.tcgetattr(slave)
        attrs[3] &= ~(termios.ECHO | termios.ECHONL | termios.ICANON)
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        os.close(slave)
        os.set_blocking(self._master, False)
        self._poll = select.poll()
        self._poll.register(self._master, select.POLLIN)
        self._out = bytearray()
        self.dropped = 0
        self.written = 0
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if tmp.is_symlink():
                tmp.unlink()
            tmp.symlink_to(self.device)
            os.replace(tmp, self.path)  # atomic: a reader never sees a half-made link
        except OSError as exc:
            os.close(self._master)
            raise LinkError(f"cannot create the serial link {self.path}: {exc}") from exc

    def connected(self) -> bool:
        """True while some process has the port open (the master reports a hang-up when nobody has)."""
        return not any(ev & select.POLLHUP for _, ev in self._poll.poll(0))

    def read(self, n: int = 256) -> bytes | None:
        """Bytes the host sent, or None when there are none (never blocks)."""
        try:
            data = os.read(self._master, n)
        except BlockingIOError:
            return None
        except OSError as exc:
            if exc.errno == errno.EIO:  # nobody has the slave open
                return None
            raise
        return data or None

    def write(self, data: bytes) -> int:
        """Queue `data` for the host and push what the pty takes now; returns len(data) (never blocks)."""
        if not self.connected():
            self._out.clear()
            self.dropped += len(data)
            return len(data)
        if len(self._out) + len(data) > _OUT_LIMIT:
            self.dropped += len(data)
        else:
            self._out += data
        self.flush()
        return len(data)

    def backlog(self) -> int:
        """Bytes written by the board and not yet taken by the pty (0 when nobody listens)."""
        return len(self._out)

    def flush(self) -> None:
        """Push held-back bytes into the pty as far as it takes them."""
        while self._out:
            try:
                sent = os.write(self._master, self._out)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno == errno.EIO:
                    self.dropped += len(self._out)
                    self._out.clear()
                    return
                raise
            self.written += sent
            del self._out[:sent]

    def close(self) -> None:
        """Remove the symlink (if it is still ours) and close the pty: readers see the board unplugged."""
        try:
            if self.path.is_symlink() and os.readlink(self.path) == self.device:
                self.path.unlink()
        except OSError:
            pass
        try:
            os.close(self._master)
        except OSError:
            pass
