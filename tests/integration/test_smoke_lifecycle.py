import uuid
from datetime import timedelta

import pytest

from jitaccess.config import load_catalogue, load_users
from jitaccess.domain.grant import GrantInput
from jitaccess.domain.policy import AccessRequest, evaluate
from jitaccess.domain.states import GrantState
from jitaccess.workflows.grant import GrantWorkflow
from tests.conftest import running_worker
from tests.workflows.support import AUTO_LIFECYCLE


# the suite runs workflows sandboxed (tests/conftest.py); production's default runs them without
@pytest.mark.parametrize("sandboxed", [True, False], ids=["sandboxed", "unsandboxed"])
async def test_auto_approved_grant_runs_to_confirmed_revocation(settings, sandboxed):
    settings = settings.model_copy(update={"workflow_sandbox": sandboxed})
    cat = load_catalogue(settings.catalogue_file)
    alice = load_users(settings.users_file)["alice"].principal("alice")
    req = AccessRequest(entitlement="secrets-readonly", duration=timedelta(seconds=3), reason="debug")
    inp = GrantInput(grant_id=f"grant-{uuid.uuid4()}", requester=alice, request=req, decision=evaluate(cat, alice, req))
    async with running_worker(settings) as (client, ledger):
        result = await client.execute_workflow(GrantWorkflow.run, inp, id=inp.grant_id, task_queue=settings.task_queue)
        assert result.state is GrantState.revoked
        events = ledger.events(inp.grant_id)
        assert [e.type for e in events] == AUTO_LIFECYCLE
        assert ledger.verify(inp.grant_id).ok
