"""The expiry backstop (jitaccess.workers.backstop): identity-based access ends at its grant's expiry
even when Temporal cannot deliver the expiry.

With a real moto IAM group and a real Temporal dev server started for these tests only (so killing
it never touches the session's server): a grant becomes active, Temporal is killed just before the
expiry, the membership is gone within 2 s of the expiry (read from IAM directly), and once Temporal
is back the grant ends `revoked`, its revocation confirmed by read-back (`already_gone`), its chain
intact. An extended grant is not touched at its old expiry. And, without Temporal, the store's
rules: shared holds, extensions racing the backstop, several backstops at once (SQLite and
PostgreSQL), credentials whose provider TTL ends them anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jitaccess.dev.servers import Server, free_port, start_temporal
from jitaccess.domain.credentials import IssuedCredential, ProviderGrant
from jitaccess.domain.grant import ExtendInput
from jitaccess.domain.policy import evaluate_extension
from jitaccess.domain.states import GrantState
from jitaccess.ledger import Ledger
from jitaccess.ledger.backstop import (
    ALREADY_GONE,
    PROVIDER_TTL,
    RELEASED,
    REVOKED,
    WORKFLOW,
    BackstopStore,
)
from jitaccess.ledger.holds import HoldStore
from jitaccess.providers.base import ProviderRegistry
from jitaccess.workers.backstop import ExpiryBackstop
from jitaccess.workflows.grant import GrantWorkflow
from tests.conftest import running_worker
from tests.integration.iam_group_support import ENTITLEMENT, REGION, catalogue, member
from tests.integration.test_durability import stop, worker_env
from tests.support import eventually
from tests.workflows.support import finish, grant_input, one, principal, types, wait_state

GRACE = timedelta(seconds=1)
BOUND = 2.0  # seconds past expiry a credential may live (issue 11)


# -- a Temporal of our own, which the tests kill and restart on the same port and database -------
class OwnTemporal:
    def __init__(self, workdir: Path) -> None:
        self.workdir, self.port, self.db = workdir, free_port(), workdir / "temporal.db"
        self.server: Server | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.server = start_temporal(self.workdir, db_file=self.db, port=self.port)

    def kill(self) -> None:
        assert self.server is not None
        os.killpg(self.server.proc.pid, signal.SIGKILL)
        self.server.proc.wait(10)

    def alive(self) -> bool:
        return self.server is not None and self.server.proc.poll() is None

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


@pytest.fixture
def own_temporal(tmp_path):
    t = OwnTemporal(tmp_path / "temporal")
    t.start()
    yield t
    t.stop()


async def gone_at(iam, user: str, group: str, timeout: float) -> datetime:
    """When IAM itself first shows the user out of the group (read every 0.1 s)."""

    async def out() -> datetime | None:
        return None if await asyncio.to_thread(member, iam, user, group) else datetime.now(UTC)

    return await eventually(out, timeout, f"{user} out of {group}")


async def closed_row(ledger: Ledger, grant_id: str, timeout: float = 10) -> dict:
    """The grant's backstop row once closed. The backstop removes the access inside the transaction
    that closes the row (the hold's lock), so IAM shows it gone a moment before the row commits."""

    def closed() -> dict | None:
        row = BackstopStore(ledger).row(grant_id)
        return row if row is not None and row["outcome"] is not None else None

    return await eventually(closed, timeout, f"{grant_id}'s backstop row closed")


async def sleep_until(t: datetime) -> None:
    await asyncio.sleep(max(0.0, (t - datetime.now(UTC)).total_seconds()))


@contextlib.asynccontextmanager
async def stack(settings, own_temporal, provider, group):
    """A worker on our own Temporal, with the worker process's backstop beside it."""
    s = settings.model_copy(update={"temporal_address": own_temporal.address})
    registry = ProviderRegistry({provider.name: provider})
    async with running_worker(s, providers=registry, catalogue=catalogue(group)) as (client, ledger):
        backstop = ExpiryBackstop(ledger, registry, grace=GRACE, interval=timedelta(milliseconds=100))
        with backstop.running():
            try:
                yield s, client, ledger, backstop
            finally:
                if not own_temporal.alive():  # let the worker shut down against a live server
                    await asyncio.to_thread(own_temporal.start)


async def test_backstop_removes_the_membership_at_expiry_while_temporal_is_down(
    settings, own_temporal, iam, group, provider
):
    cat = catalogue(group)
    inp = grant_input(settings, "alice", ENTITLEMENT, timedelta(seconds=8), catalogue=cat)
    async with stack(settings, own_temporal, provider, group) as (s, client, ledger, backstop):
        handle = await client.start_workflow(GrantWorkflow.run, inp, id=inp.grant_id, task_queue=s.task_queue)
        g = await wait_state(handle, GrantState.active, ledger=ledger)
        expires = g.expires_at
        assert member(iam, "alice", group)
        assert BackstopStore(ledger).row(inp.grant_id)["due"] == pytest.approx(expires.timestamp())

        await sleep_until(expires - timedelta(seconds=1.5))
        own_temporal.kill()  # the expiry timer cannot be delivered now
        await sleep_until(expires - timedelta(seconds=0.2))
        assert await asyncio.to_thread(member, iam, "alice", group), "the backstop must not act before expiry"

        gone = await gone_at(iam, "alice", group, timeout=10)
        late = (gone - expires).total_seconds()
        assert 0 < late <= BOUND, f"membership ended {late:.2f}s after expiry"
        row = await closed_row(ledger, inp.grant_id)
        assert [(a.grant_id, a.outcome) for a in backstop.recent] == [(inp.grant_id, REVOKED)]
        assert backstop.recent[0].lateness_seconds >= GRACE.total_seconds()
        assert row["outcome"] == REVOKED and row["acted_by"] == backstop.name
        assert HoldStore(ledger).holders(f"aws_iam_group:{g.credential.reference}") == []

        await asyncio.sleep(1)
        await asyncio.to_thread(own_temporal.start)  # same port, same database
        done = await finish(handle, timeout=90)
        assert done.state is GrantState.revoked and done.end_reason == "expired"

    events = ledger.events(inp.grant_id)
    confirmed = one(events, "revocation.confirmed")
    assert confirmed.data["already_gone"] is True
    assert f"not a member of {group}" in confirmed.data["read_back"]
    assert "revocation.retrying" not in types(events)
    assert ledger.verify(inp.grant_id).ok
    assert not member(iam, "alice", group)


async def test_an_extended_grant_is_not_revoked_at_its_old_expiry(settings, own_temporal, iam, group, provider):
    cat = catalogue(group)
    inp = grant_input(settings, "alice", ENTITLEMENT, timedelta(seconds=6), catalogue=cat)
    alice = principal(settings, "alice")
    async with stack(settings, own_temporal, provider, group) as (s, client, ledger, backstop):
        handle = await client.start_workflow(GrantWorkflow.run, inp, id=inp.grant_id, task_queue=s.task_queue)
        g = await wait_state(handle, GrantState.active, ledger=ledger)
        old = g.expires_at
        d = evaluate_extension(g.decision, alice, g.duration, timedelta(seconds=8))
        await handle.execute_update(GrantWorkflow.extend, ExtendInput(actor=alice, reason="more", decision=d))

        async def applied():
            row = ledger.grant(inp.grant_id)
            return row and row["expires_at"] != old.isoformat() and row

        await eventually(applied, 10, "the extension recorded")
        new = old + timedelta(seconds=8)
        assert BackstopStore(ledger).row(inp.grant_id)["due"] == pytest.approx(new.timestamp())

        own_temporal.kill()  # from here only the backstop can end it: at the new expiry, not the old
        await sleep_until(old + GRACE + timedelta(seconds=1.5))
        assert await asyncio.to_thread(member, iam, "alice", group), "removed at the old expiry"
        assert list(backstop.recent) == []

        gone = await gone_at(iam, "alice", group, timeout=15)
        late = (gone - new).total_seconds()
        assert 0 < late <= BOUND, f"membership ended {late:.2f}s after the new expiry"
        await asyncio.to_thread(own_temporal.start)
        done = await finish(handle, timeout=90)
        assert done.state is GrantState.revoked

    events = ledger.events(inp.grant_id)
    assert "extension.applied" in types(events)
    assert one(events, "revocation.confirmed").data["already_gone"] is True
    assert ledger.verify(inp.grant_id).ok


# -- the rules, without Temporal ------------------------------------------------------------
class FakeTarget:
    """A provider double: a set of present references; counts revocations."""

    name = "fake_identity"

    def __init__(self) -> None:
        self.present: set[str] = set()
        self.revocations = 0
        self.lock = threading.Lock()

    def revoke(self, cred: IssuedCredential) -> bool:
        with self.lock:
            self.revocations += 1
            if cred.reference not in self.present:
                return False
            self.present.discard(cred.reference)
            return True

    def verify_revoked(self, cred: IssuedCredential) -> tuple[bool, str]:
        gone = cred.reference not in self.present
        return gone, "absent" if gone else "present"


@pytest.fixture
def ledger(fresh_ledger_url):
    led = Ledger(fresh_ledger_url, upgrade=True)
    yield led
    led.close()


def issue(ledger: Ledger, target: FakeTarget, grant_id: str, expires: datetime, key: str | None, ref="u1@g1"):
    """What issue_credential does: the hold (shared access), the access, the backstop's row."""
    cred = IssuedCredential(provider=target.name, grant_id=grant_id, reference=ref, shared_target=key)
    if key:
        with HoldStore(ledger).locked(key) as holds:
            holds.add(grant_id)
    target.present.add(ref)
    BackstopStore(ledger).record_issue(cred, expires)
    return cred


def backstop(ledger, target, **kw) -> ExpiryBackstop:
    return ExpiryBackstop(ledger, ProviderRegistry({target.name: target}), grace=timedelta(0), **kw)


def test_shared_access_is_released_first_and_removed_by_the_last_holder(ledger):
    target, now = FakeTarget(), datetime.now(UTC)
    issue(ledger, target, "grant-a", now - timedelta(seconds=1), "k")
    issue(ledger, target, "grant-b", now + timedelta(hours=1), "k")
    bs = backstop(ledger, target)
    [a] = bs.scan(wait=True)
    assert a is not None and (a.outcome, a.held_by) == (RELEASED, ("grant-b",))
    assert target.revocations == 0 and "u1@g1" in target.present
    assert HoldStore(ledger).holders("k") == ["grant-b"]
    assert bs.scan(wait=True) == []  # b is not due; a is closed
    assert not BackstopStore(ledger).extend("grant-a", now + timedelta(hours=1))  # too late: released
    assert BackstopStore(ledger).extend("grant-b", now + timedelta(hours=2))

    # b's expiry comes (its row moved back for the test): the last holder removes the access
    with ledger.engine.begin() as conn:
        BackstopStore(ledger).catch_up(conn, "grant-b", now - timedelta(seconds=1))
    [b] = bs.scan(wait=True)
    assert b is not None and b.outcome == REVOKED and target.present == set()
    assert HoldStore(ledger).holders("k") == []


def test_several_backstops_act_once(ledger):
    target, now = FakeTarget(), datetime.now(UTC)
    for i in range(6):  # grants 0-3: two pairs sharing one membership each; 4, 5: their own access
        key = f"k{i % 2}" if i < 4 else None
        issue(ledger, target, f"grant-{i}", now - timedelta(seconds=1), key, ref=key or f"r{i}")
    many = [backstop(ledger, target, name=f"w{n}") for n in range(4)]
    results: list = []
    barrier = threading.Barrier(len(many))

    def run(bs):
        barrier.wait()
        results.extend(bs.scan(wait=True))

    threads = [threading.Thread(target=run, args=(bs,)) for bs in many]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    done = [r for r in results if r is not None]
    assert sorted(r.grant_id for r in done) == [f"grant-{i}" for i in range(6)]  # each exactly once
    assert target.present == set()
    assert sorted(r.outcome for r in done) == sorted([RELEASED, REVOKED, RELEASED, REVOKED, REVOKED, REVOKED])


def test_the_workflow_first_and_provider_ttl_credentials(ledger):
    target, now = FakeTarget(), datetime.now(UTC)
    issue(ledger, target, "grant-w", now - timedelta(seconds=1), None, ref="w")
    BackstopStore(ledger).close("grant-w", WORKFLOW)  # the revoke activity confirmed it
    ttl_cred = IssuedCredential(provider=target.name, grant_id="grant-t", reference="t", expires_at=now)
    BackstopStore(ledger).record_issue(ttl_cred, now + timedelta(seconds=1))  # ends on its own first
    assert BackstopStore(ledger).row("grant-t")["outcome"] == PROVIDER_TTL
    assert backstop(ledger, target).scan(wait=True) == [] and target.revocations == 0

    target.present.discard("w")
    issue(ledger, target, "grant-g", now - timedelta(seconds=1), None, ref="g")
    target.present.discard("g")  # gone meanwhile (removed by hand): recorded as found gone
    [g] = backstop(ledger, target).scan(wait=True)
    assert g is not None and g.outcome == ALREADY_GONE


def spawn_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "jitaccess.workers.main"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stopped by its pid
        )


