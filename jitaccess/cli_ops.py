"""CLI commands that run or set up the pieces, no API needed: `dev up`, `worker`, `api`,
`db upgrade|current`, `keys rotate|new-signing-key`. Registered on the main CLI by jitaccess.cli."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import typer

from jitaccess import cli_client as client

dev_app = typer.Typer(help="The embedded development stack.", no_args_is_help=True)
db_app = typer.Typer(help="The ledger database: schema migrations.", no_args_is_help=True)
keys_app = typer.Typer(help="Keys: the Temporal payload key ring.", no_args_is_help=True)

_LEDGER_URL_OPTION = typer.Option(None, "--url", help="ledger URL (default: JITACCESS_LEDGER_URL)")


@dev_app.command("up")
def dev_up(
    directory: Path = typer.Option(client.DEV_DIR, "--dir", help="where state, logs and dev.json go"),
    random_ports: bool = typer.Option(False, help="use free random ports instead of 7233/8233/8200/8000"),
    ledger: str | None = typer.Option(
        None, "--ledger", help="ledger URL, e.g. a PostgreSQL database (default: ledger.db in --dir)"
    ),
) -> None:
    """Start Temporal, OpenBao, the worker and the API on this machine; Ctrl-C stops them."""
    from jitaccess.devup import dev_up as run

    asyncio.run(run(directory, random_ports, ledger))
    os._exit(0)  # sdk-python #300


def worker(
    role: str = typer.Option(
        "all",
        "--role",
        help="grants: the grant task queue and the expiry backstop; background: only "
        "JITACCESS_BACKGROUND_TASK_QUEUE (reconciliation, checkpoints); all: both (background only "
        "when that queue is set)",
    ),
) -> None:
    """Run a worker (settings from JITACCESS_* environment)."""
    from jitaccess.workers.main import main as run

    run(role)


def api(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the HTTP API (settings from JITACCESS_* environment)."""
    import uvicorn

    from jitaccess.api import create_app
    from jitaccess.bootstrap import configure_logging

    configure_logging()  # the same JSON event lines the worker writes (the API records delegations)
    uvicorn.run(create_app(), host=host, port=port)


def _ledger_url(url: str | None) -> str:
    if url:
        return url
    from jitaccess.config import Settings

    return Settings().ledger_url


@db_app.command("upgrade")
def db_upgrade(url: str | None = _LEDGER_URL_OPTION) -> None:
    """Create or migrate the ledger's schema to the newest version (idempotent; safe from several
    processes at once). Run it before starting workers and the API on a new version."""
    from jitaccess.ledger.migrate import LedgerSchemaError, upgrade

    try:
        res = upgrade(_ledger_url(url))
    except (LedgerSchemaError, ValueError) as e:
        raise client.fail(str(e)) from None
    done = f"{res.before or 'none'} -> {res.after}" if res.changed else f"{res.after}, already current"
    client.console.print(f"ledger {res.url}: schema {done}")


@db_app.command("current")
def db_current(url: str | None = _LEDGER_URL_OPTION) -> None:
    """Print the ledger's schema version and the version this jitaccess needs (exit 1 if they differ)."""
    from jitaccess.ledger.migrate import HEAD, current

    rev = current(_ledger_url(url))
    client.console.print(f"ledger schema {rev or 'none'}; this jitaccess needs {HEAD}")
    if rev != HEAD:
        raise typer.Exit(1)


_ROTATION_STEPS = (
    "1. give every worker and the API the new key at the END of the ring (decrypt only), restart them:\n"
    "     JITACCESS_PAYLOAD_KEYS=<current keys>,<new key>\n"
    "2. when all run with it, PREPEND it instead (it now encrypts), restart them again:\n"
    "     JITACCESS_PAYLOAD_KEYS=<new key>,<current keys>\n"
    "   (one step would let an upgraded process write payloads the others cannot read yet: refused)\n"
    "3. drop an old key only when nothing encrypted with it is still needed: no running workflow\n"
    "   started or signalled under it, no schedule created under it (re-create the reconciliation\n"
    "   schedule), and no history you want to read within Temporal's retention."
)


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Print a new payload key (stdout) and how to put it in front of the ring (stderr)."""
    from jitaccess.config import Settings
    from jitaccess.workers.codec import key_id, new_key

    key = new_key()
    ring = [key_id(k) for k in Settings().payload_key_ring()]
    print(key, flush=True)
    client.err.print(
        f"new payload key {key_id(key)} (printed above; a secret: store it where the other keys are).\n"
        f"current ring (key ids, first encrypts): {', '.join(ring) or 'none: encryption is off'}\n" + _ROTATION_STEPS,
        highlight=False,
        soft_wrap=True,
    )


@keys_app.command("new-signing-key")
def keys_new_signing_key() -> None:
    """Print a new Ed25519 command signing key (stdout) and its public key (stderr), for
    JITACCESS_COMMAND_SIGNING_KEY / _WORKER_SIGNING_KEY and the *_PUBLIC_KEYS lists (docs/operations.md)."""
    from jitaccess.domain.commands import CommandSigner, SignerRole, new_private_key_text, public_key_text

    key = new_private_key_text()
    print(key, flush=True)
    public = public_key_text(CommandSigner.from_text(key, SignerRole.api).public_key)
    client.err.print(
        f"public key (add it to the verifiers' *_PUBLIC_KEYS list before switching): {public}", highlight=False
    )


def register(app: typer.Typer) -> None:
    app.command()(worker)
    app.command()(api)
