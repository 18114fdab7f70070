"""A small HTTP layer on the standard library: requests in, responses out, one thread per connection.

Bounded everywhere a client controls the size: the request line and headers (http.server: 64 KiB line,
100 headers), the body (`MAX_BODY`), the number of connections served at once (beyond it: 503 and close),
and an idle timeout on every socket. A malformed request gets a 4xx with one plain sentence and is counted.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger("firedamp.control")

MAX_BODY = 16 * 1024  # an acknowledgement note or a login form
IDLE_TIMEOUT_S = 30.0


class HttpError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: Any
    address: str
    form: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)
    session: dict | None = None
    token: str | None = None


@dataclass
class Response:
    status: int = 200
    body: bytes | str = b""
    content_type: str = "text/html; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)
    stream: Any = None  # a callable(write) for an event stream instead of a body

    @classmethod
    def redirect(cls, where: str, headers: list[tuple[str, str]] | None = None) -> Response:
        return cls(303, b"", "text/plain; charset=utf-8", [("Location", where), *(headers or [])])


SECURITY_HEADERS = [
    ("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),
    ("Cache-Control", "no-store"),
]


def _first(values: dict[str, list[str]]) -> dict[str, str]:
    return {k: v[0] for k, v in values.items() if v}


class Server(ThreadingHTTPServer):
    """ThreadingHTTPServer with a cap on connections served at once and counted malformed requests."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app, max_threads: int):
        self.app = app
        self.slots = threading.BoundedSemaphore(max_threads)
        self.counters: Counter[str] = Counter()
        super().__init__(address, _Handler)

    def process_request(self, request, client_address):
        if not self.slots.acquire(blocking=False):
            self.counters["refused_busy"] += 1
            try:
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class _Handler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT_S
    server_version = "firedamp-control-room"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
        log.debug("http %s " + format, self.address_string(), *args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # http.server's own errors (bad request line, too long headers, ...): one plain line, counted
        self.server.counters[f"http_{code}"] += 1
        body = f"{code} {message or HTTPStatus(code).phrase}\n".encode()
        self.request_version = "HTTP/1.1"  # a line too broken to name its version still gets a status line
        try:
            self.send_response(code, message)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:
            pass
        self.close_connection = True

    def do_GET(self) -> None:
        self._serve("GET")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def do_POST(self) -> None:
        self._serve("POST")

    def _request(self, method: str) -> Request:
        parts = urlsplit(self.path)
        if not parts.path.startswith("/"):
            raise HttpError(400, "the request target must be a path")
        req = Request(method, parts.path, _first(parse_qs(parts.query, max_num_fields=50)), self.headers,
                      self.client_address[0])
        raw_cookie = self.headers.get("Cookie")
        if raw_cookie:
            try:
                jar = SimpleCookie()
                jar.load(raw_cookie[:4096])
                req.cookies = {k: v.value for k, v in jar.items()}
            except CookieError:
                req.cookies = {}
        if method == "POST":
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                raise HttpError(411, "a POST needs a Content-Length")
            if int(length) > MAX_BODY:
                raise HttpError(413, f"the body may be at most {MAX_BODY} bytes")
            body = self.rfile.read(int(length))
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if ctype != "application/x-www-form-urlencoded":
                raise HttpError(415, "send the form as application/x-www-form-urlencoded")
            try:
                req.form = _first(parse_qs(body.decode("utf-8"), max_num_fields=20, strict_parsing=False))
            except (UnicodeDecodeError, ValueError):
                raise HttpError(400, "the form is not UTF-8 url-encoded text") from None
        return req

    def _serve(self, method: str) -> None:
        try:
            req = self._request(method)
            resp = self.server.app.handle(req)
        except HttpError as exc:
            self.server.counters[f"http_{exc.status}"] += 1
            # a refused request may have left its body unread: answer and close, never read on into it
            resp = Response(exc.status, f"{exc.status} {exc}\n", "text/plain; charset=utf-8", [("Connection", "close")])
            self.close_connection = True
        except Exception:
            self.server.counters["http_500"] += 1
            log.exception("error answering %s %s", method, self.path[:200])
            resp = Response(500, "500 internal error (logged)\n", "text/plain; charset=utf-8")
        self._send(method, resp)

    def _send(self, method: str, resp: Response) -> None:
        body = resp.body.encode() if isinstance(resp.body, str) else resp.body
        try:
            self.send_response(resp.status)
            self.send_header("Content-Type", resp.content_type)
            for k, v in SECURITY_HEADERS + resp.headers:
                self.send_header(k, v)
            if resp.stream is not None:
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                self.connection.settimeout(IDLE_TIMEOUT_S)  # a reader that stops reading is dropped
                resp.stream(self._write_stream)
                return
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(body)
        except (TimeoutError, OSError):
            self.close_connection = True

    def _write_stream(self, data: bytes) -> None:
        self.wfile.write(data)
        self.wfile.flush()
