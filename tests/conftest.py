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

from jitaccess.bootstrap import build_worker, connect
from jitaccess.config import Settings, load_users
from jitaccess.config.settings import EXAMPLES
from jitaccess.dev.identity import DevIdentity, seed_dev_identity
from jitaccess.dev.seed import seed_dev_vault
from jitaccess.dev.servers import start_moto, start_openbao, start_temporal
from jitaccess.domain.commands import new_private_key_text
from jitaccess.ledger.migrate import upgrade as upgrade_ledger
from jitaccess.workers.codec import new_key
from tests.support import throwaway_postgres

# Every worker the suite builds, in-process or in a `dev up` / `jitaccess worker` it starts, runs
# workflow code in Temporal's sandbox: a runtime determinism check on top of the replay test
# (production runs without it by default; Settings.workflow_sandbox).
os.environ.setdefault("JITACCESS_WORKFLOW_SANDBOX", "true")


@pytest.fixture(scope="session")
def stack_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
def temporal_server(stack_dir):
    srv = start_temporal(stack_dir)
    yield srv
    srv.stop()


# The identity provider seeded in each OpenBao the suite started, by its address: the API and the
# e2e fixture sign users in against it (jitaccess.dev.identity, as `jitaccess dev up` does).
IDPS: dict[str, DevIdentity] = {}


@pytest.fixture(scope="session", autouse=True)
def cli_config_dir(tmp_path_factory):
    """CLI processes the suite starts cache their sign-ins here, never in the real ~/.config."""
    path = tmp_path_factory.mktemp("cli-config")
    old = os.environ.get("JITACCESS_CONFIG_DIR")
    os.environ["JITACCESS_CONFIG_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("JITACCESS_CONFIG_DIR", None)
    else:
        os.environ["JITACCESS_CONFIG_DIR"] = old


@pytest.fixture(scope="session")
def openbao(stack_dir):
    root = "test-root-" + secrets.token_hex(8)
    srv = start_openbao(stack_dir, root_token=root)
    srv.extra["root_token"] = root
    seed_dev_vault(srv.address, root, yaml.safe_load((EXAMPLES / "vault_policies.yaml").read_text()))
    IDPS[srv.address] = seed_dev_identity(srv.address, root, load_users(EXAMPLES / "users.yaml"))
    yield srv
    IDPS.pop(srv.address, None)
    srv.stop()


@pytest.fixture(scope="session")
def dev_idp(openbao) -> DevIdentity:
    """The session OpenBao as the identity provider: the dev users (users.yaml) sign in to it."""
    return IDPS[openbao.address]


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
    from jitaccess.dev.seed import DEV_SCHEMA, seed_dev_database

    with throwaway_postgres("jitaccess_vdb") as tmp:
        dsn = tmp.dsn
        try:
            seeded = seed_dev_database(openbao.address, openbao.extra["root_token"], dsn)
            assert seeded, seeded.message
            yield {"dsn": dsn, "mount": "database", "role": "platform-readonly"}
        finally:
            import psycopg

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


@pytest.fixture
def users_file(tmp_path) -> Path:
    """The directory (users and groups, no credentials), a copy a test may change."""
    raw = yaml.safe_load((EXAMPLES / "users.yaml").read_text())
    path = tmp_path / "users.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


# The suite lets grants expire in seconds: the example catalogue with `min_duration: PT1S` on every
# entitlement but this one, which keeps the 60 s default minimum so the minimum itself is tested.
KEEPS_DEFAULT_MIN = "secrets-prod-write"


@pytest.fixture(scope="session")
def catalogue_file(tmp_path_factory) -> Path:
    raw = yaml.safe_load((EXAMPLES / "catalogue.yaml").read_text())
    for ent in raw["entitlements"]:
        if ent["id"] != KEEPS_DEFAULT_MIN:
            ent["min_duration"] = "PT1S"
    path = tmp_path_factory.mktemp("catalogue") / "catalogue.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="session")
def command_keys() -> dict[str, str]:
    """The session's Ed25519 keys: the API's (signs commands) and the workers' (signs signals).
    One pair per session: a worker process trusts one key set (jitaccess.workflows.trust)."""
    return {"command_signing_key": new_private_key_text(), "worker_signing_key": new_private_key_text()}


def stack_settings(tmp: Path, temporal_server, openbao, command_keys, queue: str = "test", **over) -> Settings:
    """Settings on the session's Temporal and OpenBao with its command keys: a SQLite ledger in
    `tmp`, a task queue of its own, a fresh payload key; `over` sets the rest."""
    return Settings(
        **command_keys,
        temporal_address=temporal_server.address,
        vault_addr=openbao.address,
        vault_token=openbao.extra["root_token"],
        ledger_url=f"sqlite:///{tmp}/ledger.db",
        task_queue=f"{queue}-{uuid.uuid4().hex[:8]}",
        payload_key=new_key(),
        **over,
    )


@pytest.fixture
def settings(tmp_path, temporal_server, openbao, dev_idp, users_file, catalogue_file, command_keys) -> Settings:
    upgrade_ledger(f"sqlite:///{tmp_path}/ledger.db")  # as `jitaccess db upgrade` (workers only check the schema)
    return stack_settings(
        tmp_path,
        temporal_server,
        openbao,
        command_keys,
        catalogue_file=catalogue_file,
        users_file=users_file,
        oidc_issuers=dev_idp.issuers,
    )


@contextlib.asynccontextmanager
async def running_worker(settings: Settings, client=None, **kw):
    """A grant worker in this event loop; yields (client, ledger). The ledger's schema is
    brought up to date first (idempotent), as `jitaccess db upgrade` does before workers start."""
    upgrade_ledger(settings.ledger_url)
    client = client or await connect(settings)
    worker, ledger = build_worker(client, settings, **kw)
    async with worker:
        yield client, ledger
    ledger.close()
