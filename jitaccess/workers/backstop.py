"""The expiry backstop: ends identity-based access at its grant's expiry without Temporal.

Vault tokens, leases and secret-IDs carry a TTL equal to the grant's, so they end on time even when
the pipeline is down. IAM group memberships, Identity Center assignments and STS sessions (whose
keys outlive the grant: the revoke-deny ends them) have no such TTL; only the workflow's revoke ends
them, and that waits for Temporal. So every worker process also runs this: a thread with its own
loop that reads the ledger (jitaccess.ledger.backstop: what each grant was issued, the expiry it is
due at) and, `grace` after a grant's expiry, ends its access directly through the provider — if the
workflow has not already.

It acts exactly like the revoke activity, under the same locks: for shared access it takes the
target's hold lock, releases this grant's hold, and removes the access only when no other grant
holds it, then reads it back. Right before acting it re-reads the grant's expiry from the ledger
under that lock (an extension moves it first: the extend activity updates the backstop's row, and
fails when the backstop has already ended the access), so it never ends access a live grant still
holds. Several workers run it at once: each action runs in one transaction that locks the grant's
row, so exactly one acts and the others find the row closed.

It appends nothing to the grant's chain (the workflow owns it): it logs one SIEM line,
`backstop.revoked` (grant ID, provider, reference, lateness, outcome, read-back), and the workflow's
own revoke later finds the access gone and records `revocation.confirmed` with `already_gone: true`
and its read-back.
"""

from __future__ import annotations

import collections
import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import Connection, select

from jitaccess.ledger import Ledger
from jitaccess.ledger.backstop import (
    ALREADY_GONE,
    ENDED,
    ENDED_OUTCOME,
    HOLD_RELEASED,
    RELEASED,
    REVOKED,
    BackstopStore,
    Pending,
)
from jitaccess.ledger.holds import HoldStore, access_holds
from jitaccess.providers.base import ProviderRegistry

log = structlog.get_logger("jitaccess.backstop")
CLAIM_LEASE = 3.0  # seconds a backstop holds a grant's own credential while it revokes it


@dataclass(frozen=True)
class Action:
    """What one backstop action did (also the SIEM line's fields)."""

    grant_id: str
    provider: str
    outcome: str
    lateness_seconds: float
    read_back: str = ""
    held_by: tuple[str, ...] = ()


