"""Overlapping grants on shared access: two grants yield the same IAM group membership.

Ending one must not remove access the other still holds, and the last one to end must
remove it (AWS TEAM #279, Common Fate #619). Real Temporal dev server + worker, the
aws_iam_group provider on a real moto_server, hold counts in the test's SQLite ledger.
"""

from __future__ import annotations

from datetime import timedelta

from jitaccess.domain.credentials import ProviderGrant
from jitaccess.domain.grant import ActionInput
from jitaccess.domain.states import GrantState
from jitaccess.ledger.holds import HoldStore
from jitaccess.providers.aws import IamGroupMembershipProvider
from jitaccess.providers.base import ProviderError, ProviderRegistry
from jitaccess.workflows.grant import GrantWorkflow
from tests.conftest import running_worker
from tests.integration.iam_group_support import ENTITLEMENT, catalogue, member
from tests.support import Delegating
from tests.workflows.support import grant_input, one, principal, types, wait_state


class FailsToIssue(Delegating):
    """The real provider, except that issue() for the chosen grants fails, optionally after
    really adding the membership (a partial issue whose reply says failure)."""

    def __init__(self, real: IamGroupMembershipProvider, fail_for: set[str], *, partial: bool) -> None:
        super().__init__(real)
        self.fail_for, self.partial = fail_for, partial

    def issue(self, grant: ProviderGrant, **kw):
        if grant.grant_id in self.fail_for:
            if self.partial:
                self.real.issue(grant, **kw)
            raise ProviderError("injected: the target failed mid-issue", retryable=False)
        return self.real.issue(grant, **kw)


async def test_revoking_one_grant_keeps_the_access_the_other_holds(settings, iam, group, provider):
    cat = catalogue(group)
    alice = principal(settings, "alice")
    a = grant_input(settings, "alice", ENTITLEMENT, timedelta(minutes=10), catalogue=cat)
    b = grant_input(settings, "alice", ENTITLEMENT, timedelta(seconds=12), catalogue=cat)
    key = provider.shared_target(
        ProviderGrant(
            grant_id=a.grant_id, provider="aws_iam_group", params={"group": group}, principal="alice", ttl_seconds=600
        )
    )
    assert not member(iam, "alice", group)

    async with running_worker(
        settings, providers=ProviderRegistry({provider.name: provider}), catalogue=catalogue(group)
    ) as (client, ledger):
        ha = await client.start_workflow(GrantWorkflow.run, a, id=a.grant_id, task_queue=settings.task_queue)
        await wait_state(ha, GrantState.active)
        hb = await client.start_workflow(GrantWorkflow.run, b, id=b.grant_id, task_queue=settings.task_queue)
        gb = await wait_state(hb, GrantState.active)
        assert member(iam, "alice", group)
        assert gb.credential.shared_target == key
        assert HoldStore(ledger).holders(key) == sorted([a.grant_id, b.grant_id])
        assert (
            f"shared with active grant(s) {a.grant_id}"
            in one(ledger.events(b.grant_id), "fulfilment.verified").data["read_back"]
        )

        # A ends early: B still holds the membership, so it stays
        await ha.execute_update(GrantWorkflow.revoke, ActionInput(actor=alice, comment="done with A"))
        ra = await ha.result()
        assert ra.state is GrantState.revoked
        assert member(iam, "alice", group)
        events_a = ledger.events(a.grant_id)
        deferred = one(events_a, "revocation.deferred")
        assert deferred.data["held_by"] == [b.grant_id]
        assert deferred.data["reference"] == ra.credential.reference
        assert "revocation.confirmed" not in types(events_a)
        assert HoldStore(ledger).holders(key) == [b.grant_id]
        assert (await hb.query(GrantWorkflow.status)).state is GrantState.active

        # B expires: it is the last holder, so the membership goes and that is confirmed
        rb = await hb.result()
        assert rb.state is GrantState.revoked and rb.end_reason == "expired"
        assert not member(iam, "alice", group)
        events_b = ledger.events(b.grant_id)
        confirmed = one(events_b, "revocation.confirmed")
        assert confirmed.data["already_gone"] is False
        assert f"not a member of {group}" in confirmed.data["read_back"]
        assert "revocation.deferred" not in types(events_b)
        assert HoldStore(ledger).holders(key) == []
        assert ledger.verify(a.grant_id).ok and ledger.verify(b.grant_id).ok


async def test_failed_issue_does_not_remove_access_another_grant_holds(settings, iam, group, provider):
    cat = catalogue(group)
    alice = principal(settings, "alice")
    b = grant_input(settings, "alice", ENTITLEMENT, timedelta(minutes=10), catalogue=cat)
    a = grant_input(settings, "alice", ENTITLEMENT, timedelta(minutes=10), catalogue=cat)
    flaky = FailsToIssue(provider, {a.grant_id}, partial=True)

    async with running_worker(
        settings, providers=ProviderRegistry({provider.name: flaky}), catalogue=catalogue(group)
    ) as (client, ledger):
        hb = await client.start_workflow(GrantWorkflow.run, b, id=b.grant_id, task_queue=settings.task_queue)
        await wait_state(hb, GrantState.active)
        assert member(iam, "alice", group)

        ra = await client.execute_workflow(GrantWorkflow.run, a, id=a.grant_id, task_queue=settings.task_queue)
        assert ra.state is GrantState.issue_failed
        events_a = ledger.events(a.grant_id)
        assert "injected" in one(events_a, "credential.issue_failed").data["error"]
        cleanup = one(events_a, "credential.cleanup_confirmed")
        assert cleanup.data["held_by"] == [b.grant_id]
        assert member(iam, "alice", group)  # B's access survived A's clean-up
        assert (await hb.query(GrantWorkflow.status)).state is GrantState.active
        assert ledger.verify(a.grant_id).ok

        await hb.execute_update(GrantWorkflow.revoke, ActionInput(actor=alice, comment="done"))
        rb = await hb.result()
        assert rb.state is GrantState.revoked
        assert one(ledger.events(b.grant_id), "revocation.confirmed").data["already_gone"] is False
        assert not member(iam, "alice", group)


async def test_failed_issue_alone_is_cleaned_up(settings, iam, group, provider):
    # no other holder: what the failed issue added is removed and confirmed absent
    a = grant_input(settings, "alice", ENTITLEMENT, timedelta(minutes=10), catalogue=catalogue(group))
    flaky = FailsToIssue(provider, {a.grant_id}, partial=True)
    async with running_worker(
        settings, providers=ProviderRegistry({provider.name: flaky}), catalogue=catalogue(group)
    ) as (client, ledger):
        ra = await client.execute_workflow(GrantWorkflow.run, a, id=a.grant_id, task_queue=settings.task_queue)
        assert ra.state is GrantState.issue_failed
        cleanup = one(ledger.events(a.grant_id), "credential.cleanup_confirmed")
        assert cleanup.data["held_by"] == []
        assert "removed 1 leftover(s)" in cleanup.data["read_back"]
        assert not member(iam, "alice", group)
