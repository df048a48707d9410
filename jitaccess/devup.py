"""`jitaccess dev up`: the embedded stack on one machine.

Temporal dev server (SQLite file with WAL, UI on), OpenBao dev server
(-dev-no-store-token), the grant worker and the API in this process, the background worker in a
process of its own (jitaccess.dev.background_worker); seeds OpenBao,
makes OpenBao the identity provider the API trusts (jitaccess.dev.identity: the dev users sign in
with passwords, step-up with TOTP, deploy-bot with AppRole), writes .jitaccess/dev.json and streams
identity events until Ctrl-C, then stops everything it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path

import uvicorn
import yaml
from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from jitaccess.api import create_app
from jitaccess.bootstrap import build_worker, configure_logging, connect
from jitaccess.config import Settings, load_users
from jitaccess.config.settings import EXAMPLES
from jitaccess.dev.background_worker import start_background_worker, stop_background_worker
from jitaccess.dev.identity import DevIdentity, seed_dev_identity
from jitaccess.dev.seed import seed_dev_approle, seed_dev_aws, seed_dev_database, seed_dev_vault
from jitaccess.dev.servers import (
    Server,
    StackError,
    free_port,
    port_open,
    start_moto,
    start_openbao,
    start_temporal,
)
from jitaccess.dev.stack import AWS_REGION, local_stack_settings
from jitaccess.domain.commands import new_private_key_text
from jitaccess.domain.events import IdentityEvent
from jitaccess.ledger import Ledger
from jitaccess.ledger.evidence_log import load_checkpoint_key, public_key_of
from jitaccess.ledger.migrate import upgrade as upgrade_ledger
from jitaccess.ops.memory import freeze_startup_heap, set_young_threshold
from jitaccess.textsafe import printable
from jitaccess.workers.backstop import start_backstop
from jitaccess.workers.checkpointing import ensure_checkpoint_schedule
from jitaccess.workers.codec import new_key
from jitaccess.workers.factory import stop_on_signals
from jitaccess.workers.schedules import ensure_reconciliation_schedule

console = Console()


DEV_DATABASE = "jitaccess_dev"
DEV_BACKGROUND_QUEUE = "jitaccess-background"


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


# -- the workdir holds tokens, keys and the ledger: only its owner may read anything in it ----------
def private_dir(path: Path) -> Path:
    """`path` as a 0700 directory, with every file already in it (from an earlier run) made 0600."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    for p in path.rglob("*"):
        with contextlib.suppress(FileNotFoundError):  # a server's temporary file may come and go
            if p.is_dir() and not p.is_symlink():
                p.chmod(0o700)
            elif p.is_file() and not p.is_symlink():
                p.chmod(0o600)
    return path


def write_private(path: Path, text: str) -> None:
    """Write a file that is 0600 from its creation on (never briefly world-readable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def open_private_append(path: Path):
    """A line-buffered text stream appending to a 0600 file (the SIEM feed, events.jsonl)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "a", buffering=1)


def _seed_identity(workdir: Path, vault_addr: str, root: str) -> DevIdentity:
    """OpenBao as the identity provider for the example users (generated passwords, TOTP secrets,
    deploy-bot's AppRole); users.yaml stays the API's directory (no credentials in it)."""
    directory = (EXAMPLES / "users.yaml").read_text()
    write_private(workdir / "users.yaml", directory)
    return seed_dev_identity(vault_addr, root, load_users(workdir / "users.yaml"))


def format_event(ev: IdentityEvent) -> Text:
    """One line of the event stream. Every value is shown as data: Rich markup in a reason is not
    interpreted (a Text, not a markup string), and control characters (NUL, ANSI escapes, CR/LF)
    are shown escaped, so a reason can neither stop the stream nor forge a line of it."""
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
    p = printable
    return Text.assemble(
        (p(ev.at[11:23]), "dim"),
        " ",
        (p(ev.grant_id), "bold"),
        f" #{ev.seq} ",
        (p(ev.type), "bold"),
        " ",
        (f"{p(ev.actor.id)}({p(ev.actor.role.value)})", colour),
        " ",
        p(detail),
        " ",
        (p(ev.hash[:10]), "dim"),
    )


