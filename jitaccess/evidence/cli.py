"""CLI commands that read the ledger directly (no API, no Temporal): `evidence checkpoint`,
`evidence public-key`, offline `evidence verify --ledger`, `evidence export`, `evidence
verify-bundle`, `export` (SIEM) and `report` (governance). Registered on the main CLI by
jitaccess.cli; heavy imports stay inside the commands."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.text import Text

from jitaccess.evidence import schema_cli

if TYPE_CHECKING:
    from jitaccess.ledger import Ledger
    from jitaccess.ledger.evidence_log import CheckpointResult

console = Console()
err = Console(stderr=True)


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


def _ledger(url: str | None):
    from jitaccess.config import Settings
    from jitaccess.ledger import Ledger
    from jitaccess.ledger.migrate import LedgerSchemaError

    try:
        return Ledger(url or Settings().ledger_url)
    except (LedgerSchemaError, ValueError) as e:
        raise _fail(str(e)) from None


@contextmanager
def _open_ledger(url: str | None) -> Iterator[Ledger]:
    """The ledger at URL (default: JITACCESS_LEDGER_URL), closed after use."""
    ledger = _ledger(url)
    try:
        yield ledger
    finally:
        ledger.close()


_LEDGER_OPTION = typer.Option(None, "--ledger", help="ledger URL (default: JITACCESS_LEDGER_URL)")
_KEY_FILE_OPTION = typer.Option(None, "--key-file", help="default: JITACCESS_CHECKPOINT_KEY_FILE")


def _since(text: str | None) -> str | None:
    """A time given as ISO 8601 (date or date-time; UTC when no zone) in the ledger's `at` form."""
    if not text:
        return None
    from jitaccess.domain.events import format_at

    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _fail(f"not an ISO 8601 time: {text!r}", 2) from None
    return format_at(at if at.tzinfo else at.replace(tzinfo=UTC))


def offline_verify(
    grant_id: str | None,
    all_: bool,
    ledger_url: str,
    public_key: list[Path],
    checkpoints_dir: Path | None,
    command_key: list[Path],
    worker_key: list[Path],
    as_json: bool,
) -> None:
    """`evidence verify --ledger URL ...`: recompute every chain and the Merkle tree, check the
    checkpoints' signatures and the signed commands; exit 1 on any finding."""
    from jitaccess.evidence.offline import read_keys, verify_ledger

    if bool(grant_id) == all_:
        raise _fail("give a GRANT_ID or --all", 2)
    try:
        keys, cmd_keys, wk_keys = read_keys(public_key), read_keys(command_key), read_keys(worker_key)
    except (OSError, ValueError) as e:
        raise _fail(f"cannot read a key: {e}", 2) from None
    ledger = _ledger(ledger_url)
    try:
        report = verify_ledger(
            ledger,
            public_keys=keys,
            checkpoints_dir=checkpoints_dir,
            command_keys=cmd_keys,
            worker_keys=wk_keys,
            grant_id=grant_id,
        )
    finally:
        ledger.close()
    if as_json:
        print(json.dumps(report.model_dump(mode="json"), indent=2))
    else:
        for f in report.findings:  # one line each, never wrapped: greppable in a CI log
            console.print(Text.assemble(("FINDING ", "bold red"), f.line()), soft_wrap=True)
        cp = report.latest_checkpoint
        ok_chains = sum(1 for c in report.chains if c.ok)
        console.print(
            f"{ok_chains} of {len(report.chains)} chains verify; {report.events} events, log of {report.log_size}, "
            f"{report.pending} not yet checkpointed; {report.checkpoints} signed checkpoint(s) verified"
            + (f" (latest #{cp.number}: {cp.tree_size} events, {cp.issued_at}, key {cp.key_id})" if cp else "")
            + f"; {report.commands_verified} signed command(s) re-verified"
        )
        for note in report.notes:
            console.print(f"[yellow]note:[/yellow] {note}")
        console.print("[green]OK[/green]" if report.ok else f"[red]{len(report.findings)} finding(s)[/red]")
    if not report.ok:
        raise typer.Exit(1)


def _print_checkpoint(res: CheckpointResult) -> None:
    cp = res.checkpoint
    if cp is None:
        console.print("the ledger holds no event yet: no checkpoint")
    elif res.created:
        console.print(
            f"checkpoint #{cp.number}: {cp.tree_size} events (+{res.appended}), root {cp.root_hash}, key {cp.key_id}"
        )
    else:
        console.print(f"nothing new since checkpoint #{cp.number} ({cp.tree_size} events)")


