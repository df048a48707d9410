"""Reads every issued credential back *at its target* (the provider's own verify_active), every
POLL seconds around its expiry (every 2 s before), independently of the pipeline."""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from jitaccess.bootstrap import build_providers
from jitaccess.config import Settings

POLL = 0.25  # seconds between read-backs of one credential (around its expiry)
EPOCH = datetime.fromtimestamp(0, UTC)


class Poller:
    """Reads every credential back at its target every POLL s, on its own threads."""

    def __init__(self, settings: Settings) -> None:
        self.providers = build_providers(settings)
        self.creds: dict[str, tuple] = {}  # grant_id -> (provider, credential, expires_at)
        self.last_alive: dict[str, datetime] = {}
        self.dead_since: dict[str, datetime] = {}
        self.errors: dict[str, int] = defaultdict(int)
        self.checked: dict[str, datetime] = {}  # grant_id -> when it was last read back
        self.vault_tokens_max: dict[str, int] = {}  # grant_id -> most live tokens tagged with it at one sweep
        self._stop = threading.Event()
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def watch(self, grant_id: str, provider: str, cred, expires_at: datetime) -> None:
        with self._lock:
            self.creds[grant_id] = (provider, cred, expires_at)

    def _check(self, grant_id: str) -> None:
        provider, cred, expires_at = self.creds[grant_id]
        now = datetime.now(UTC)
        self.checked[grant_id] = now
        try:
            alive, _seen = self.providers.get(provider).verify_active(cred)
        except Exception:
            self.errors[provider] += 1
            return
        with self._lock:
            if alive:
                self.last_alive[grant_id] = now
                self.dead_since.pop(grant_id, None)
            else:
                self.dead_since.setdefault(grant_id, now)

    def run(self, providers: list[str]) -> None:
        """One polling loop per provider, each on its own threads."""
        for provider in providers:
            self._pools[provider] = ThreadPoolExecutor(4)
            self._thread(self._loop, provider)
        if "vault_token" in providers:
            self._thread(self._sweep_vault)

    def _thread(self, target, *args) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)
        t.start()
        self._threads.append(t)

    def _due(self, provider: str, now: datetime) -> list[str]:
        # every POLL s from 1 s before its expiry until it has been seen dead for 3 s after it;
        # before that every 2 s (the target serves the pipeline too: moto is one process)
        with self._lock:
            return [
                g
                for g, (p, _c, exp) in self.creds.items()
                if p == provider
                and not (g in self.dead_since and now > max(exp, self.dead_since[g]) + timedelta(seconds=3))
                and (now >= exp - timedelta(seconds=1) or now - self.checked.get(g, EPOCH) >= timedelta(seconds=2))
            ]

    def _loop(self, provider: str) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            list(self._pools[provider].map(self._check, self._due(provider, datetime.now(UTC))))
            self._stop.wait(max(0.0, POLL - (time.monotonic() - t0)))

    def _sweep_vault(self) -> None:
        """Double issuance at the target: live tokens tagged with one grant, every 2 s."""
        while not self._stop.wait(2):
            try:
                live = self.providers.get("vault_token").list_managed()
            except Exception:
                continue
            for gid, n in Counter(c.grant_id for c in live if c.grant_id.startswith("grant-chaos-")).items():
                with self._lock:
                    self.vault_tokens_max[gid] = max(n, self.vault_tokens_max.get(gid, 0))

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(15)
        for pool in self._pools.values():
            pool.shutdown(wait=True)
