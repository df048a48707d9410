"""Showing untrusted text on a terminal: reasons, comments, notes and IDs come from other users.

`printable` turns every control or invisible character (NUL, ESC of an ANSI sequence, CR/LF, tab,
bidi overrides, ...) into a visible escape, so a value can neither forge a new line nor move the
cursor or recolour the screen; `markup_safe` also escapes Rich markup, so a value like
`[/nonexistent]` is shown as written instead of crashing (or restyling) the console."""

from __future__ import annotations

from rich.markup import escape


def _escape_char(ch: str) -> str:
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    if ch in named:
        return named[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(value: object) -> str:
    """The value on one line, with every non-printable character shown as an escape."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escape_char(ch) for ch in text)


def markup_safe(value: object) -> str:
    """`printable`, then Rich markup escaped: safe to embed in a markup string."""
    return escape(printable(value))
