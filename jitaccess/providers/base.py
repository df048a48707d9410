"""The Provider port: issue, read back, revoke, read back, list what it manages."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from pydantic import ValidationError

from jitaccess.domain.credentials import IssuedCredential, ProviderGrant, WrappedHandover
from jitaccess.domain.provider_params import ProviderParams, describe


class ProviderError(Exception):
    """A provider call failed. `retryable=False` means retrying cannot help (bad config, bad params)."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


# A provider call that sets a TTL from the grant's expiry (ProviderGrant.ttl_at) and then takes
# longer than this may have had its TTL started late by the target (e.g. an OpenBao that was
# paused): the provider pulls the TTL in again, or discards the credential and retries.
SLOW_CALL = timedelta(milliseconds=500)


P = TypeVar("P", bound=ProviderParams)
R = TypeVar("R")


class SharedReads:
    """Reads that several providers make alike within one scan: the first caller of a key reads,
    callers of the same key wait for and share its answer (or its exception)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answers: dict[Hashable, Future[Any]] = {}

    def read(self, key: Hashable, read: Callable[[], R]) -> R:
        with self._lock:
            answer = self._answers.get(key)
            first = answer is None
            if answer is None:
                answer = self._answers[key] = Future()
        if first:
            try:
                answer.set_result(read())
            except BaseException as e:
                answer.set_exception(e)
        result: R = answer.result()
        return result


_SHARED_READS: ContextVar[SharedReads | None] = ContextVar("jitaccess_shared_reads", default=None)


@contextmanager
def shared_reads() -> Iterator[None]:
    """Within this scope (and the threads asyncio.to_thread starts from it, which copy the
    context), `read_shared` answers each key once. Only for scans that read everything at one
    moment (reconciliation): outside one, every read is fresh."""
    token = _SHARED_READS.set(SharedReads())
    try:
        yield
    finally:
        _SHARED_READS.reset(token)


def read_shared(key: Hashable, read: Callable[[], R]) -> R:
    """`read()`; within a `shared_reads()` scope, the scope's one answer for `key`."""
    scope = _SHARED_READS.get()
    return read() if scope is None else scope.read(key, read)


class Pace:
    """At most `per_second` calls a second, across every thread that shares it: each caller waits
    for the next free slot (slots do not pile up while nobody calls)."""

    def __init__(self, per_second: float) -> None:
        self._gap = 1.0 / per_second
        self._lock = threading.Lock()
        self._next = time.monotonic()

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self._gap
        if slot > now:
            time.sleep(slot - now)


_PACE: ContextVar[Pace | None] = ContextVar("jitaccess_pace", default=None)


@contextmanager
def paced(per_second: float | None) -> Iterator[None]:
    """Within this scope (and the threads asyncio.to_thread starts from it), `pace()` holds the
    calls to `per_second` (None: unpaced). For background scans (reconciliation): a scan that reads
    every object at full speed takes the worker's GIL and the target's CPU from the grants being
    revoked meanwhile (bench/README.md: the expiries' lag during a scan of 10,000 held grants)."""
    token = _PACE.set(Pace(per_second) if per_second else None)
    try:
        yield
    finally:
        _PACE.reset(token)


def pace() -> None:
    """Wait for this scope's next slot before a call to the target (no wait outside `paced`)."""
    if (p := _PACE.get()) is not None:
        p.wait()


def grant_params(model: type[P], grant: ProviderGrant) -> P:
    """The grant's params parsed by its provider's model (the one the catalogue was checked
    against when it loaded); ProviderError (not retryable) naming each bad field otherwise."""
    try:
        return model.model_validate(grant.params)
    except ValidationError as e:
        raise ProviderError(
            f"{grant.provider} needs valid params: {'; '.join(describe(e, model))}", retryable=False
        ) from None


