"""`jitaccess dev up`: the embedded stack on one machine.

Temporal dev server (SQLite file with WAL, UI on), OpenBao dev server
(-dev-no-store-token), the worker and the API in this process; seeds OpenBao,
writes .jitaccess/dev.json, prints the dev users' tokens and streams identity
events until Ctrl-C, then stops everything it started.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
from pathlib import Path

import uvicorn
import yaml
from rich.console import Console
from rich.panel import Panel

from jitaccess.api import create_app
from jitaccess.config import Settings
from jitaccess.config.settings import EXAMPLES
from jitaccess.devstack import Server, free_port, port_open, start_moto, start_openbao, start_temporal
from jitaccess.domain.events import IdentityEvent
from jitaccess.ledger import Ledger
from jitaccess.providers.aws import seed_dev_aws
from jitaccess.providers.vault_approle import seed_dev_approle
from jitaccess.providers.vault_database import seed_dev_database
from jitaccess.providers.vault_token import seed_dev_vault
from jitaccess.workers.codec import new_key
from jitaccess.workers.common import build_worker, configure_logging, connect, ensure_reconciliation_schedule

console = Console()


AWS_REGION = "us-east-1"
DEV_DATABASE = "jitaccess_dev"


def _dev_database(admin_dsn: str = "postgresql://postgres@127.0.0.1:5432/postgres") -> str | None:
    """The local PostgreSQL's dev database (created if missing), or None with a clear message."""
    try:
        import psycopg

        with psycopg.connect(admin_dsn, connect_timeout=3, autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DEV_DATABASE,)).fetchone():
                conn.execute(f'CREATE DATABASE "{DEV_DATABASE}"')
    except Exception as e:  # ImportError or any connection problem: the rest of the stack still works
        console.print(
            f"[yellow]PostgreSQL not reachable at 127.0.0.1:5432 ({e.__class__.__name__}): "
            "the db-readonly entitlement (Vault database credentials) is disabled for this run[/yellow]"
        )
        return None
    return admin_dsn.rsplit("/", 1)[0] + "/" + DEV_DATABASE


def _port(preferred: int, random_ports: bool) -> int:
    return free_port() if random_ports or port_open("127.0.0.1", preferred) else preferred


def _write_users(workdir: Path) -> dict[str, str]:
    raw = yaml.safe_load((EXAMPLES / "users.yaml").read_text())
    for entry in raw["users"].values():
        entry["token"] = "dev-" + secrets.token_urlsafe(18)
    path = workdir / "users.yaml"
    path.write_text(yaml.safe_dump(raw))
    path.chmod(0o600)
    return {name: e["token"] for name, e in raw["users"].items()}


def format_event(ev: IdentityEvent) -> str:
    colour = {"requester": "cyan", "approver": "magenta", "executor": "green", "system": "yellow"}.get(
        ev.actor.role.value, "white"
    )
    keys = (
        "entitlement",
        "outcome",
        "reason_codes",
        "reference",
        "read_back",
        "reason",
        "comment",
        "attempt",
        "problem",
    )
    detail = ", ".join(f"{k}={ev.data[k]}" for k in keys if ev.data.get(k) not in (None, "", []))
    return (
        f"[dim]{ev.at[11:23]}[/dim] [bold]{ev.grant_id}[/bold] #{ev.seq} [bold]{ev.type}[/bold] "
        f"[{colour}]{ev.actor.id}({ev.actor.role.value})[/{colour}] {detail} [dim]{ev.hash[:10]}[/dim]"
    )


async def _tail(ledger: Ledger, stop: asyncio.Event) -> None:
    cursor = ""
    while not stop.is_set():
        for ev in await asyncio.to_thread(ledger.events_after, cursor):
            console.print(format_event(ev), highlight=False)
            cursor = f"{ev.at}|{ev.event_id}"
        try:
            await asyncio.wait_for(stop.wait(), 0.5)
        except TimeoutError:
            pass