async def _tail(ledger: Ledger, stop: asyncio.Event) -> None:
    cursor = ""
    while not stop.is_set():
        for ev in await asyncio.to_thread(ledger.events_after, cursor):
            try:
                console.print(format_event(ev), highlight=False, soft_wrap=True)
            except Exception as e:  # one odd event must not end the stream
                console.print(Text(f"{printable(ev.event_id)} (not shown: {e.__class__.__name__})", "red"))
            cursor = f"{ev.at}|{ev.event_id}"
        try:
            await asyncio.wait_for(stop.wait(), 0.5)
        except TimeoutError:
            pass


def dev_checkpoint_key(path: Path) -> None:
    """The dev checkpoint key (made once, 0600) and its public half beside it, for `evidence verify`."""
    key = load_checkpoint_key(path, create=True)
    path.with_suffix(".pub").write_text(public_key_of(key) + "\n")


def dev_keys(workdir: Path) -> dict[str, str]:
    """The dev stack's keys, made once and kept (0600) in `keys.json`, so a restarted stack still
    decrypts the payloads of the grants in flight and verifies their signed commands."""
    path = workdir / "keys.json"
    keys: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    made = {
        "payload_key": new_key,
        "command_signing_key": new_private_key_text,
        "worker_signing_key": new_private_key_text,
    }
    missing = {name: make() for name, make in made.items() if name not in keys}
    if missing:
        keys.update(missing)
        path.touch(mode=0o600)
        path.write_text(json.dumps(keys, indent=2))
    path.chmod(0o600)
    return keys


@dataclass
class DevServers:
    """What `dev up` started and seeded (stopped in reverse order of `started`)."""

    started: list[Server] = field(default_factory=list)
    temporal: Server | None = None
    bao: Server | None = None
    root: str = ""
    idp: DevIdentity | None = None
    moto: Server | None = None
    aws: dict[str, str] = field(default_factory=dict)
    postgres_dsn: str | None = None

    def stop(self) -> None:
        for s in reversed(self.started):
            s.stop()


def start_dev_temporal(workdir: Path, random_ports: bool, attempts: int = 3) -> Server:
    """Temporal on its usual ports, or free ones. A port found free can be taken before Temporal
    binds it (its own services pick ports meanwhile: seen once in ~20 bench starts), so a start
    that fails on "address already in use" is tried again on ports chosen afresh."""

    def start() -> Server:
        port, ui_port = _port(7233, random_ports), _port(8233, random_ports)
        return start_temporal(workdir, db_file=workdir / "temporal.db", port=port, ui_port=ui_port)

    for _ in range(attempts - 1):
        try:
            return start()
        except StackError as e:
            if "address already in use" not in str(e):
                raise
            console.print("[dim]a port chosen for Temporal was taken before it started; choosing again[/dim]")
    return start()


def _start_servers(workdir: Path, random_ports: bool, dev: DevServers) -> None:
    with console.status("starting Temporal dev server (SQLite, WAL) ..."):
        dev.temporal = start_dev_temporal(workdir, random_ports)
        dev.started.append(dev.temporal)
    dev.root = root = "dev-root-" + secrets.token_hex(12)
    with console.status("starting OpenBao dev server ..."):
        dev.bao = bao = start_openbao(workdir, root_token=root, port=_port(8200, random_ports))
        dev.started.append(bao)
        seed_dev_vault(bao.address, root, yaml.safe_load((EXAMPLES / "vault_policies.yaml").read_text()))
        approle = seed_dev_approle(bao.address, root)
        console.print(f"[dim]OpenBao AppRole: {approle.message}[/dim]")
    with console.status("making OpenBao the identity provider (users, groups, MFA, OIDC provider) ..."):
        dev.idp = _seed_identity(workdir, bao.address, root)
    with console.status("starting moto (the AWS test double) and seeding Identity Center, IAM and a role ..."):
        dev.moto = start_moto(workdir)
        dev.started.append(dev.moto)
        dev.aws = seed_dev_aws(dev.moto.address, AWS_REGION, list(dev.idp.users))
    dev.postgres_dsn = _database_credentials(bao.address, root)


