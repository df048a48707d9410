"""The codec endpoint for the Temporal UI and CLI (Temporal's codec-server protocol): POST
/codec/decode and /codec/encode take and return `{"payloads": [{"metadata": {k: base64}, "data":
base64}]}` (proto3 JSON of temporal.api.common.v1.Payloads).

Only for the API's authenticated principals who may read everything: decode for auditors and
admins (`JITACCESS_AUDITOR_GROUPS`, `JITACCESS_ADMIN_GROUPS`), encode for admins only (auditors
read, they never send anything to a workflow). The Temporal UI calls it from the browser with the
signed-in user's token (TEMPORAL_CODEC_PASS_ACCESS_TOKEN=true), so CORS is allowed for the
configured UI origins (`JITACCESS_CODEC_CORS_ORIGINS`) and only on /codec/*.

Decoding passes through what jitaccess did not encrypt (another codec's or plain payloads) and
answers a payload it cannot decrypt (unknown key, tampered) with the codec's refusal marker, as
the workers do; it never fails the whole batch for one payload."""

import base64
import binascii
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI
from pydantic import BaseModel, ConfigDict, Field
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send
from temporalio.api.common.v1 import Payload

from jitaccess.api.errors import ApiError, responses
from jitaccess.config import Settings
from jitaccess.domain.principals import Principal
from jitaccess.workers.codec import ENCODING, EncryptionCodec

PREFIX = "/codec/"
MAX_PAYLOADS = 1000


class CodecPayload(BaseModel):
    model_config = ConfigDict(extra="ignore")

    metadata: dict[str, Annotated[str, Field(max_length=1024)]] = Field(default_factory=dict, max_length=64)
    data: str = ""


class CodecPayloads(BaseModel):
    payloads: list[CodecPayload] = Field(max_length=MAX_PAYLOADS)


class CodecCors:
    """CORS for /codec/* only, for the configured origins (the Temporal UI); other paths untouched."""

    def __init__(self, app: ASGIApp, origins: list[str]) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=origins,
            allow_methods=["POST", "OPTIONS"],
            allow_headers=["Authorization", "Authorization-Extras", "Content-Type", "X-Namespace"],
            allow_credentials=True,
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope.get("path", "")).startswith(PREFIX):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def _b64(text: str, where: str) -> bytes:
    padded = text + "=" * (-len(text) % 4)
    try:
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(422, "invalid_request", f"{where}: not base64 (proto3 JSON encodes bytes as base64)") from None


def to_payloads(body: CodecPayloads) -> list[Payload]:
    return [
        Payload(
            metadata={k: _b64(v, f"payloads.{i}.metadata.{k[:40]}") for k, v in p.metadata.items()},
            data=_b64(p.data, f"payloads.{i}.data"),
        )
        for i, p in enumerate(body.payloads)
    ]


def from_payloads(payloads: list[Payload]) -> CodecPayloads:
    return CodecPayloads(
        payloads=[
            CodecPayload(
                metadata={k: base64.b64encode(v).decode() for k, v in p.metadata.items()},
                data=base64.b64encode(p.data).decode(),
            )
            for p in payloads
        ]
    )


def install(app: FastAPI, settings: Settings, authenticate: Callable[..., Awaitable[Principal]]) -> None:
    ring = settings.payload_key_ring()
    codec = EncryptionCodec(ring) if ring else None
    if settings.codec_cors_origins:
        app.add_middleware(CodecCors, origins=list(settings.codec_cors_origins))
    readers = tuple(settings.auditor_groups) + tuple(settings.admin_groups)
    Me = Annotated[Principal, Depends(authenticate)]

    def require(me: Principal, groups: tuple[str, ...], what: str) -> None:
        if not me.in_any(groups):
            raise ApiError(
                403,
                "not_auditor",
                f"{what} Temporal payloads is for members of {', '.join(groups)}; {me.id} is in none of them",
            )

    @app.post("/codec/decode", tags=["ops"], response_model=CodecPayloads, responses=responses(401, 403, 422))
    async def codec_decode(body: CodecPayloads, me: Me) -> Any:
        """Decrypt payloads for the Temporal UI / CLI (auditors and admins)."""
        require(me, readers, "decoding")
        payloads = to_payloads(body)
        if codec is None:
            return from_payloads(payloads)
        ours = [i for i, p in enumerate(payloads) if p.metadata.get("encoding") == ENCODING]
        decoded = await codec.decode([payloads[i] for i in ours])
        for i, p in zip(ours, decoded):
            payloads[i] = p
        return from_payloads(payloads)

    @app.post("/codec/encode", tags=["ops"], response_model=CodecPayloads, responses=responses(401, 403, 422))
    async def codec_encode(body: CodecPayloads, me: Me) -> Any:
        """Encrypt payloads as the workers would (admins only)."""
        require(me, tuple(settings.admin_groups), "encoding")
        payloads = to_payloads(body)
        return from_payloads(await codec.encode(payloads) if codec is not None else payloads)
