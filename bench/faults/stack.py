"""The stack under chaos, every piece its own process: Temporal dev server (SQLite file, so it can
be restarted with its state), OpenBao, moto, the API (`jitaccess api`) and two workers
(`python -m jitaccess.workers.main`); the ledger on SQLite or a fresh PostgreSQL database."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from jitaccess.config import Settings
from jitaccess.config.settings import EXAMPLES
from jitaccess.dev.seed import seed_dev_approle, seed_dev_aws, seed_dev_database, seed_dev_vault
from jitaccess.dev.servers import Server, free_port, start_moto, start_openbao, start_temporal
from jitaccess.dev.stack import AWS_REGION, local_stack_settings
from jitaccess.domain.commands import new_private_key_text
from jitaccess.ledger.migrate import upgrade
from jitaccess.workers.codec import new_key

from . import ENTITLEMENTS, log

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
WORKER = [sys.executable, "-m", "jitaccess.workers.main"]
WORKERS = ("worker-1", "worker-2")


class Stack:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.servers: list[Server] = []
        self.procs: dict[str, subprocess.Popen] = {}
        self.temporal: Server | None = None
        self.temporal_port = free_port()
        self.ui_port = free_port()
        self.env: dict[str, str] = {}  # the API's and the workers' environment
        self.ledger_db: str | None = None  # the PostgreSQL ledger database it created

    def start_temporal(self) -> None:
        self.temporal = start_temporal(
            self.workdir, db_file=self.workdir / "temporal.db", port=self.temporal_port, ui_port=self.ui_port
        )

    def kill_temporal(self) -> None:
        assert self.temporal is not None
        os.killpg(self.temporal.proc.pid, signal.SIGKILL)
        self.temporal.proc.wait(10)

    def spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        out = open(self.workdir / f"{name}.log", "ab")
        p = subprocess.Popen(
            args, cwd=self.workdir, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs[name] = p
        return p

    def spawn_worker(self, name: str) -> None:
        self.spawn(name, WORKER)

    def signal_server(self, name: str, sig: int) -> None:
        for s in self.servers:
            if s.name == name:
                os.killpg(s.proc.pid, sig)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        p = self.procs[name]
        if p.poll() is None:
            os.killpg(p.pid, sig)
            p.wait(15)

    def stop_all(self) -> None:
        for s in self.servers:  # a frozen OpenBao would not stop
            with contextlib.suppress(Exception):
                os.killpg(s.proc.pid, signal.SIGCONT)
        for name in list(self.procs):
            try:
                self.kill(name, signal.SIGTERM)
            except Exception:
                self.kill(name)
        for s in [*self.servers, self.temporal]:
            if s is not None:
                s.stop()

    def drop_ledger_database(self) -> None:
        if self.ledger_db is None:
            return
        import psycopg

        with (
            contextlib.suppress(Exception),
            psycopg.connect(POSTGRES_ADMIN, autocommit=True, connect_timeout=3) as c,
        ):
            c.execute(f'DROP DATABASE IF EXISTS "{self.ledger_db}" WITH (FORCE)')
        self.ledger_db = None


@dataclass
class Running:
    """A started stack: the settings its processes share, the bench's users and providers."""

    settings: Settings
    catalogue: Path
    users: list[str]
    providers: list[str]


