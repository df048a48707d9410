"""Server-side sessions for the web console: the browser holds only a random session ID in an
HttpOnly, SameSite=Lax cookie (Secure outside localhost); the ID token, the CSRF token and a
sign-in in progress stay on the server. Signing out deletes the session, so a copied cookie is
worthless afterwards. One process keeps its own store (run one API process per console, or
sticky sessions in front of several)."""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

COOKIE = "jitaccess_session"


@dataclass
class Session:
    sid: str
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    id_token: str | None = None
    user: str | None = None
    token_exp: float = 0.0  # the ID token's exp: the session ends then at the latest
    created: float = field(default_factory=time.time)
    last_seen: float = field(default_factory=time.time)
    # a sign-in in progress: state, nonce, PKCE verifier, where to go afterwards
    login: dict[str, Any] | None = None
    flash: list[tuple[str, str]] = field(default_factory=list)  # (kind, message) shown on the next page

    def csrf_ok(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf.encode(), str(token).encode())


class SessionStore:
    """In-memory, bounded (least recently used sessions go first), expiring by age and idleness."""

    def __init__(self, ttl: float, idle: float, max_sessions: int) -> None:
        self.ttl, self.idle, self.max = ttl, idle, max_sessions
        self._s: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def _alive(self, s: Session, now: float) -> bool:
        if now - s.created > self.ttl or now - s.last_seen > self.idle:
            return False
        return s.id_token is None or now < s.token_exp

    def get(self, sid: str | None) -> Session | None:
        if not sid or len(sid) > 100:
            return None
        now = time.time()
        with self._lock:
            s = self._s.get(sid)
            if s is None:
                return None
            if not self._alive(s, now):
                del self._s[sid]
                return None
            s.last_seen = now
            self._s.move_to_end(sid)
            return s

    def new(self) -> Session:
        s = Session(sid=secrets.token_urlsafe(32))
        with self._lock:
            self._s[s.sid] = s
            while len(self._s) > self.max:
                self._s.popitem(last=False)
        return s

    def drop(self, sid: str | None) -> None:
        with self._lock:
            self._s.pop(sid or "", None)

    def rotate(self, old: Session) -> Session:
        """A new session ID (and CSRF token) for a sign-in: a session ID planted before sign-in
        (session fixation) never becomes a signed-in session."""
        self.drop(old.sid)
        return self.new()
