"""Real servers for the suite: Temporal dev server and OpenBao start once per
session on free ports and are stopped by PID at the end. Each test gets its
own task queue and ledger file, so tests never see each other's grants."""

from __future__ import annotations

import contextlib
import os
import secrets
import uuid
from pathlib import Path

import hvac
import pytest
import yaml

from jitaccess.config import Settings
from jitaccess.config.settings import EXAMPLES
from jitaccess.devstack import start_moto, start_openbao, start_temporal
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


@pytest.fixture(scope="session")
def moto(stack_dir):
    """A real moto_server (MOTO_IAM_LOAD_MANAGED_POLICIES=true) on a free port; state is shared by
    the session, so tests use their own names (groups, roles, users) where they change things."""
    srv = start_moto(stack_dir)
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def vault_postgres(openbao):
    """The session OpenBao's database secrets engine (seed_dev_database: mount `database`, role
    `platform-readonly`) pointed at a throwaway PostgreSQL database; skips when PostgreSQL is not
    reachable. Yields {"dsn", "mount", "role"}; the dsn (superuser) doubles as verification DSN.
    At the end every lease is revoked (Vault drops its users), leftovers are dropped, and the
    database is dropped."""
    from jitaccess.providers.vault_database import DEV_SCHEMA, seed_dev_database

    psycopg = pytest.importorskip("psycopg", reason="psycopg is needed for the Vault database provider tests")
    admin_dsn = os.environ.get("JITACCESS_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
    try:
        admin = psycopg.connect(admin_dsn, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as e:
        pytest.skip(f"PostgreSQL is not reachable at {admin_dsn} (set JITACCESS_TEST_POSTGRES_DSN): {e}")
    name = "jitaccess_vdb_" + secrets.token_hex(6)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        dsn = psycopg.conninfo.make_conninfo(admin_dsn, dbname=name)
        try:
            seeded = seed_dev_database(openbao.address, openbao.extra["root_token"], dsn)
            assert seeded, seeded.message
            yield {"dsn": dsn, "mount": "database", "role": "platform-readonly"}
        finally:
            root = hvac.Client(url=openbao.address, token=openbao.extra["root_token"])
            with contextlib.suppress(Exception):
                root.sys.revoke_prefix("database/")
            with contextlib.suppress(psycopg.Error), psycopg.connect(dsn, autocommit=True) as db:
                left = [
                    r[0]
                    for r in db.execute(
                        "SELECT DISTINCT grantee FROM information_schema.role_table_grants WHERE table_schema = %s",
                        (DEV_SCHEMA,),
                    ).fetchall()
                    if r[0] != "postgres"
                ]
                for role in left:
                    db.execute(f'DROP OWNED BY "{role}"')
                    db.execute(f'DROP ROLE IF EXISTS "{role}"')
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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
