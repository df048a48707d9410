"""CLI commands for admins, security and auditors over the API: `reconcile`, `catalog` (and the
offline `catalog check`), `evidence verify`. Registered on the main CLI by jitaccess.cli."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from jitaccess import cli_client as client
from jitaccess.cli_tables import approval_rule, break_glass, duration, ident, print_table, text
from jitaccess.textsafe import markup_safe

evidence_app = typer.Typer(
    help="Evidence: verify chains and signed checkpoints, make checkpoints, export bundles.", no_args_is_help=True
)
catalog_app = typer.Typer(help="The catalogue: what you can ask for; `check` a catalogue file.")


@evidence_app.command("verify")
def evidence_verify(
    grant_id: str | None = typer.Argument(None),
    all_: bool = typer.Option(False, "--all", help="every grant in the ledger"),
    ledger: str | None = typer.Option(None, "--ledger", help="verify offline, straight from this ledger URL"),
    public_key: list[Path] = typer.Option([], "--public-key", help="checkpoint public key file (offline)"),
    checkpoints: Path | None = typer.Option(None, "--checkpoints", help="exported checkpoints directory (offline)"),
    command_key: list[Path] = typer.Option([], "--command-key", help="API public key file(s): signed commands"),
    worker_key: list[Path] = typer.Option([], "--worker-key", help="worker public key file(s): signed signals"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Recompute hash chains and name the first broken link. With --ledger: offline, no API — also the
    global log's Merkle tree, the signed checkpoints and the signed commands (exit 1 on any finding)."""
    if ledger:
        from jitaccess.evidence.cli import offline_verify

        json_out = as_json or client.ctx.json
        return offline_verify(grant_id, all_, ledger, public_key, checkpoints, command_key, worker_key, json_out)
    if bool(grant_id) == all_:
        raise client.fail("give a GRANT_ID or --all", 2)
    results = (
        client.call("GET", "/v1/evidence/verify")["results"]
        if all_
        else [client.call("GET", f"/v1/grants/{grant_id}/evidence")["verification"]]
    )
    t = Table(ident("grant"), ident("events"), ident("chain"), text("first broken link"))
    for v in results:
        t.add_row(
            v["grant_id"],
            str(v["events"]),
            "[green]ok[/green]" if v["ok"] else "[red]BROKEN[/red]",
            f"{v['first_broken'] or ''} {v['problem'] or ''}".strip(),
        )
    print_table(client.console, t)
    broken = [v for v in results if not v["ok"]]
    client.console.print(f"{len(results) - len(broken)} of {len(results)} chains verify")
    if broken:
        raise typer.Exit(1)


def _findings_table(r: dict[str, Any]) -> Table:
    colour = {"orphan": "red", "drift": "yellow", "mismatch": "magenta"}
    columns = [ident(h) for h in ("kind", "provider", "grant", "reference")] + [text("detail"), text("remediation")]
    t = Table(*columns, title=f"reconciliation {r['run_id']}{' (dry run)' if r['dry_run'] else ''}")
    for f in r["findings"]:
        rem = f.get("remediation") or {}
        t.add_row(
            f"[{colour.get(f['kind'], 'white')}]{f['kind']}[/]",
            f["provider"],
            f["grant_id"] or "-",
            f.get("reference") or "",
            f["detail"],
            f"{rem.get('action', '')} {rem.get('detail', '')}".strip(),
        )
    return t


def reconcile(
    dry_run: bool = typer.Option(False, "--dry-run", help="report only: revoke nothing, signal no grant"),
    last: bool = typer.Option(False, "--last", help="show the last run's report instead of running one"),
) -> None:
    """Compare every target with the grants now (admins / security): orphaned, drifted and mismatched access."""
    r = (
        client.call("GET", "/v1/reconciliation/last")
        if last
        else client.call("POST", "/v1/reconciliation/runs", json={"dry_run": dry_run})
    )
    if client.print_json_if_asked(r):
        return
    print_table(client.console, _findings_table(r))
    for p in r.get("providers", []):
        extra = f" [red]error: {p['error']}[/red]" if p.get("error") else (f" ({p['note']})" if p.get("note") else "")
        client.console.print(f"  {p['provider']}: {p['listed']} managed object(s){extra}")
    for note in r.get("notes", []):
        client.console.print(f"  [dim]{note}[/dim]")
    counts = r.get("counts", {})
    order = ["orphan", "drift", "mismatch", "remediated", "failed"]
    shown = [k for k in order if k in counts] + sorted(k for k in counts if k not in order)
    client.console.print(", ".join(f"{k}: {counts[k]}" for k in shown) + f"  (evidence chain {r['chain_id']})")
    if r.get("error"):
        raise client.fail(r["error"])


def _catalog_table(version: str) -> Table:
    columns = [ident("id"), text("description"), ident("default"), ident("max")]
    columns += [text("approval"), text("break-glass"), ident("you may request")]
    return Table(*columns, title=f"catalogue {version}")


@catalog_app.callback(invoke_without_command=True)
def catalog(context: typer.Context) -> None:
    """List the entitlements you can ask for (`catalog check [FILE]` checks a catalogue file)."""
    if context.invoked_subcommand is not None:
        return
    r = client.call("GET", "/v1/catalog")
    if client.print_json_if_asked(r):
        return
    t = _catalog_table(r["policy_version"])
    for e in r["entitlements"]:
        durations = duration(e.get("default_duration")), duration(e.get("max_duration"))
        may = "yes" if e["you_may_request"] else "no"
        t.add_row(e["id"], e["description"], *durations, approval_rule(e), break_glass(e), may)
    print_table(client.console, t)


@catalog_app.command("check")
def catalog_check(
    file: Path | None = typer.Argument(None, help="catalogue YAML (default: JITACCESS_CATALOGUE_FILE)"),
) -> None:
    """Check a catalogue file as workers and the API load it, every provider's params included:
    OK with its policy version, or each problem naming the entitlement and field (exit 1)."""
    from jitaccess.config import Settings, load_catalogue
    from jitaccess.config.settings import ConfigError

    path = file or Settings().catalogue_file
    try:
        cat = load_catalogue(path)
    except ConfigError as e:
        first, *problems = str(e).splitlines()
        client.err.print(f"[red]error:[/red] {markup_safe(first)}", soft_wrap=True)
        for line in problems:
            client.err.print(f"  {markup_safe(line)}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    what = f"{len(cat.entitlements)} entitlements, policy version {cat.version}"
    client.console.print(f"OK: {markup_safe(str(path))}: {what}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command()(reconcile)
