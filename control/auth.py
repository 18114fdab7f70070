"""People: passwords (scrypt), sessions (random tokens, stored hashed), CSRF tokens, login rate limits.

Roles: `viewer` sees everything; `operator` may also acknowledge alerts. An acknowledgement records that a
person saw an alert; nothing here can change a board.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections import defaultdict, deque

from control.store import Store

log = logging.getLogger("firedamp.control")

ROLES = ("viewer", "operator")
_N, _R, _P = 2**14, 8, 1  # scrypt cost: ~40 ms and 16 MiB per check on this machine (slow on purpose)
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@")


class AuthError(Exception):
    pass


def check_name(name: str) -> str:
    if not 1 <= len(name) <= 64 or not set(name) <= _NAME_CHARS:
        raise AuthError("a user name is 1..64 of A-Z a-z 0-9 . _ - @")
    return name


def hash_password(password: str) -> str:
    if len(password) < 8:
        raise AuthError("a password needs at least 8 characters")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(password.encode()[:1024], salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             dklen=32)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


_DUMMY = hash_password("not a real password")  # checked when the user does not exist: same time either way


class Auth:
    def __init__(self, store: Store, session_hours: float, failures: int, window_s: float):
        self.store = store
        self.session_s = session_hours * 3600
        self.max_failures = failures
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()
        self.counters = {"logins": 0, "login_failures": 0, "logins_refused_rate": 0}

    def _limited(self, keys: list[str], now: float) -> bool:
        """A user name is refused after `max_failures` in the window; an address after 4x that (several people
        share one control-room PC or proxy: one person's typos must not lock the others out)."""
        with self._lock:
            for k in keys:
                q = self._failures[k]
                while q and q[0] < now - self.window_s:
                    q.popleft()
                if len(q) >= self.max_failures * (4 if k.startswith("addr:") else 1):
                    return True
            return False

    def login(self, name: str, password: str, address: str) -> tuple[str, dict] | None:
        """(session token, session) for a right password; None otherwise. Raises AuthError('rate') when this
        user name or address has failed too often lately (no password is checked then)."""
        now = time.time()
        keys = [f"user:{name[:64]}", f"addr:{address}"]
        if self._limited(keys, now):
            self.counters["logins_refused_rate"] += 1
            log.warning("login refused for %r from %s: too many failures in %d s", name[:64], address,
                        self.window_s)
            raise AuthError("rate")
        user = self.store.user(name) if len(name) <= 64 else None
        ok = verify_password(password, user["hash"] if user else _DUMMY) and user is not None
        if not ok:
            with self._lock:
                for k in keys:
                    self._failures[k].append(now)
            self.counters["login_failures"] += 1
            log.warning("failed login for %r from %s", name[:64], address)
            return None
        token = secrets.token_urlsafe(32)
        session = {"user": user["name"], "role": user["role"], "csrf": secrets.token_urlsafe(24),
                   "expires": now + self.session_s}
        self.store.put_session(token_hash(token), user["name"], session["csrf"], session["expires"])
        self.counters["logins"] += 1
        log.info("login %r (%s) from %s", user["name"], user["role"], address)
        return token, session

    def session(self, token: str | None) -> dict | None:
        if not token or len(token) > 128:
            return None
        return self.store.session(token_hash(token), time.time())

    def logout(self, token: str | None) -> None:
        if token:
            self.store.drop_session(token_hash(token))


def csrf_ok(session: dict | None, given: str | None) -> bool:
    return bool(session and given and hmac.compare_digest(session["csrf"].encode(), given.encode()[:256]))
