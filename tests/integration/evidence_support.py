"""A real ledger for the evidence tests, made once per module: grants run through a real worker
(Temporal dev server, OpenBao), checkpoints signed in between; then copied, per test, into a
fresh SQLite file or a PostgreSQL database to be tampered with."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import yaml
from sqlalchemy import create_engine, delete, insert, select

from jitaccess.config import Settings
from jitaccess.config.settings import EXAMPLES
from jitaccess.domain.commands import new_private_key_text, public_key_text
from jitaccess.domain.grant import ActionInput
from jitaccess.domain.states import GrantState
from jitaccess.ledger import Ledger
from jitaccess.ledger.evidence_log import (
    evidence_checkpoints,
    evidence_log,
    load_checkpoint_key,
    make_checkpoint,
    public_key_of,
)
from jitaccess.ledger.migrate import upgrade as upgrade_ledger
from jitaccess.ledger.store import grants, identity_events
from jitaccess.workers.codec import new_key
from jitaccess.workflows.grant import GrantWorkflow
from tests.conftest import running_worker
from tests.workflows.support import finish, full_lifecycle, grant_input, principal, wait_state

TABLES = [identity_events, grants, evidence_log, evidence_checkpoints]
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


@dataclass
class Pristine:
    """The generated ledger and everything an auditor is handed."""

    url: str  # sqlite URL of the pristine ledger (never changed by tests)
    key_file: Path  # the checkpoint private key
    public_key: Path  # its public half
    command_key: Path  # the API's public key (signed commands)
    export_dir: Path  # exported checkpoints
    approved: list[str]  # full-lifecycle grants (approved by bob), in checkpoint 1
    revoked: str  # auto-approved grant revoked by alice, in checkpoint 2
    settings: Settings


def make_settings(base: Path, temporal_server, openbao, catalogue_file, command_keys) -> Settings:
    raw = yaml.safe_load((EXAMPLES / "users.yaml").read_text())
    for entry in raw["users"].values():
        entry["token"] = "t-" + secrets.token_hex(12)
    users = base / "users.yaml"
    users.write_text(yaml.safe_dump(raw))
    url = f"sqlite:///{base}/ledger.db"
    upgrade_ledger(url)
    return Settings(
        **command_keys,
        catalogue_file=catalogue_file,
        temporal_address=temporal_server.address,
        vault_addr=openbao.address,
        vault_token=openbao.extra["root_token"],
        ledger_url=url,
        task_queue=f"test-{uuid.uuid4().hex[:8]}",
        users_file=users,
        payload_key=new_key(),
        checkpoint_key_file=base / "checkpoint.key",
        checkpoint_dir=base / "checkpoints",
    )


async def _generate(settings: Settings) -> tuple[list[str], str]:
    async with running_worker(settings) as (client, ledger):
        done = await asyncio.gather(
            *(full_lifecycle(client, settings, ledger, duration=timedelta(seconds=3)) for _ in range(2))
        )
        approved = [h.id for h, _ in done]
        assert settings.checkpoint_key_file is not None
        make_checkpoint(ledger, load_checkpoint_key(settings.checkpoint_key_file), settings.checkpoint_dir)
        # an auto-approved grant the requester revokes early (a signed revoke on its chain)
        inp = grant_input(settings, "alice", "secrets-readonly", timedelta(minutes=5))
        handle = await client.start_workflow(GrantWorkflow.run, inp, id=inp.grant_id, task_queue=settings.task_queue)
        await wait_state(handle, GrantState.active)
        alice = principal(settings, "alice")
        await handle.execute_update(GrantWorkflow.revoke, ActionInput(actor=alice, comment="done early"))
        result = await finish(handle)
        assert result.state is GrantState.revoked
        await wait_state(handle, GrantState.revoked, ledger=ledger)
    return approved, inp.grant_id


def generate(base: Path, temporal_server, openbao, catalogue_file, command_keys) -> Pristine:
    settings = make_settings(base, temporal_server, openbao, catalogue_file, command_keys)
    assert settings.checkpoint_key_file is not None and settings.checkpoint_dir is not None
    key = load_checkpoint_key(settings.checkpoint_key_file, create=True)
    approved, revoked = asyncio.run(_generate(settings))
    ledger = Ledger(settings.ledger_url)
    try:
        res = make_checkpoint(ledger, key, settings.checkpoint_dir)
        assert res.created and res.checkpoint is not None and res.checkpoint.number == 2
    finally:
        ledger.close()
    public = base / "checkpoint.pub"
    public.write_text(public_key_of(key) + "\n")
    from jitaccess.domain.commands import load_private_key

    api_pub = base / "api.pub"
    api_pub.write_text(public_key_text(load_private_key(command_keys["command_signing_key"]).public_key()) + "\n")
    return Pristine(
        url=settings.ledger_url,
        key_file=settings.checkpoint_key_file,
        public_key=public,
        command_key=api_pub,
        export_dir=settings.checkpoint_dir,
        approved=approved,
        revoked=revoked,
        settings=settings,
    )


def copy_sqlite(src_url: str, dst: Path) -> str:
    src = sqlite3.connect(src_url.removeprefix("sqlite:///"))
    out = sqlite3.connect(dst)
    with out:
        src.backup(out)
    src.close()
    out.close()
    return f"sqlite:///{dst}"


def copy_rows(src_url: str, dst_url: str) -> None:
    """Replace the evidence tables of `dst_url` (schema current) with the rows of `src_url`."""
    src, dst = create_engine(src_url), create_engine(dst_url)
    try:
        with src.connect() as s, dst.begin() as d:
            for t in reversed(TABLES):
                d.execute(delete(t))
            for t in TABLES:
                rows = [dict(r._mapping) for r in s.execute(select(t))]
                if rows:
                    d.execute(insert(t), rows)
    finally:
        src.dispose()
        dst.dispose()


def other_key_text() -> str:
    return new_private_key_text()
