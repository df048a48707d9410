"""`jitaccess evidence schema`: the identity events' schema (the SIEM contract), generated from
the event models; `--format markdown` is docs/events.md."""

from __future__ import annotations

import json

import typer


def schema(fmt: str = typer.Option("markdown", "--format", help="markdown | json")) -> None:
    """Print the identity events' schema: every event type, its fields and severity."""
    from jitaccess.domain.event_types import schema as s

    if fmt == "markdown":
        typer.echo(s.markdown(), nl=False)
    elif fmt == "json":
        typer.echo(json.dumps(s.json_schema(), indent=2, sort_keys=True))
    else:
        typer.echo(f"error: --format must be markdown or json, not {fmt!r}", err=True)
        raise typer.Exit(2)