async def dev_up(workdir: Path, random_ports: bool = False) -> None:
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    configure_logging(stream=(workdir / "events.jsonl").open("a", buffering=1))  # the SIEM feed, as a file
    servers: list[Server] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        with console.status("starting Temporal dev server (SQLite, WAL) ..."):
            temporal = start_temporal(
                workdir,
                db_file=workdir / "temporal.db",
                port=_port(7233, random_ports),
                ui_port=_port(8233, random_ports),
            )
            servers.append(temporal)
        root = "dev-root-" + secrets.token_hex(12)
        with console.status("starting OpenBao dev server ..."):
            bao = start_openbao(workdir, root_token=root, port=_port(8200, random_ports))
            servers.append(bao)
            seed_dev_vault(bao.address, root, yaml.safe_load((EXAMPLES / "vault_policies.yaml").read_text()))
            approle = seed_dev_approle(bao.address, root)
            console.print(f"[dim]OpenBao AppRole: {approle.message}[/dim]")
        tokens = _write_users(workdir)
        with console.status("starting moto (the AWS test double) and seeding Identity Center, IAM and a role ..."):
            moto = start_moto(workdir)
            servers.append(moto)
            aws = seed_dev_aws(moto.address, AWS_REGION, list(tokens))
        postgres_dsn = _dev_database()
        if postgres_dsn:
            with console.status("configuring the database secrets engine against local PostgreSQL ..."):
                db = seed_dev_database(bao.address, root, postgres_dsn)
            console.print(
                f"[dim]{db.message}[/dim]" if db else f"[yellow]database credentials disabled:[/yellow] {db.message}"
            )
            postgres_dsn = postgres_dsn if db else None
        api_port = _port(8000, random_ports)
        settings = Settings(
            temporal_address=temporal.address,
            vault_addr=bao.address,
            vault_token=root,
            ledger_url=f"sqlite:///{workdir / 'ledger.db'}",
            users_file=workdir / "users.yaml",
            api_port=api_port,
            payload_key=new_key(),
            aws_endpoint_url=moto.address,
            aws_region=AWS_REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            aws_sso_instance_arn=aws["instance_arn"],
            aws_identity_store_id=aws["identity_store_id"],
            postgres_verify_dsn=postgres_dsn,
        )
        client = await connect(settings)
        await ensure_reconciliation_schedule(client, settings)
        worker, ledger = build_worker(client, settings)
        server = uvicorn.Server(
            uvicorn.Config(create_app(settings, client), host="127.0.0.1", port=api_port, log_level="warning")
        )
        api_url = f"http://127.0.0.1:{api_port}"
        dev = {
            "api_url": api_url,
            "temporal_address": temporal.address,
            "temporal_ui": temporal.extra.get("ui_url"),
            "vault_addr": bao.address,
            "vault_root_token": root,
            "ledger_url": settings.ledger_url,
            "payload_key": settings.payload_key.get_secret_value(),  # to read histories from other terminals
            "aws_endpoint": moto.address,
            "aws_region": AWS_REGION,
            "postgres_dsn": postgres_dsn,
            "users": tokens,
        }
        dev_json = workdir / "dev.json"
        dev_json.write_text(json.dumps(dev, indent=2))
        dev_json.chmod(0o600)

        async with worker:
            api_task = asyncio.create_task(server.serve())
            while not server.started and not api_task.done():
                await asyncio.sleep(0.05)
            if api_task.done():
                api_task.result()
            _banner(dev, dev_json)
            tail = asyncio.create_task(_tail(ledger, stop))
            await stop.wait()
            console.print("\n[bold]stopping[/bold] API, worker, OpenBao, Temporal ...")
            server.should_exit = True
            await api_task
            await tail
        ledger.close()
    finally:
        for s in reversed(servers):
            s.stop()
    console.print("stopped.")


def _banner(dev: dict, dev_json: Path) -> None:
    users = "\n".join(f"  {name:<6} {tok}" for name, tok in dev["users"].items())
    console.print(
        Panel.fit(
            f"API       {dev['api_url']}  (OpenAPI: {dev['api_url']}/docs)\n"
            f"Temporal  {dev['temporal_address']}  UI: {dev['temporal_ui']}\n"
            f"OpenBao   {dev['vault_addr']}\n"
            f"AWS (moto) {dev['aws_endpoint']}   PostgreSQL {dev['postgres_dsn'] or 'not available'}\n"
            f"Ledger    {dev['ledger_url']}\n"
            f"Stack     {dev_json}\n\n"
            "Dev users (bearer tokens): alice, dave request; bob, carol approve and review; frank leads the\n"
            f"owning team; grace is the escalation group; erin is admin; deploy-bot is a service:\n{users}\n\n"
            "Try, in another terminal:\n"
            "  jitaccess request secrets-readonly --duration PT2M --reason 'debug INC-1' --as alice\n"
            "  jitaccess request secrets-admin --duration PT10M --reason 'rotate key' --as alice   "
            "then  jitaccess approve GRANT_ID --as bob\n"
            "  jitaccess credential GRANT_ID --as alice   then  jitaccess evidence verify --all --as carol\n\n"
            "Identity events stream below. Ctrl-C stops everything.",
            title="jitaccess dev stack is up",
        )
    )
