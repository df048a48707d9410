"""Provider expiry is never later than the grant's (issue 11).

The workflow fixes the grant's window (issued_at, expires_at) before it issues; each provider sets
its own TTL to the time left until `expires_at` at the moment of its call. So a late issue (a
retried activity, a slow or frozen OpenBao) never leaves a credential alive past the grant's
expiry, even when nothing revokes it.
"""

from __future__ import annotations

import os
import secrets
import signal
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import hvac
import pytest
import yaml

from jitaccess.config.settings import EXAMPLES
from jitaccess.dev.seed import seed_dev_vault
from jitaccess.dev.servers import start_openbao
from jitaccess.domain.credentials import ProviderGrant
from jitaccess.domain.grant import ActionInput
from jitaccess.domain.states import GrantState
from jitaccess.providers.base import ProviderRegistry
from jitaccess.providers.vault_token import VaultClients, VaultTokenProvider
from jitaccess.workflows.grant import GrantWorkflow
from tests.conftest import running_worker
from tests.support import Delegating
from tests.workflows.support import grant_input, principal, vault_provider, vault_root, wait_state


class LateIssue(Delegating):
    """The real vault_token provider, reached only `delay` seconds after the activity started
    (a queue backlog, a retried attempt: the grant's clock is already running)."""

    def __init__(self, real: VaultTokenProvider, delay: float) -> None:
        super().__init__(real)
        self.delay = delay

    def issue(self, grant, **kw):
        time.sleep(self.delay)
        return self.real.issue(grant, **kw)


def expire_time(vault: hvac.Client, accessor: str) -> datetime:
    return datetime.fromisoformat(vault.auth.token.lookup_accessor(accessor)["data"]["expire_time"])


async def test_a_token_issued_late_still_ends_no_later_than_the_grant(settings):
    late = LateIssue(vault_provider(settings), delay=3)
    async with running_worker(settings, providers=ProviderRegistry({"vault_token": late})) as (client, ledger):
        inp = grant_input(settings, "alice", "secrets-readonly", timedelta(seconds=60))
        handle = await client.start_workflow(GrantWorkflow.run, inp, id=inp.grant_id, task_queue=settings.task_queue)
        g = await wait_state(handle, GrantState.active, ledger=ledger)
        ends = expire_time(vault_root(settings), g.credential.reference)
        # before: TTL = 60 s from the token's creation, 3 s after the grant's clock started
        assert g.issued_at + timedelta(seconds=3) <= ends <= g.expires_at, (ends, g.expires_at)
        issued = next(e for e in ledger.events(inp.grant_id) if e.type == "credential.issued")
        assert issued.data["residual_window_seconds"] == 0
        assert datetime.fromisoformat(issued.data["provider_expires_at"]) <= g.expires_at
        await handle.execute_update(GrantWorkflow.revoke, ActionInput(actor=principal(settings, "alice"), comment="x"))
        await handle.result()


@pytest.fixture
def frozen_bao(tmp_path):
    """An OpenBao of our own (it gets SIGSTOPped), seeded with the example policies."""
    root = "freeze-" + secrets.token_hex(6)
    srv = start_openbao(tmp_path / "bao", root_token=root)
    try:
        seed_dev_vault(srv.address, root, yaml.safe_load((EXAMPLES / "vault_policies.yaml").read_text()))
        srv.extra["root_token"] = root
        yield srv
    finally:
        os.killpg(srv.proc.pid, signal.SIGCONT)
        srv.stop()


def test_a_token_created_after_an_openbao_freeze_is_pulled_in_to_the_grant_expiry(frozen_bao):
    """OpenBao is paused while the create call is in flight and answers 3 s late: the TTL it
    starts then was computed before the pause. The provider sees the slow answer and renews the
    token down to the time actually left, so it still ends at the grant's expiry."""
    provider = VaultTokenProvider(VaultClients(frozen_bao.address, frozen_bao.extra["root_token"], timeout=10))
    now = datetime.now(UTC)
    grant = ProviderGrant(
        grant_id=f"grant-{uuid.uuid4()}",
        provider="vault_token",
        params={"policies": ["jit-platform-read"]},
        principal="alice",
        ttl_seconds=60,
        max_ttl_seconds=120,
        issued_at=now,
        expires_at=now + timedelta(seconds=60),
    )
    os.killpg(frozen_bao.proc.pid, signal.SIGSTOP)
    thaw = threading.Timer(3, os.killpg, (frozen_bao.proc.pid, signal.SIGCONT))
    thaw.start()
    try:
        cred, _ = provider.issue(grant, wrap_ttl=timedelta(minutes=1))
    finally:
        thaw.join()
    root = hvac.Client(url=frozen_bao.address, token=frozen_bao.extra["root_token"])
    ends = expire_time(root, cred.reference)
    assert ends <= grant.expires_at + timedelta(milliseconds=500), ends - grant.expires_at
    assert cred.expires_at <= grant.expires_at
