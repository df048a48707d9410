"""What every test package shares: waiting for a condition (`eventually`), a test double around a
real object (`Delegating`), and a throwaway PostgreSQL database (`throwaway_postgres`)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from sqlalchemy.engine import URL

T = TypeVar("T")


class _Wait:
    """One wait: the deadline, and the last thing the predicate saw (for the failure message)."""

    def __init__(self, timeout: float, what: str) -> None:
        self.timeout, self.what = timeout, what
        self.deadline = time.monotonic() + timeout
        self.last = "nothing yet"

    def saw(self, value: Any = None, not_yet: BaseException | None = None) -> bool:
        """Record one try; True when it is time to give up."""
        self.last = str(not_yet) if not_yet is not None else repr(value)
        return time.monotonic() >= self.deadline

    def failed(self) -> AssertionError:
        return AssertionError(f"{self.what}: not within {self.timeout:g}s (last: {self.last})")


async def eventually(
    predicate: Callable[[], T | Awaitable[T]],
    timeout: float = 20,
    what: str = "condition",
    *,
    interval: float = 0.1,
    ignoring: tuple[type[Exception], ...] = (),
) -> T:
    """Call `predicate` (plain or async) until it returns something truthy, and return that.

    It may also raise AssertionError to say "not yet" (its message is kept for the failure), or one
    of `ignoring` (e.g. a server not listening yet); anything else it raises ends the wait at once
    (use pytest.fail for "this will never happen").
    After `timeout` seconds: AssertionError naming `what` and the last thing seen."""
    wait = _Wait(timeout, what)
    while True:
        try:
            value = predicate()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value  # type: ignore[return-value]
            give_up = wait.saw(value)
        except (AssertionError, *ignoring) as e:
            give_up = wait.saw(not_yet=e)
        if give_up:
            raise wait.failed()
        await asyncio.sleep(interval)


def eventually_sync(
    predicate: Callable[[], T], timeout: float = 20, what: str = "condition", *, interval: float = 0.1
) -> T:
    """`eventually` for a plain test (no event loop running): blocks between tries."""
    return asyncio.run(eventually(predicate, timeout, what, interval=interval))


class Delegating:
    """A test double around a real object (a provider, a boto3 client): every attribute it does not
    override is the real one's, so it keeps up as the real interface grows. Subclasses override
    the calls they change and reach the original through `self.real`."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def __getattr__(self, attr: str) -> Any:
        if attr == "real":  # not set yet (copy, pickle): do not recurse
            raise AttributeError(attr)
        return getattr(self.real, attr)


def entitlement_spec(id: str, **fields: Any) -> dict[str, Any]:
    """A catalogue entry as catalogue.yaml spells it, with `fields` over these defaults: a Vault
    token for the `platform` group, 30 minutes by default and 2 hours at most, approved by `security`."""
    spec: dict[str, Any] = {
        "id": id,
        "description": id,
        "provider": {"type": "vault_token", "params": {"policies": ["p"]}},
        "default_duration": "PT30M",
        "max_duration": "PT2H",
        "requester_groups": ["platform"],
        "approval": {"approver_groups": ["security"]},
    }
    return {**spec, **fields}


# the PostgreSQL server the suite makes its throwaway databases on (as its superuser)
POSTGRES_ADMIN_DSN = os.environ.get("JITACCESS_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


@dataclass(frozen=True)
class ThrowawayDb:
    name: str
    dsn: str  # for psycopg (and Vault's database engine): libpq key=value
    url: str  # for SQLAlchemy (the ledger): postgresql+psycopg://...


@contextlib.contextmanager
def throwaway_postgres(prefix: str) -> Iterator[ThrowawayDb]:
    """A fresh, empty PostgreSQL database named `prefix_<random>`, dropped (WITH FORCE) afterwards.
    Skips the test when psycopg is missing or the server (JITACCESS_TEST_POSTGRES_DSN, default the
    local one) is not reachable."""
    psycopg = pytest.importorskip("psycopg", reason="psycopg is needed for the PostgreSQL tests")
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as e:
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_DSN} (set JITACCESS_TEST_POSTGRES_DSN): {e}")
    name = f"{prefix}_{secrets.token_hex(6)}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            dsn = psycopg.conninfo.make_conninfo(POSTGRES_ADMIN_DSN, dbname=name)
            yield ThrowawayDb(name, dsn, _sqlalchemy_url(psycopg.conninfo.conninfo_to_dict(dsn)))
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _sqlalchemy_url(params: dict[str, Any]) -> str:
    port = params.get("port")
    url = URL.create(
        "postgresql+psycopg",
        username=params.get("user"),
        password=params.get("password"),
        host=params.get("host"),
        port=int(port) if port else None,
        database=params["dbname"],
    )
    return url.render_as_string(hide_password=False)