def bring_up(stack: Stack, args, providers: list[str]) -> Running:
    """Start and seed the servers, then the API and both workers as processes."""
    workdir = stack.workdir
    log(f"workdir {workdir}; starting Temporal, OpenBao, moto")
    stack.start_temporal()
    root = "chaos-root-" + secrets.token_hex(8)
    bao = start_openbao(workdir, root_token=root)
    stack.servers.append(bao)
    seed_dev_vault(bao.address, root, yaml.safe_load((EXAMPLES / "vault_policies.yaml").read_text()))
    seed_dev_approle(bao.address, root)
    moto = start_moto(workdir)
    stack.servers.append(moto)
    users = [f"chaos-{i}" for i in range(args.grants or args.per_provider * len(providers))]
    aws = seed_dev_aws(moto.address, AWS_REGION, users)
    dsn = postgres_dsn() if "vault_database" in providers else None
    if "vault_database" in providers and (dsn is None or not seed_dev_database(bao.address, root, dsn)):
        providers = [p for p in providers if p != "vault_database"]
    catalogue = chaos_catalogue(workdir, providers)
    settings = local_stack_settings(
        temporal_address=f"127.0.0.1:{stack.temporal_port}",
        vault_addr=bao.address,
        root_token=root,
        moto_address=moto.address,
        aws=aws,
        postgres_dsn=dsn,
        task_queue="chaos",
        ledger_url=ledger_url(stack, args.ledger),
        catalogue_file=catalogue,
        payload_keys=new_key(),
        command_signing_key=new_private_key_text(),
        worker_signing_key=new_private_key_text(),
    )
    upgrade(settings.ledger_url)  # `jitaccess db upgrade`, before the processes start together
    stack.env = process_env(settings, catalogue)
    stack.spawn("api", [sys.executable, "-m", "jitaccess.cli", "api", "--port", str(free_port())])
    stack.env["JITACCESS_BACKSTOP"] = "true" if args.backstop else "false"
    for w in WORKERS:
        stack.spawn_worker(w)
    return Running(settings, catalogue, users, providers)


def process_env(settings: Settings, catalogue: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JITACCESS_")}
    plain = {
        "TEMPORAL_ADDRESS": settings.temporal_address,
        "TASK_QUEUE": settings.task_queue,
        "VAULT_ADDR": settings.vault_addr,
        "LEDGER_URL": settings.ledger_url,
        "CATALOGUE_FILE": str(catalogue),
        "AWS_ENDPOINT_URL": settings.aws_endpoint_url or "",
        "AWS_REGION": AWS_REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SSO_INSTANCE_ARN": settings.aws_sso_instance_arn or "",
        "AWS_IDENTITY_STORE_ID": settings.aws_identity_store_id or "",
    }
    secret = {
        "VAULT_TOKEN": settings.vault_token,
        "PAYLOAD_KEYS": settings.payload_keys,
        "COMMAND_SIGNING_KEY": settings.command_signing_key,
        "WORKER_SIGNING_KEY": settings.worker_signing_key,
        "AWS_SECRET_ACCESS_KEY": settings.aws_secret_access_key,
        "POSTGRES_VERIFY_DSN": settings.postgres_verify_dsn,
    }
    env.update({f"JITACCESS_{k}": v for k, v in plain.items() if v})
    env.update({f"JITACCESS_{k}": v.get_secret_value() for k, v in secret.items() if v is not None})
    return env


def chaos_catalogue(workdir: Path, providers: list[str]) -> Path:
    """The example catalogue, with the bench's entitlements auto-approved and allowed short."""
    raw = yaml.safe_load((EXAMPLES / "catalogue.yaml").read_text())
    wanted = {ENTITLEMENTS[p] for p in providers}
    for ent in raw["entitlements"]:
        ent["min_duration"] = "PT1S"
        if ent["id"] in wanted:
            ent["approval"] = {"auto_approve": True}
    path = workdir / "catalogue.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _create_database(prefix: str) -> str:
    import psycopg

    name = prefix + secrets.token_hex(4)
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True, connect_timeout=3) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    return name


def postgres_dsn() -> str | None:
    """A fresh database for OpenBao's database secrets engine, or None (vault_database left out)."""
    try:
        return f"postgresql://postgres@127.0.0.1:5432/{_create_database('jitaccess_chaos_')}"
    except Exception as e:
        log(f"PostgreSQL not reachable ({e.__class__.__name__}): vault_database left out")
        return None


def ledger_url(stack: Stack, kind: str) -> str:
    """SQLite in the work directory (the dev default: one writer at a time, so the hold lock is the
    whole database's), or a fresh PostgreSQL database (production: row locks per target)."""
    if kind == "sqlite":
        return f"sqlite:///{stack.workdir / 'ledger.db'}"
    stack.ledger_db = _create_database("jitaccess_chaos_ledger_")
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{stack.ledger_db}"
