"""GrantWorkflow tests against real servers.

Timer paths run on Temporal's time-skipping test server (`time_env`): a 4-hour
expiry or approval deadline passes in well under a second of wall time, while
the activities still talk to the real OpenBao dev server and write the real
SQLite ledger. Update paths (approve / deny / revoke / claim) run on the real
dev server (`temporal_server` via the `settings` fixture): updates are
unreliable on the time-skipping server (sdk-python #826, sdk-java #1903).
Helpers shared by these tests are in tests/workflows/support.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.testing import WorkflowEnvironment

from jitaccess.dev.servers import binary
from jitaccess.domain.commands import CommandSigner, SignerRole
from jitaccess.service.signing import CommandSigningInterceptor
from jitaccess.workers.converter import PYDANTIC_DATA_CONVERTER


@pytest.fixture
async def time_env(command_keys) -> AsyncIterator[WorkflowEnvironment]:
    """A fresh time-skipping test server (the pip-installed binary; nothing is downloaded). Its
    client signs commands with the session's API key, as the API's client does."""
    signer = CommandSigner.from_text(command_keys["command_signing_key"], SignerRole.api)
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=binary("temporal-test-server"),
        data_converter=PYDANTIC_DATA_CONVERTER,
        interceptors=[CommandSigningInterceptor(signer)],
    )
    try:
        yield env
    finally:
        await env.shutdown()
