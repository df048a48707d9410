"""Notification delivery: POST one formatted notification to one configured notifier.

`deliver_notification` is sync (httpx's blocking client) and runs on the worker's
thread pool. It never raises for a delivery failure — a non-2xx answer, a refused
connection or a timeout comes back as `DeliveryResult(ok=False, ...)` — because the
workflow records every attempt as an identity event and retries with its own
bounded backoff, so a notifier that stays down never blocks or fails a grant.
Only a notifier name that is not configured raises (non-retryable): that is a
deployment error, not an outage.

The notifier's URL is a secret (a Slack webhook URL is a credential): it is never
logged and is scrubbed from error text. Bodies are not logged at info.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import httpx
import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from jitaccess.config.settings import NotifierConfig, Settings
from jitaccess.domain import contracts as c
from jitaccess.domain.notifications import Audience, DeliveryRequest, DeliveryResult, format_body
from jitaccess.ops import metrics

log = structlog.get_logger("jitaccess.notify")

UNKNOWN_NOTIFIER = "UnknownNotifier"  # ApplicationError type: the named notifier is not configured
_ERROR_MAX = 200


def notifier_routes(configs: Iterable[NotifierConfig], audience: Audience | str) -> list[str]:
    """Names of the notifiers that serve `audience`, in configuration order."""
    a = Audience(audience)
    return [cfg.name for cfg in configs if a in cfg.audiences]


def route_table(configs: Sequence[NotifierConfig]) -> dict[str, list[str]]:
    """audience -> notifier names, for every audience (empty list when none): what the
    workflow needs (via GrantOptions) to fan a notification out without reading settings."""
    return {str(a): notifier_routes(configs, a) for a in Audience}


def _one_line(text: str, secret: str) -> str:
    text = " ".join(text.split())
    if secret:
        text = text.replace(secret, "<notifier-url>")
    return text if len(text) <= _ERROR_MAX else text[: _ERROR_MAX - 1] + "…"


class NotificationActivities:
    def __init__(
        self, notifiers: Sequence[NotifierConfig], public_url: str | None = None, http: httpx.Client | None = None
    ) -> None:
        self.notifiers = {cfg.name: cfg for cfg in notifiers}
        self.public_url = public_url
        # the transport: one pooled client for every delivery (thread-safe), or the caller's
        self.http = http or httpx.Client(follow_redirects=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> NotificationActivities:
        return cls(settings.notifiers, settings.public_url)

    def all(self) -> list:
        return [self.deliver_notification]

    @activity.defn(name=c.DELIVER_NOTIFICATION)
    def deliver_notification(self, req: DeliveryRequest) -> DeliveryResult:
        cfg = self.notifiers.get(req.notifier)
        if cfg is None:
            raise ApplicationError(
                f"notifier {req.notifier!r} is not configured (configured: {sorted(self.notifiers) or 'none'})",
                type=UNKNOWN_NOTIFIER,
                non_retryable=True,
            )
        n = req.notification
        body = format_body(cfg.format, n, self.public_url)
        url = cfg.url.get_secret_value()
        headers = {"User-Agent": "jitaccess-notify/1", "X-Jitaccess-Grant-Id": n.grant_id}
        if req.delivery_id:
            headers["Idempotency-Key"] = req.delivery_id
        ctx = dict(notifier=cfg.name, grant_id=n.grant_id, kind=str(n.kind), attempt=req.attempt)

        status: int | None = None
        error: str | None = None
        try:
            resp = self.http.post(url, json=body, headers=headers, timeout=cfg.timeout, follow_redirects=False)
            status = resp.status_code
            if not resp.is_success:
                error = _one_line(f"HTTP {status}: {resp.text}", url)
        except httpx.TimeoutException as e:
            error = f"timeout after {cfg.timeout:g}s ({type(e).__name__})"
        except httpx.HTTPError as e:
            error = _one_line(f"{type(e).__name__}: {e}", url)
        except Exception as e:  # never let one notifier's oddity fail the grant's activity
            error = _one_line(f"{type(e).__name__}: {e}", url)

        result = DeliveryResult(
            notifier=cfg.name, ok=error is None, status_code=status, error=error, attempt=req.attempt
        )
        if result.ok:
            log.info("notification delivered", status_code=status, **ctx)
        else:
            log.warning("notification delivery failed", status_code=status, error=error, **ctx)
            metrics.notification_failed(cfg.name, str(n.kind))
        return result
