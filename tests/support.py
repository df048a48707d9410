"""What every test package shares: waiting for a condition (`eventually`), and a test double
around a real object (`Delegating`)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


class _Wait:
    """One wait: the deadline, and the last thing the predicate saw (for the failure message)."""

    def __init__(self, timeout: float, what: str) -> None:
        self.timeout, self.what = timeout, what
        self.deadline = time.monotonic() + timeout
        self.last = "nothing yet"

    def saw(self, value: Any = None, not_yet: AssertionError | None = None) -> bool:
        """Record one try; True when it is time to give up."""
        self.last = str(not_yet) if not_yet is not None else repr(value)
        return time.monotonic() >= self.deadline

    def failed(self) -> AssertionError:
        return AssertionError(f"{self.what}: not within {self.timeout:g}s (last: {self.last})")


async def eventually(
    predicate: Callable[[], T | Awaitable[T]], timeout: float = 20, what: str = "condition", *, interval: float = 0.1
) -> T:
    """Call `predicate` (plain or async) until it returns something truthy, and return that.

    It may also raise AssertionError to say "not yet" (its message is kept for the failure);
    anything else it raises ends the wait at once (use pytest.fail for "this will never happen").
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
        except AssertionError as e:
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