def _database_credentials(vault_addr: str, root: str) -> str | None:
    """The local PostgreSQL's DSN when OpenBao's database secrets engine could be set up on it."""
    postgres_dsn = _dev_database()
    if not postgres_dsn:
        return None
    with console.status("configuring the database secrets engine against local PostgreSQL ..."):
        db = seed_dev_database(vault_addr, root, postgres_dsn)
    console.print(f"[dim]{db.message}[/dim]" if db else f"[yellow]database credentials disabled:[/yellow] {db.message}")
    return postgres_dsn if db else None


def _dev_settings(workdir: Path, dev: DevServers, api_port: int, ledger_url: str | None = None) -> Settings:
    assert dev.temporal and dev.bao and dev.moto and dev.idp
    keys = dev_keys(workdir)
    return local_stack_settings(
        temporal_address=dev.temporal.address,
        vault_addr=dev.bao.address,
        root_token=dev.root,
        moto_address=dev.moto.address,
        aws=dev.aws,
        postgres_dsn=dev.postgres_dsn,
        command_signing_key=keys["command_signing_key"],
        worker_signing_key=keys["worker_signing_key"],
        payload_key=keys["payload_key"],
        ledger_url=ledger_url or f"sqlite:///{workdir / 'ledger.db'}",
        users_file=workdir / "users.yaml",
        oidc_issuers=dev.idp.issuers,
        api_port=api_port,
        checkpoint_key_file=workdir / "checkpoint.key",  # signs checkpoints over the ledger (0600)
        checkpoint_dir=workdir / "checkpoints",
        # reconciliation and checkpoints on a worker process of their own, as in compose
        # (jitaccess.dev.background_worker)
        background_task_queue=DEV_BACKGROUND_QUEUE,
    )


def _dev_json(workdir: Path, dev: DevServers, settings: Settings) -> dict:
    """What other terminals (the CLI's --as USER, the bench) need to reach and sign in to the stack."""
    assert dev.temporal and dev.bao and dev.moto and dev.idp and settings.payload_key
    return {
        "api_url": f"http://127.0.0.1:{settings.api_port}",
        "temporal_address": dev.temporal.address,
        "temporal_ui": dev.temporal.extra.get("ui_url"),
        "vault_addr": dev.bao.address,
        "vault_root_token": dev.root,
        "ledger_url": settings.ledger_url,
        "checkpoint_public_key_file": str(workdir / "checkpoint.pub"),  # for `evidence verify --public-key`
        "payload_key": settings.payload_key.get_secret_value(),  # to read histories from other terminals
        "aws_endpoint": dev.moto.address,
        "aws_region": AWS_REGION,
        "postgres_dsn": dev.postgres_dsn,
        # sign-in: the issuers the API trusts, the console client, each user's password / TOTP
        # secret / AppRole (jitaccess.dev.identity.DevIdentity); the CLI's --as USER uses them
        "identity": dev.idp.model_dump(mode="json", exclude={"users"}),
        "oidc_issuers": [i.model_dump(mode="json") for i in dev.idp.issuers],
        "users": {name: u.model_dump(mode="json", exclude_none=True) for name, u in dev.idp.users.items()},
    }


async def _serve(settings: Settings, dev: dict, workdir: Path, stop: asyncio.Event) -> None:
    """Grant worker, expiry backstop and API in this process, the background worker in a process of
    its own, the event stream on the console, until `stop`."""
    background = start_background_worker(settings, workdir / "events.jsonl")
    watch = asyncio.create_task(_say_if_it_exits(background, stop))
    try:
        await _serve_here(settings, dev, workdir / "dev.json", stop)
    finally:
        watch.cancel()
        await asyncio.to_thread(stop_background_worker, background, settings)


async def _say_if_it_exits(proc: BaseProcess, stop: asyncio.Event) -> None:
    """A background worker that dies (a bad setting, a crash) is said on the console, not left silent."""
    while proc.is_alive():
        await asyncio.sleep(1)
    if not stop.is_set():
        console.print(
            f"[bold red]the background worker exited (code {proc.exitcode})[/bold red]: reconciliation runs "
            "and checkpoints wait until `dev up` restarts; grants are not affected. Its log lines are in "
            "events.jsonl."
        )