def remaining_ttl(grant: ProviderGrant, now: datetime) -> int:
    """The TTL a provider sets at `now`: the grant's remaining whole seconds (rounded down).
    ProviderError (not retryable) when the grant's expiry has already passed."""
    ttl = grant.ttl_at(now)
    if ttl < 1:
        raise ProviderError(
            f"grant {grant.grant_id} expired at {grant.expires_at.isoformat() if grant.expires_at else '?'} "
            "before its credential could be issued",
            retryable=False,
        )
    return ttl


def ends_late(grant: ProviderGrant, ttl_seconds: int, call_ended: datetime) -> bool:
    """Could a TTL of `ttl_seconds`, started by the target at the latest when the call returned,
    outlive the grant's expiry by more than SLOW_CALL?"""
    return grant.expires_at is not None and call_ended + timedelta(seconds=ttl_seconds) > grant.expires_at + SLOW_CALL


class Provider(Protocol):
    name: str

    def issue(
        self, grant: ProviderGrant, *, wrap_ttl: timedelta, first_attempt: bool = True
    ) -> tuple[IssuedCredential, WrappedHandover | None]:
        """Create the access. Idempotent on grant_id: when `first_attempt` is False a
        previous attempt may have created something, and the provider must not leave two."""
        ...

    def verify_active(self, cred: IssuedCredential) -> tuple[bool, str]:
        """Read the target back: does the access exist as issued? (ok, what was seen)"""
        ...

    def revoke(self, cred: IssuedCredential) -> bool:
        """Remove the access; idempotent. Returns False when it was already gone."""
        ...

    def verify_revoked(self, cred: IssuedCredential) -> tuple[bool, str]:
        """Read the target back: is the access gone? (gone, what was seen)"""
        ...

    def list_managed(self, grant_id: str | None = None) -> list[IssuedCredential]:
        """Everything at the target tagged with a grant ID (optionally just one grant's)."""
        ...

    def extend(self, cred: IssuedCredential, ttl_seconds: int) -> IssuedCredential:
        """Move the provider-side TTL backstop to `ttl_seconds` from now (an approved extension).
        ProviderError(retryable=False) when the credential cannot be extended in place."""
        ...

    def shared_target(self, grant: ProviderGrant) -> str | None:
        """For identity-based access that several grants can yield at once (same principal
        in the same group / assignment), a key naming that access; None when every grant
        gets its own credential. Shared access is held by a hold count (ledger.holds)."""
        ...

    def expected_credential(self, grant: ProviderGrant) -> IssuedCredential | None:
        """The reference issue() produces for this grant when it is deterministic
        (identity-based access), so clean-up can find what a failed issue left behind."""
        ...


class PerGrantCredentials:
    """Mixin for providers that mint a separate credential per grant: nothing is shared,
    and leftovers are found by their grant tag (list_managed)."""

    name: str

    def extend(self, cred: IssuedCredential, ttl_seconds: int) -> IssuedCredential:
        raise ProviderError(
            f"{self.name} credentials cannot be extended in place; request a new grant", retryable=False
        )

    def shared_target(self, grant: ProviderGrant) -> str | None:
        return None

    def expected_credential(self, grant: ProviderGrant) -> IssuedCredential | None:
        return None

    @staticmethod
    @contextmanager
    def discard_on_failure(discard: Callable[[], None]) -> Iterator[None]:
        """For the steps after a credential was created: if one fails (or is interrupted), remove the
        credential, best effort (a later clean-up finds it by its grant tag), and re-raise."""
        try:
            yield
        except BaseException:
            try:
                discard()
            except Exception:
                pass
            raise


class ProviderRegistry:
    """Provider type name -> implementation, built once by the worker bootstrap."""

    def __init__(self, providers: dict[str, Provider]) -> None:
        self._providers = dict(providers)

    def get(self, name: str) -> Provider:
        try:
            return self._providers[name]
        except KeyError:
            raise ProviderError(
                f"no provider {name!r} is configured on this worker; configured: {', '.join(sorted(self._providers)) or 'none'}",
                retryable=False,
            ) from None

    def names(self) -> list[str]:
        return sorted(self._providers)
