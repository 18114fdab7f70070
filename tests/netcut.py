"""A cuttable network path for fault tests: a TCP forwarder on a free loopback port to one broker address.

    path = Cuttable(node.host, node.port)   # give the edge 127.0.0.1:path.port instead of the broker's address
    path.cut()                              # every connection through it dropped, new ones closed at once
    path.mend()                             # connections pass again
    path.close()

What the edge sees during a cut is what a lost route looks like to it: its connection ends, and every
reconnect attempt is refused (nothing listens on the port until mend()), so it tries the next server, and so
on. The port stays the same across a cut.
"""

from __future__ import annotations

import socket
import threading


class Cuttable:
    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.port = 0
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listen()

    def _listen(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", self.port))  # SO_REUSEADDR: the same port after a cut
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, args=(self.sock,), name=f"cuttable-{self.port}", daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def cut(self) -> None:
        """Stop listening (new connections refused) and drop every connection through the path."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        with self._lock:
            conns, self._conns = self._conns, set()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

    def mend(self) -> None:
        if self.sock is None:
            self._listen()

    def close(self) -> None:
        self.cut()

    def _accept(self, sock: socket.socket) -> None:
        while True:
            try:
                client, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:  # closed by cut()
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