def checkpoint(
    ledger_url: str | None = _LEDGER_OPTION,
    key_file: Path | None = _KEY_FILE_OPTION,
    directory: Path | None = typer.Option(None, "--dir", help="export directory (JITACCESS_CHECKPOINT_DIR)"),
    create_key: bool = typer.Option(False, "--create-key", help="make the key file (0600) if missing (dev)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Log every event not yet in the global log and sign a checkpoint over it, now."""
    from jitaccess.config import Settings
    from jitaccess.ledger.evidence_log import CheckpointError, load_checkpoint_key, make_checkpoint

    settings = Settings()
    key_path = key_file or settings.checkpoint_key_file
    if key_path is None:
        raise _fail("no checkpoint key: pass --key-file or set JITACCESS_CHECKPOINT_KEY_FILE", 2)
    with _open_ledger(ledger_url) as ledger:
        try:
            key = load_checkpoint_key(key_path, create=create_key)
            res = make_checkpoint(ledger, key, directory or settings.checkpoint_dir)
        except CheckpointError as e:
            raise _fail(str(e)) from None
    if as_json:
        print(json.dumps(res.summary(), indent=2))
    else:
        _print_checkpoint(res)


def print_public_key(key_file: Path | None = _KEY_FILE_OPTION) -> None:
    """Print the checkpoint key's public half (give it to auditors: `evidence verify --public-key`)."""
    from jitaccess.config import Settings
    from jitaccess.domain.commands import public_key_id
    from jitaccess.ledger.evidence_log import CheckpointError, load_checkpoint_key, public_key_of

    path = key_file or Settings().checkpoint_key_file
    if path is None:
        raise _fail("pass --key-file or set JITACCESS_CHECKPOINT_KEY_FILE", 2)
    try:
        key = load_checkpoint_key(path)
    except CheckpointError as e:
        raise _fail(str(e)) from None
    print(public_key_of(key))
    err.print(f"key ID {public_key_id(key.public_key())}")


def export_bundle_cmd(
    grant_id: str,
    ledger_url: str | None = _LEDGER_OPTION,
    out: Path = typer.Option(..., "--out", help="directory; the bundle goes to OUT/<grant_id>/"),
    public_key: Path | None = typer.Option(None, "--public-key", help="checkpoint public key, to check first"),
) -> None:
    """Write one grant's self-contained evidence bundle: events, inclusion proofs against a signed
    checkpoint, the key ID and a human-readable report (report.html)."""
    from jitaccess.evidence.bundle import BundleError, export_bundle
    from jitaccess.ledger.evidence_log import load_public_key_file

    with _open_ledger(ledger_url) as ledger:
        try:
            key = load_public_key_file(public_key) if public_key else None
            path = export_bundle(ledger, grant_id, out, public_key=key)
        except (BundleError, ValueError, OSError) as e:
            raise _fail(str(e)) from None
    console.print(f"evidence bundle for {grant_id}: {path} (open {path / 'report.html'})")


def verify_bundle_cmd(
    bundle: Path,
    public_key: Path = typer.Option(..., "--public-key", help="the checkpoint public key"),
    command_key: list[Path] = typer.Option([], "--command-key", help="API public key(s) for signed commands"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Check an evidence bundle alone: its chain, each event's inclusion proof against the signed
    checkpoint in it, and the signed commands."""
    from jitaccess.evidence.bundle import verify_bundle
    from jitaccess.evidence.offline import read_keys

    try:
        result = verify_bundle(bundle, read_keys([public_key])[0], read_keys(command_key))
    except (OSError, ValueError) as e:
        raise _fail(str(e), 2) from None
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        for p in result["problems"]:
            console.print(f"[red]problem:[/red] {p}")
        for n in result["notes"]:
            console.print(f"[yellow]note:[/yellow] {n}")
        console.print("[green]OK[/green]" if result["ok"] else "[red]bundle does not verify[/red]")
    if not result["ok"]:
        raise typer.Exit(1)


def siem_export(
    fmt: str = typer.Option("jsonl", "--format", help="ocsf | cloudevents | jsonl"),
    since: str | None = typer.Option(None, "--since", help="events at or after this ISO 8601 time"),
    until: str | None = typer.Option(None, "--until", help="events before this ISO 8601 time"),
    ledger_url: str | None = _LEDGER_OPTION,
    out: Path | None = typer.Option(None, "--out", help="file to write (default: stdout)"),
) -> None:
    """Export identity events for a SIEM / GRC tool, one JSON document per line: OCSF 1.5 (User
    Access Management), CloudEvents 1.0 (structured JSON) or the events as stored."""
    from jitaccess.evidence.siem import FORMATS, export_lines

    if fmt not in FORMATS:
        raise _fail(f"--format must be one of {', '.join(FORMATS)}", 2)
    with _open_ledger(ledger_url) as ledger:
        lines = export_lines(ledger, fmt, since=_since(since), until=_since(until))
        if out is None:
            for line in lines:
                print(line)
            return
        with out.open("w") as f:
            n = 0
            for line in lines:
                f.write(line + "\n")
                n += 1
        err.print(f"{n} event(s) written to {out}")


def governance_report_cmd(
    since: str | None = typer.Option(None, "--since", help="grants requested at or after this ISO 8601 time"),
    until: str | None = typer.Option(None, "--until", help="grants requested before this ISO 8601 time"),
    ledger_url: str | None = _LEDGER_OPTION,
    recurring: int = typer.Option(3, "--recurring", help="flag a requester+entitlement asked this often"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Governance analytics from the ledger: approval latency, outcomes and denial reasons,
    break-glass volume and review compliance, expiry→revocation lag, recurring requests."""
    from jitaccess.evidence.report import governance_report, render_text

    with _open_ledger(ledger_url) as ledger:
        rep = governance_report(ledger, since=_since(since), until=_since(until), recurring_threshold=recurring)
    if as_json:
        print(json.dumps(rep, indent=2))
    else:
        render_text(rep, console)


def register(app: typer.Typer, evidence_app: typer.Typer) -> None:
    """These commands on the main CLI (`export`, `report`) and its `evidence` group, in `--help` order."""
    evidence_app.command("checkpoint")(checkpoint)
    evidence_app.command("public-key")(print_public_key)
    evidence_app.command("export")(export_bundle_cmd)
    evidence_app.command("verify-bundle")(verify_bundle_cmd)
    evidence_app.command("schema")(schema_cli.schema)  # the events' schema (docs/events.md)
    app.command("export")(siem_export)
    app.command("report")(governance_report_cmd)