class ExpiryBackstop:
    def __init__(
        self,
        ledger: Ledger,
        providers: ProviderRegistry,
        *,
        grace: timedelta = timedelta(milliseconds=500),
        interval: timedelta = timedelta(milliseconds=250),
        adopt_every: timedelta = timedelta(seconds=10),
        concurrency: int = 4,
        name: str | None = None,
    ) -> None:
        self.store = BackstopStore(ledger)
        self.holds = HoldStore(ledger)
        self.ledger = ledger
        self.providers = providers
        self.grace, self.interval, self.adopt_every = grace, interval, adopt_every
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="backstop")
        self._in_flight: set[str] = set()
        self._retry_at: dict[str, tuple[float, int]] = {}  # grant_id -> (monotonic time, failures)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.recent: collections.deque[Action] = collections.deque(maxlen=1000)  # what it did, newest last

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> ExpiryBackstop:
        self._thread = threading.Thread(target=self._run, name="expiry-backstop", daemon=True)
        self._thread.start()
        log.info("backstop_started", worker=self.name, grace_seconds=self.grace.total_seconds())
        return self

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)

    @contextlib.contextmanager
    def running(self) -> Iterator[ExpiryBackstop]:
        self.start()
        try:
            yield self
        finally:
            self.stop()

    def _run(self) -> None:
        next_adopt = 0.0
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                if started >= next_adopt:
                    self.adopt()
                    next_adopt = started + self.adopt_every.total_seconds()
                self.scan()
                soonest = self._until_next_due()
            except Exception as e:  # the ledger unreachable, say: keep going, say so
                log.warning("backstop_scan_failed", worker=self.name, error=f"{e.__class__.__name__}: {e}")
                soonest = None
            step = self.interval.total_seconds() - (time.monotonic() - started)
            self._stop.wait(max(0.0, step if soonest is None else min(step, soonest)))

    def _until_next_due(self) -> float | None:
        """Seconds until the next grant falls due (expiry + grace), so it is acted on then rather
        than up to an interval later; None when none is open."""
        now = time.time()
        nxt = self.store.next_due(now - self.grace.total_seconds())
        return None if nxt is None else max(0.0, nxt + self.grace.total_seconds() - now)

    # -- one pass ----------------------------------------------------------------------------
    def scan(self, *, wait: bool = False) -> list[Action | None]:
        """Submit every due grant to the pool (each at most once at a time); with `wait`, act
        and return what was done (tests)."""
        now = datetime.now(UTC)
        futures = []
        for p in self.store.pending((now - self.grace).timestamp()):
            if p.state in ENDED:  # the workflow ended it (its projection says so): close, no provider call
                self.store.close(p.grant_id, ENDED_OUTCOME, self.name)
                continue
            expiry = p.expiry()
            if expiry is None or now < expiry + self.grace:
                continue
            with self._lock:
                retry = self._retry_at.get(p.grant_id)
                if p.grant_id in self._in_flight or (retry and retry[0] > time.monotonic()):
                    continue
                self._in_flight.add(p.grant_id)
            futures.append(self._pool.submit(self._act_logged, p.grant_id))
        return [f.result() for f in futures] if wait else []

    def adopt(self) -> int:
        """Rows for live grants issued before the backstop kept them (from `credential.issued`)."""
        ids = self.store.unrecorded_live_grants()
        if not ids:
            return 0
        issued = self.ledger.latest_events_of_type("credential.issued", ids)
        with self.ledger.engine.connect() as conn:
            keys = dict(
                conn.execute(
                    select(access_holds.c.grant_id, access_holds.c.target_key).where(access_holds.c.grant_id.in_(ids))
                ).all()
            )
        for gid, ev in issued.items():
            self.store.adopt(ev, keys.get(gid))
        return len(issued)

    def _act_logged(self, grant_id: str) -> Action | None:
        try:
            action = self.act(grant_id)
            with self._lock:
                self._retry_at.pop(grant_id, None)
            return action
        except Exception as e:
            with self._lock:
                failures = self._retry_at.get(grant_id, (0.0, 0))[1] + 1
                self._retry_at[grant_id] = (time.monotonic() + min(0.5 * 2 ** (failures - 1), 10.0), failures)
            log.warning(
                "backstop.failed",
                type="backstop.failed",
                severity="high",
                grant_id=grant_id,
                worker=self.name,
                attempt=failures,
                error=f"{e.__class__.__name__}: {e}",
            )
            return None
        finally:
            with self._lock:
                self._in_flight.discard(grant_id)

    # -- one grant -----------------------------------------------------------------------------
    def act(self, grant_id: str) -> Action | None:
        """End one grant's access if it is due, under the locks; None when there was nothing to do
        (closed meanwhile, extended, ended by the workflow, claimed by another worker's backstop)."""
        row = self.store.row(grant_id)
        if row is None or row["done_at"] is not None:
            return None
        if row["target_key"]:  # shared access: under the hold lock, as the activities change it
            with self.holds.locked(row["target_key"]) as holds:
                return self._act_shared(holds, grant_id)
        return self._act_own(grant_id)

    def _due(self, conn: Connection, grant_id: str) -> tuple[Pending, float] | None:
        """Lock the row and decide from what is recorded now: (the row, lateness) when due."""
        p = self.store.lock(conn, grant_id)
        if p is None:
            return None  # closed meanwhile (the workflow's revoke, or another worker's backstop)
        now = datetime.now(UTC)
        if p.state in ENDED:
            self.store.close(grant_id, ENDED_OUTCOME, self.name, conn=conn)
            return None
        expiry = p.expiry()  # as recorded right now, under the lock: an extension has moved it
        if expiry is None or now < expiry + self.grace:
            if expiry is not None and (p.due is None or expiry.timestamp() > p.due):
                self.store.catch_up(conn, grant_id, expiry)
            return None
        return p, (now - expiry).total_seconds()

    def _act_shared(self, holds, grant_id: str) -> Action | None:
        due = self._due(holds.conn, grant_id)
        if due is None:
            return None
        p, lateness = due
        if grant_id not in holds.holders():
            self.store.close(grant_id, HOLD_RELEASED, self.name, conn=holds.conn)
            return None
        holds.remove(grant_id)
        others = [g for g in holds.holders() if g != grant_id]
        if others:
            self.store.close(grant_id, RELEASED, self.name, conn=holds.conn)
            return self._report(p, RELEASED, lateness, "this grant's hold released", tuple(others))
        provider = self.providers.get(p.provider)
        removed = provider.revoke(p.credential)
        gone, seen = provider.verify_revoked(p.credential)
        if not gone:  # the transaction rolls back: the hold and the row stay as they were
            raise RuntimeError(f"read-back still shows the access: {seen}")
        outcome = REVOKED if removed else ALREADY_GONE
        self.store.close(grant_id, outcome, self.name, conn=holds.conn)
        return self._report(p, outcome, lateness, seen)

    def _act_own(self, grant_id: str) -> Action | None:
        with self.ledger.engine.begin() as conn:
            due = self._due(conn, grant_id)
            if due is None or not self.store.claim(conn, grant_id, self.name, CLAIM_LEASE):
                return None
        p, lateness = due
        provider = self.providers.get(p.provider)
        removed = provider.revoke(p.credential)  # outside any database lock: idempotent
        gone, seen = provider.verify_revoked(p.credential)
        if not gone:
            raise RuntimeError(f"read-back still shows the access: {seen}")
        outcome = REVOKED if removed else ALREADY_GONE
        self.store.close(grant_id, outcome, self.name)
        return self._report(p, outcome, lateness, seen)

    def _report(self, p: Pending, outcome: str, lateness: float, seen: str, held_by: tuple[str, ...] = ()) -> Action:
        action = Action(p.grant_id, p.provider, outcome, round(lateness, 3), seen, held_by)
        self.recent.append(action)
        log.warning(  # the workflow should have done this: a degraded pipeline, said once per grant
            "backstop.revoked",
            type="backstop.revoked",
            severity="warning",
            grant_id=p.grant_id,
            provider=p.provider,
            reference=p.credential.reference,
            expires_at=(p.expiry() or datetime.now(UTC)).isoformat(),
            lateness_seconds=action.lateness_seconds,
            outcome=outcome,
            held_by=list(held_by),
            read_back=seen,
            worker=self.name,
        )
        return action


def start_backstop(settings, ledger: Ledger, providers: ProviderRegistry | None = None) -> ExpiryBackstop | None:
    """The worker process's backstop (None when JITACCESS_BACKSTOP=false)."""
    if not settings.backstop:
        return None
    if providers is None:
        from jitaccess.bootstrap import build_providers

        providers = build_providers(settings)
    return ExpiryBackstop(ledger, providers, grace=settings.backstop_grace, interval=settings.backstop_interval).start()


def main() -> None:
    """`python -m jitaccess.workers.backstop`: the backstop alone, without a worker (a process of
    its own beside the workers, so it runs even when every worker is down). Same settings."""
    import signal

    from jitaccess.bootstrap import configure_logging
    from jitaccess.config import Settings

    configure_logging()
    settings = Settings()
    ledger = Ledger(settings.ledger_url)
    backstop = start_backstop(settings.model_copy(update={"backstop": True}), ledger)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    if backstop is not None:
        backstop.stop()
    ledger.close()


if __name__ == "__main__":
    main()