async def test_a_worker_started_while_temporal_is_unreachable_keeps_its_backstop_running(
    settings, tmp_path, iam, group, provider, moto
):
    """`python -m jitaccess.workers.main` with no Temporal at its address: it waits for Temporal
    (instead of exiting) and its backstop ends a grant's membership at the grant's expiry."""
    ledger = Ledger(settings.ledger_url)
    expires = datetime.now(UTC) + timedelta(seconds=8)
    grant = ProviderGrant(
        grant_id=f"grant-{uuid.uuid4()}",
        provider=provider.name,
        params={"group": group},
        principal="alice",
        ttl_seconds=8,
        expires_at=expires,
    )
    key = provider.shared_target(grant)
    with HoldStore(ledger).locked(key) as holds:  # what the issue activity does
        holds.add(grant.grant_id)
        cred, _ = provider.issue(grant, wrap_ttl=timedelta(minutes=1))
    BackstopStore(ledger).record_issue(cred.model_copy(update={"shared_target": key}), expires)
    assert member(iam, "alice", group)

    env = worker_env(settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"}))
    env.update(
        JITACCESS_AWS_ENDPOINT_URL=moto.address,
        JITACCESS_AWS_REGION=REGION,
        JITACCESS_AWS_ACCESS_KEY_ID="testing",
        JITACCESS_AWS_SECRET_ACCESS_KEY="testing",
        JITACCESS_SEARCH_ATTRIBUTES="false",
    )
    log = tmp_path / "worker.log"
    proc = spawn_worker(env, log)
    try:
        gone = await gone_at(iam, "alice", group, timeout=30)
        assert proc.poll() is None, log.read_text()[-3000:]
        assert (gone - expires).total_seconds() <= BOUND, f"{(gone - expires).total_seconds():.2f}s late"
        assert "temporal_unreachable" in log.read_text()
        assert (await closed_row(ledger, grant.grant_id))["outcome"] == REVOKED
        assert HoldStore(ledger).holders(key) == []
        assert '"backstop.revoked"' in log.read_text()
    finally:
        stop(proc)
        ledger.close()
    assert proc.returncode == 0, log.read_text()[-3000:]


def test_a_repeated_issue_opens_the_row_again_with_the_new_reference(ledger):
    """The upsert and the close are statements built once: each call's values must still land."""
    target, now = FakeTarget(), datetime.now(UTC)
    store = BackstopStore(ledger)
    issue(ledger, target, "grant-r", now + timedelta(hours=1), None, ref="first")
    store.close("grant-r", WORKFLOW, by="w1")
    assert (store.row("grant-r")["outcome"], store.row("grant-r")["acted_by"]) == (WORKFLOW, "w1")
    issue(ledger, target, "grant-r", now + timedelta(hours=2), None, ref="second")  # an activity retry
    row = store.row("grant-r")
    assert row["done_at"] is None and row["outcome"] is None and '"second"' in row["credential"]
    assert row["due"] == pytest.approx((now + timedelta(hours=2)).timestamp())
    store.close("grant-r", WORKFLOW)
    store.close("grant-r", "revoked", by="w2")  # closed already: the first outcome stays
    assert (store.row("grant-r")["outcome"], store.row("grant-r")["acted_by"]) == (WORKFLOW, None)