async def _serve_here(settings: Settings, dev: dict, dev_json: Path, stop: asyncio.Event) -> None:
    client = await connect(settings)
    await ensure_reconciliation_schedule(client, settings)
    await ensure_checkpoint_schedule(client, settings)
    worker, ledger = build_worker(client, settings)
    backstop = start_backstop(settings, ledger)  # ends identity-based access at expiry, Temporal or not
    if dev["temporal_ui"]:  # the console's grant page links to the workflow there
        os.environ.setdefault("JITACCESS_CONSOLE_TEMPORAL_UI_URL", str(dev["temporal_ui"]))
    config = uvicorn.Config(create_app(settings, client), host="127.0.0.1", port=settings.api_port, log_level="warning")
    server = uvicorn.Server(config)
    freeze_startup_heap()  # built, not yet polling: what exists now lives as long as the process
    set_young_threshold(settings.gc_young_threshold)
    async with worker:
        api_task = asyncio.create_task(server.serve())
        while not server.started and not api_task.done():
            await asyncio.sleep(0.05)
        if api_task.done():
            api_task.result()
        _banner(dev, dev_json)
        tail = asyncio.create_task(_tail(ledger, stop))
        await stop.wait()
        console.print("\n[bold]stopping[/bold] API, workers, OpenBao, Temporal ...")
        server.should_exit = True
        await api_task
        await tail
    if backstop is not None:
        backstop.stop()
    ledger.close()


async def dev_up(workdir: Path, random_ports: bool = False, ledger_url: str | None = None) -> None:
    workdir = private_dir(workdir.resolve())  # 0700; and everything created below is 0600 / 0700:
    os.umask(0o077)  # ledger, Temporal's SQLite (+ WAL), server logs, keys — ours and our servers'
    configure_logging(stream=open_private_append(workdir / "events.jsonl"))  # the SIEM feed, as a file
    stop = stop_on_signals(signal.SIGINT, signal.SIGTERM)
    servers = DevServers()
    try:
        _start_servers(workdir, random_ports, servers)
        settings = _dev_settings(workdir, servers, _port(8000, random_ports), ledger_url)
        dev_checkpoint_key(workdir / "checkpoint.key")
        upgrade_ledger(settings.ledger_url)  # the schema first (jitaccess db upgrade): worker and API only check it
        dev = _dev_json(workdir, servers, settings)
        write_private(workdir / "dev.json", json.dumps(dev, indent=2))
        await _serve(settings, dev, workdir, stop)
    finally:
        servers.stop()
    console.print("stopped.")


def _banner(dev: dict, dev_json: Path) -> None:
    users = "\n".join(f"  {name:<10} {u['kind']:<8} {', '.join(u['groups'])}" for name, u in dev["users"].items())
    console.print(
        Panel.fit(
            f"API       {dev['api_url']}  (OpenAPI: {dev['api_url']}/docs)\n"
            f"Console   {dev['api_url']}/  (sign in with a dev user's password at OpenBao's page)\n"
            f"Temporal  {dev['temporal_address']}  UI: {dev['temporal_ui']}\n"
            f"OpenBao   {dev['vault_addr']}\n"
            f"AWS (moto) {dev['aws_endpoint']}   PostgreSQL {dev['postgres_dsn'] or 'not available'}\n"
            f"Ledger    {dev['ledger_url']}\n"
            f"Stack     {dev_json}\n\n"
            f"Sign-in   OpenBao is the OIDC identity provider: {dev['identity']['vault_addr']}/v1/identity/oidc\n"
            "Dev users (passwords and TOTP secrets in dev.json): alice, dave request; bob, carol approve and\n"
            "review; frank leads the owning team; grace is the escalation group; erin is admin; ivan audits;\n"
            f"deploy-bot is a service (AppRole sign-in):\n{users}\n\n"
            "  jitaccess --as bob auth login --step-up      a password + TOTP sign-in (amr mfa), for step-up\n"
            "  jitaccess auth login                         the browser flow (authorization code + PKCE)\n\n"
            "Try, in another terminal:\n"
            "  jitaccess request secrets-readonly --duration PT2M --reason 'debug INC-1' --as alice\n"
            "  jitaccess request secrets-admin --duration PT10M --reason 'rotate key' --as alice   "
            "then  jitaccess approve GRANT_ID --as bob\n"
            "  jitaccess credential GRANT_ID --as alice   then  jitaccess evidence verify --all --as ivan\n\n"
            "Identity events stream below. Ctrl-C stops everything.",
            title="jitaccess dev stack is up",
        )
    )
