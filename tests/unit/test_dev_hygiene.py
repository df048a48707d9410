"""Issue 8 (dev stack hygiene), without servers: the event stream shows untrusted text as data,
files of the dev workdir are private from creation, and OpenBao's root token never reaches its log."""

from __future__ import annotations

import io
import os
import re
import stat
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console

from jitaccess.dev.servers import _spawn, bao_redactor, copy_redacted, private_log
from jitaccess.devup import format_event, open_private_append, private_dir, write_private
from jitaccess.domain.events import make_event
from jitaccess.domain.principals import Actor, ActorKind, ActorRole
from jitaccess.textsafe import markup_safe, printable
from tests.support import eventually_sync

ALICE = Actor(id="alice", kind=ActorKind.human, role=ActorRole.requester)
T0 = datetime(2030, 1, 7, 12, 0, tzinfo=UTC)

NASTY = [
    "markup crash [/nonexistent]",  # used to raise MarkupError and end the stream
    "[bold red]restyled[/bold red] [link=http://x]link[/link]",
    "nul\x00byte",
    "ansi \x1b[2K\x1b[1A erase and move up",
    "crlf\r\n12:00:00.000 grant-forged #1 credential.issued jitaccess-worker(executor)",
    "bell\x07 tab\t bidi\u202eoverride",
    "ends with a backslash \\",
]


def _render(renderable, **kw) -> str:
    buf = io.StringIO()
    Console(file=buf, width=400, **kw).print(renderable, highlight=False, soft_wrap=True)
    return buf.getvalue()


@pytest.mark.parametrize("reason", NASTY)
@pytest.mark.parametrize("terminal", [False, True])
def test_the_event_stream_shows_untrusted_text_as_data(reason, terminal):
    ev = make_event("grant-1", None, "grant.requested", T0, ALICE, {"reason": reason, "entitlement": "e[/x]"})
    out = _render(format_event(ev), force_terminal=terminal, color_system="standard" if terminal else None)
    assert out.count("\n") == 1 and out.endswith("\n"), repr(out)  # exactly one line: nothing forged
    body = out[:-1]
    if terminal:  # the only escape sequences are Rich's own styles (SGR ... m), none from the reason
        assert "\x1b[2K" not in body and "\x1b[1A" not in body
        body = re.sub(r"\x1b\[[0-9;]*m", "", body)
    assert (
        "\x1b" not in body and "\x00" not in body and "\r" not in body and "\x07" not in body and "\u202e" not in body
    )
    assert printable(reason) in body and "entitlement=e[/x]" in body
    assert "grant-1 #1 grant.requested alice(requester)" in body


def test_printable_and_markup_safe():
    assert printable("a\x00b\x1b[0m\r\n\t\u202e\U000e0001") == "a\\x00b\\x1b[0m\\r\\n\\t\\u202e\\U000e0001"
    assert printable("plain ÄÖ 漢字 [x]") == "plain ÄÖ 漢字 [x]"
    value = markup_safe("[/nonexistent] and a backslash: \\")
    shown = _render(f"[bold]{value}[/bold] after")
    assert shown == "[/nonexistent] and a backslash: \\ after\n"


def test_private_files_and_dir_whatever_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        (tmp_path / "w").mkdir(mode=0o755)
        stale = tmp_path / "w" / "ledger.db"
        stale.write_text("from an earlier run")
        stale.chmod(0o644)
        d = private_dir(tmp_path / "w")
        write_private(d / "dev.json", "{}")
        with open_private_append(d / "events.jsonl") as f:
            f.write("{}\n")
        private_log(d / "openbao-1.log").close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    for name in ("ledger.db", "dev.json", "events.jsonl", "openbao-1.log"):
        assert stat.S_IMODE((d / name).stat().st_mode) == 0o600, name


def test_the_openbao_root_token_and_unseal_key_are_redacted():
    banner = (
        b"The unseal key and root token are displayed below in case you want to\n"
        b"Unseal Key: 3Jv9s0meBase64Key=\n"
        b"Root Token: dev-root-s3cr3t\n"
        b"core: something mentions dev-root-s3cr3t twice dev-root-s3cr3t\n"
    )
    out = io.BytesIO()
    out.close = lambda: None  # keep it readable after copy_redacted's `with`
    copy_redacted(io.BytesIO(banner), out, bao_redactor("dev-root-s3cr3t"))
    text = out.getvalue()
    assert b"dev-root-s3cr3t" not in text and b"3Jv9s0meBase64Key" not in text
    assert b"Root Token: [redacted]" in text and b"Unseal Key: [redacted]" in text
    assert text.count(b"\n") == 4


def test_spawned_server_logs_are_private_and_redacted(tmp_path: Path):
    log = tmp_path / "srv.log"
    code = "import os; print('Root Token:', os.environ['TOK']); print('ready')"
    old = os.umask(0o022)
    try:
        proc = _spawn("t", [sys.executable, "-c", code], log, env={"TOK": "tok-123"}, redact=bao_redactor("tok-123"))
    finally:
        os.umask(old)
    proc.wait(10)
    eventually_sync(lambda: "ready" in log.read_text(), 5, "the log copied", interval=0.02)
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert log.read_text() == "Root Token: [redacted]\nready\n"


def test_the_cli_shows_other_users_text_as_data(monkeypatch):
    from jitaccess import cli_client, cli_grants

    buf = io.StringIO()
    monkeypatch.setattr(cli_client, "console", Console(file=buf, width=300, color_system=None))
    monkeypatch.setattr(cli_client.ctx, "json", False)
    grant = {
        "grant_id": "grant-1",
        "state": "active",
        "reason": "markup crash [/nonexistent]\r\nforged line\x1b[2K",
        "requester": {"id": "alice"},
        "decision": {"outcome": "allow", "rule": "r", "policy_version": "v", "reason_codes": []},
        "review": {"outcome": "justified", "reviewer": "bob", "notes": "[bold]x[/bold]\x00"},
    }
    cli_grants.show_grant(grant)  # used to raise MarkupError
    out = buf.getvalue()
    assert "markup crash [/nonexistent]\\r\\nforged line\\x1b[2K" in out
    assert "[bold]x[/bold]\\x00" in out and "\x1b" not in out and "\x00" not in out
