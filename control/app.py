"""The control-room app: one object that owns the store, the auth and the live hub and builds the routes.

Every page has a JSON twin at the same address with `.json` (`/` ↔ `/index.json`, `/board/S/D` ↔
`/board/S/D.json`, `/alerts` ↔ `/alerts.json`, `/report` ↔ `/report.json`). Everything needs a login except
`/login`, `/static/*` and `/-/health` (for a liveness probe). The acknowledge POST needs the `operator`
role and the session's CSRF token. Assets are served by the program itself: a control room has no internet.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, unquote

from control import html
from control.auth import Auth, AuthError, csrf_ok
from control.config import Config
from control.live import Hub
from control.store import Store, StoreError
from control.web import HttpError, Request, Response

STATIC = Path(__file__).parent / "static"
_STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                 ".png": "image/png", ".svg": "image/svg+xml"}
COOKIE = "fd_session"

View = Callable[..., Response]


class App:
    def __init__(self, cfg: Config, store: Store, hub: Hub, status: Callable[[], dict] | None = None):
        from control.views import alerts, board, live, overview, report

        self.cfg = cfg
        self.store = store
        self.hub = hub
        self.zone = cfg.zone()
        self.auth = Auth(store, cfg.web.session_hours, cfg.web.login_failures, cfg.web.login_window_s)
        self.status = status or (lambda: {})
        # (method, pattern, view, role needed: None = anyone logged in)
        self.routes: list[tuple[str, re.Pattern, View, str | None]] = [
            ("GET", re.compile(r"^/(?:index(?P<fmt>\.json))?$"), overview.view, None),
            ("GET", re.compile(r"^/board/(?P<site>[^/]+)/(?P<device>[^/]+?)(?P<fmt>\.json|\.csv)?$"), board.view,
             None),
            ("GET", re.compile(r"^/alerts(?P<fmt>\.json|\.csv)?$"), alerts.view, None),
            ("POST", re.compile(r"^/alerts/(?P<alert_id>[^/]+)/ack$"), alerts.acknowledge, "operator"),
            ("GET", re.compile(r"^/report(?P<fmt>\.json|\.csv)?$"), report.view, None),
            ("GET", re.compile(r"^/live$"), live.view, None),
            ("GET", re.compile(r"^/-/status\.json$"), self._status, None),
        ]

    # ------------------------------------------------------------------------------------------ dispatch

    def handle(self, req: Request) -> Response:
        if req.method == "HEAD":
            req.method = "GET"
        path = req.path
        if path.startswith("/static/"):
            return self._static(path[len("/static/"):])
        if path == "/-/health":
            return Response(200, "ok\n", "text/plain; charset=utf-8")
        if path == "/login":
            return self._login(req)
        req.token = req.cookies.get(COOKIE)
        try:
            req.session = self.auth.session(req.token)
        except StoreError as exc:
            raise HttpError(503, f"the database cannot be read: {exc}") from exc
        if path == "/logout" and req.method == "POST":
            return self._logout(req)
        for method, pattern, view, role in self.routes:
            match = pattern.match(path)
            if not match:
                continue
            if req.method != method:
                raise HttpError(405, f"{path} does not take {req.method}")
            if req.session is None:
                if path.endswith((".json", ".csv")) or method == "POST" or path == "/live":
                    raise HttpError(401, "log in first (POST /login)")
                return Response.redirect("/login?next=" + quote(path + _query(req)))
            if role == "operator" and req.session["role"] != "operator":
                raise HttpError(403, "only an operator may acknowledge alerts (you are a viewer)")
            if method == "POST":
                self._check_post(req)
            params = {k: unquote(v) if k in ("site", "device", "alert_id") else v
                      for k, v in match.groupdict().items()}
            try:
                return view(self, req, **params)
            except StoreError as exc:
                raise HttpError(503, f"the database cannot be used: {exc}") from exc
        raise HttpError(404, "no such page")

    def _check_post(self, req: Request) -> None:
        origin = req.headers.get("Origin")
        host = req.headers.get("Host")
        if origin and host and origin.split("://", 1)[-1] != host:
            raise HttpError(403, "cross-site request refused (Origin does not match Host)")
        if not csrf_ok(req.session, req.form.get("csrf")):
            raise HttpError(403, "the form's CSRF token is missing or wrong: reload the page and try again")

    def _status(self, app: App, req: Request) -> Response:
        return json_response({"counters": self.status(), "auth": self.auth.counters, "live_pages": self.hub.pages})

    # ------------------------------------------------------------------------------------------ login

    def _login(self, req: Request) -> Response:
        nxt = req.form.get("next") or req.query.get("next") or "/"
        if not nxt.startswith("/") or nxt.startswith("//"):
            nxt = "/"  # never an open redirect
        if req.method == "GET":
            return Response(200, self._login_page(nxt, ""))
        if req.method != "POST":
            raise HttpError(405, "/login takes GET or POST")
        origin = req.headers.get("Origin")
        host = req.headers.get("Host")
        if origin and host and origin.split("://", 1)[-1] != host:
            raise HttpError(403, "cross-site login refused")
        user, password = req.form.get("user", ""), req.form.get("password", "")
        try:
            result = self.auth.login(user, password, req.address)
        except AuthError:
            return Response(429, self._login_page(nxt, "Too many failed logins: wait a few minutes."),
                            headers=[("Retry-After", str(int(self.cfg.web.login_window_s)))])
        if result is None:
            return Response(401, self._login_page(nxt, "Wrong user name or password."))
        token, session = result
        return Response.redirect(nxt, [("Set-Cookie", self._cookie(token, int(self.cfg.web.session_hours * 3600)))])

    def _cookie(self, token: str, max_age: int) -> str:
        secure = "; Secure" if self.cfg.web.cookie_secure else ""
        return f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"

    def _login_page(self, nxt: str, message: str) -> str:
        return html.template("login.html").substitute(
            next=html.h(nxt), message=f'<p class="error">{html.h(message)}</p>' if message else "")

    def _logout(self, req: Request) -> Response:
        if req.session is not None:
            self._check_post(req)
            self.auth.logout(req.token)
        return Response.redirect("/login", [("Set-Cookie", self._cookie("", 0))])

    # ------------------------------------------------------------------------------------------ assets

    def _static(self, name: str) -> Response:
        path = STATIC / name
        if "/" in name or name.startswith(".") or not path.is_file() or path.suffix not in _STATIC_TYPES:
            raise HttpError(404, "no such file")
        return Response(200, path.read_bytes(), _STATIC_TYPES[path.suffix])


def _query(req: Request) -> str:
    from urllib.parse import urlencode

    return "?" + urlencode(req.query) if req.query else ""


def json_response(data, status: int = 200) -> Response:
    return Response(status, json.dumps(data, separators=(",", ":"), allow_nan=False, default=str),
                    "application/json")


def now() -> float:
    return time.time()
