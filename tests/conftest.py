"""Real servers for the suite: Temporal dev server and OpenBao start once per
session on free ports and are stopped by PID at the end. Each test gets its
own task queue and ledger file, so tests never see each other's grants."""

from __future__ import annotations

import contextlib
import secrets
import uuid
from pathlib import Path

import pytest
import yaml

from jitaccess.config import Settings
from jitaccess.config.settings import EXAMPLES
from jitaccess.devstack import start_openbao, start_temporal
from jitaccess.providers.vault_token import seed_dev_vault
from jitaccess.workers.codec import new_key
from jitaccess.workers.common import build_worker, connect


@pytest.fixture(scope="session")
def stack_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
def temporal_server(stack_dir):
    srv = start_temporal(stack_dir)
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def openbao(stack_dir):
    root = "test-root-" + secrets.token_hex(8)
    srv = start_openbao(stack_dir, root_token=root)
    srv.extra["root_token"] = root
    seed_dev_vault(srv.address, root, yaml.safe_load((EXAMPLES / "vault_policies.yaml").read_text()))
    yield srv
    srv.stop()


@pytest.fixture
def users_file(tmp_path) -> Path:
    raw = yaml.safe_load((EXAMPLES / "users.yaml").read_text())
    for entry in raw["users"].values():
        entry["token"] = "t-" + secrets.token_hex(12)
    path = tmp_path / "users.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture
def settings(tmp_path, temporal_server, openbao, users_file) -> Settings:
    return Settings(
        temporal_address=temporal_server.address,
        vault_addr=openbao.address,
        vault_token=openbao.extra["root_token"],
        ledger_url=f"sqlite:///{tmp_path}/ledger.db",
        task_queue=f"test-{uuid.uuid4().hex[:8]}",
        users_file=users_file,
        payload_key=new_key(),
    )


@contextlib.asynccontextmanager
async def running_worker(settings: Settings, client=None, **kw):
    """A grant worker in this event loop; yields (client, ledger)."""
    client = client or await connect(settings)
    worker, ledger = build_worker(client, settings, **kw)
    async with worker:
        yield client, ledger
    ledger.close()
