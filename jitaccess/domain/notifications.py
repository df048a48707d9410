"""Notifications: what a grant tells people, and the two wire formats it is sent in.

Pure (no I/O, no clock, no randomness), so the workflow can build a
`Notification` inside the Temporal sandbox and hand it to the
`deliver_notification` activity as a `DeliveryRequest`. The activity answers a
`DeliveryResult`, which the workflow records as an identity event
(`DeliveryResult.event`).

A notification never carries a secret: its fields are fixed (`extra="forbid"`),
`summary` holds scalars only and refuses keys that name secret material, and
`links` are paths of the web console's grant page (made absolute with the configured
`public_url` when formatted). The formatters read nothing but the notification and `public_url`.
"""

from __future__ import annotations

from enum import StrEnum, auto
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from jitaccess.domain.event_types import NotificationFailed, NotificationSent


class Audience(StrEnum):
    approvers = auto()  # StrEnum's auto(): the value is the member's name
    requester = auto()
    security = auto()
    reviewers = auto()


class Severity(StrEnum):
    info = "info"
    high = "high"


class NotificationKind(StrEnum):
    approval_requested = "approval_requested"
    approval_reminder = "approval_reminder"
    approval_escalated = "approval_escalated"
    approved = "approved"
    denied = "denied"
    issued = "issued"
    extended = "extended"
    expiry_warning = "expiry_warning"
    revoked = "revoked"
    break_glass_alert = "break_glass_alert"
    review_requested = "review_requested"
    review_overdue = "review_overdue"


# A summary key containing one of these is refused: the summary is shown to people
# and posted to third parties, and credential material never leaves the provider path.
_SECRET_KEY_PARTS = ("token", "secret", "password", "passwd", "wrap", "private_key", "api_key", "accessor")

Scalar = str | int | float | bool | None


class Notification(BaseModel):
    """One message to one audience about one grant.

    `recipients` are user ids or group names (informational: the notifier's
    channel decides who actually sees it). `summary` is what the message shows,
    e.g. entitlement, requester, state, reason, ticket, incident, expires_at,
    approvals; keys are shown in `SUMMARY_ORDER` first, then alphabetically.
    `links` maps a name (decide, review, open) to a path that starts with "/",
    e.g. "/grants/<id>#decide" (the web console's grant page); see `grant_links`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    grant_id: str = Field(min_length=1)
    kind: NotificationKind
    audience: Audience
    severity: Severity = Severity.info
    recipients: list[str] = Field(default_factory=list)
    title: str = Field(min_length=1)
    summary: dict[str, Scalar] = Field(default_factory=dict)
    links: dict[str, str] = Field(default_factory=dict)

    @field_validator("summary")
    @classmethod
    def _no_secret_keys(cls, v: dict[str, Scalar]) -> dict[str, Scalar]:
        for key in v:
            low = key.lower()
            if any(part in low for part in _SECRET_KEY_PARTS):
                raise ValueError(f"summary key {key!r} names secret material; notifications never carry secrets")
        return v

    @field_validator("links")
    @classmethod
    def _paths_only(cls, v: dict[str, str]) -> dict[str, str]:
        for name, path in v.items():
            if not path.startswith("/") or path.startswith("//"):
                raise ValueError(f"link {name!r} must be a path starting with '/', got {path!r}")
        return v


class DeliveryRequest(BaseModel):
    """Input of the `deliver_notification` activity.

    `attempt` is the workflow's own attempt counter (it retries with backoff
    itself) and is echoed in the result. `delivery_id`, when given, is sent as
    the `Idempotency-Key` header so a receiver can drop a duplicate delivery.
    """

    notifier: str
    notification: Notification
    attempt: int = Field(default=1, ge=1)
    delivery_id: str | None = None


class DeliveryResult(BaseModel):
    """Outcome of one delivery attempt. `status_code` is None when no HTTP answer came
    (connection refused, timeout); `error` is a short, single-line reason."""

    notifier: str
    ok: bool
    status_code: int | None = None
    error: str | None = None
    attempt: int = 1

    def event(self, n: Notification | None = None) -> NotificationSent | NotificationFailed:
        """The identity event recording this attempt (no body, no URL)."""
        model = NotificationSent if self.ok else NotificationFailed
        fields: dict[str, Any] = {"notifier": self.notifier, "attempt": self.attempt, "status_code": self.status_code}
        if self.error:
            fields["error"] = self.error
        if n is not None:
            fields.update(kind=str(n.kind), audience=str(n.audience), severity=str(n.severity))
        return model(**fields)


# --- links -----------------------------------------------------------------------------

_LINKS_BY_AUDIENCE: dict[Audience, tuple[str, ...]] = {
    Audience.approvers: ("decide",),
    Audience.reviewers: ("review",),
    Audience.requester: ("open",),
    Audience.security: ("open",),
}


def grant_links(grant_id: str, audience: Audience | str) -> dict[str, str]:
    """The web console's page for the grant (jitaccess.console), at the part the audience acts on:
    approvers its approve/deny forms, reviewers its review form, everyone else the grant. A link
    only opens the page: deciding there needs a signed-in person and a form post (CSRF-checked),
    never a click on a link alone."""
    page = f"/grants/{grant_id}"
    paths = {"open": page, "decide": f"{page}#decide", "review": f"{page}#review"}
    return {name: paths[name] for name in _LINKS_BY_AUDIENCE[Audience(audience)]}


def absolute_links(n: Notification, public_url: str | None) -> dict[str, str]:
    """`n.links` made absolute with `public_url`; left as paths when it is not set."""
    if not public_url:
        return dict(n.links)
    base = public_url.rstrip("/")
    return {name: base + path for name, path in n.links.items()}


# --- generic JSON webhook --------------------------------------------------------------

WEBHOOK_TYPE = "jitaccess.notification"
WEBHOOK_VERSION = 1


def webhook_body(n: Notification, public_url: str | None = None) -> dict[str, Any]:
    """The generic JSON webhook body: the notification as data, links absolute."""
    return {
        "type": WEBHOOK_TYPE,
        "version": WEBHOOK_VERSION,
        "grant_id": n.grant_id,
        "kind": str(n.kind),
        "audience": str(n.audience),
        "severity": str(n.severity),
        "recipients": list(n.recipients),
        "title": n.title,
        "summary": dict(n.summary),
        "links": absolute_links(n, public_url),
        # the console's page for the grant: the same URL as the Slack message's button
        "url": next(iter(absolute_links(n, public_url).values()), None),
    }


# --- Slack incoming webhook ------------------------------------------------------------

SUMMARY_ORDER = (
    "entitlement",
    "requester",
    "state",
    "reason",
    "ticket",
    "incident",
    "duration",
    "expires_at",
    "approvals",
    "approvers",
    "stage",
)

# Slack Block Kit limits (https://api.slack.com/reference/block-kit/blocks).
_HEADER_MAX = 150
_FIELD_MAX = 2000
_MAX_FIELDS = 10
_TEXT_MAX = 3000
_BUTTON_TEXT_MAX = 75
_MAX_BUTTONS = 25

_BUTTON_STYLE = {"decide": "primary", "review": "primary"}
_BUTTON_TEXT = {"decide": "Open to approve or deny", "review": "Open to review", "open": "Open in jitaccess"}
HIGH_MARK = ":rotating_light: HIGH"


def slack_escape(text: str) -> str:
    """Escape &, <, > so user-supplied text (a reason, a ticket) cannot become a
    Slack link or a mention such as <!channel>."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _label(key: str) -> str:
    return key.replace("_", " ").capitalize()


def _value(v: Scalar) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    return str(v)


def summary_items(n: Notification) -> list[tuple[str, str]]:
    """(key, value) pairs to show, in SUMMARY_ORDER then alphabetically; None values skipped."""
    keys = [k for k in SUMMARY_ORDER if k in n.summary] + sorted(k for k in n.summary if k not in SUMMARY_ORDER)
    return [(k, _value(n.summary[k])) for k in keys if n.summary[k] is not None]


def slack_body(n: Notification, public_url: str | None = None) -> dict[str, Any]:
    """A Slack incoming-webhook message: `text` (notification fallback) and `blocks`:
    a header (high severity marked), a section with the grant's summary, a link button to
    the console's grant page (for approvers: its approve/deny forms) when `public_url` is set, or the paths as text when it
    is not (Slack refuses relative button URLs), and a context line with audience and
    recipients. All user-supplied text is escaped."""
    high = n.severity == Severity.high
    mark = f"{HIGH_MARK}: " if high else ""
    title = slack_escape(n.title)

    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(mark + n.title, _HEADER_MAX), "emoji": True}},
    ]

    fields = [
        {"type": "mrkdwn", "text": _cut(f"*{_label(k)}*\n{slack_escape(v)}", _FIELD_MAX)} for k, v in summary_items(n)
    ]
    overflow = fields[_MAX_FIELDS - 1 :] if len(fields) > _MAX_FIELDS else []
    section: dict[str, Any] = {
        "type": "section",
        "text": {
            "type": "mrkdwn",
            "text": _cut(f"*{title}*\nGrant `{slack_escape(n.grant_id)}` · {n.kind}", _TEXT_MAX),
        },
    }
    if fields:
        if overflow:
            merged = "\n".join(f["text"].replace("\n", ": ", 1) for f in overflow)
            fields = fields[: _MAX_FIELDS - 1] + [{"type": "mrkdwn", "text": _cut(merged, _FIELD_MAX)}]
        section["fields"] = fields
    blocks.append(section)

    links = absolute_links(n, public_url)
    if links and public_url:
        buttons = []
        for name, url in list(links.items())[:_MAX_BUTTONS]:
            button: dict[str, Any] = {
                "type": "button",
                "text": {"type": "plain_text", "text": _cut(_BUTTON_TEXT.get(name, _label(name)), _BUTTON_TEXT_MAX)},
                "url": url,
                "action_id": f"jitaccess-{name}",
            }
            if name in _BUTTON_STYLE:
                button["style"] = _BUTTON_STYLE[name]
            buttons.append(button)
        blocks.append({"type": "actions", "elements": buttons})
    elif links:
        lines = "\n".join(f"{_label(name)}: `{slack_escape(path)}`" for name, path in links.items())
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut(lines, _TEXT_MAX)}})

    context = f"{'*HIGH severity* · ' if high else ''}to {n.audience}"
    if n.recipients:
        context += ": " + ", ".join(slack_escape(r) for r in n.recipients)
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(context, _TEXT_MAX)}]})

    text = f"{'[HIGH] ' if high else ''}{title} (grant {slack_escape(n.grant_id)})"
    return {"text": _cut(text, _TEXT_MAX), "blocks": blocks}


FORMATTERS = {"webhook": webhook_body, "slack": slack_body}


def format_body(format: str, n: Notification, public_url: str | None = None) -> dict[str, Any]:
    try:
        return FORMATTERS[format](n, public_url)
    except KeyError:
        raise ValueError(f"unknown notifier format {format!r}; expected one of {sorted(FORMATTERS)}") from None
