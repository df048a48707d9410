"""Payload encryption: every payload Temporal stores (inputs, results, update
results — including the single-use wrapping token) is AES-256-GCM encrypted by
the client before it leaves the process, so history and the UI hold ciphertext.

Key ring. The codec holds one or more keys (JITACCESS_PAYLOAD_KEYS, comma-separated;
JITACCESS_PAYLOAD_KEY is a ring of one): it encrypts with the first and decrypts with
whichever key a payload names (`encryption-key-id`, a hash prefix that reveals nothing
of the key). Rotation: `jitaccess keys rotate`.

Refusing plaintext. A payload this codec did not encrypt — plaintext from a client that
has no key, or ciphertext under a key not in the ring (logged loudly with its key id), or
ciphertext that fails authentication — is never handed on as data. `decode` does not raise
(an exception there fails the whole workflow activation, and the grant would be stuck
retrying it); it replaces the payload with an empty one whose encoding no converter
understands (`binary/plaintext-refused`, `binary/unknown-key-refused`,
`binary/tampered-refused`). Converting it then fails where the SDK contains the failure:
an update's arguments fail to convert before its validator runs, so the update is rejected
and never enters history; a signal's arguments fail to convert, so the SDK drops the signal
(with a warning); a query fails. The workflow, its state and its timers carry on.
A workflow *started* with refused input cannot run (its first task fails and is retried):
nothing is issued, since the issuer re-verifies the signed request anyway.

What stays plaintext (never passes through a codec, so neither encrypted nor refused):
search attributes (visibility; ours carry no secrets), headers (the SDK's default
header codec behaviour), failure messages and stack traces (not `encode_common_attributes`;
provider errors carry no secrets by design — their details payloads are encrypted),
and core-internal markers: `workflow.patched()` markers and the SDK's own marker metadata
(the results inside local-activity markers are our payloads and are encrypted).
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Sequence

import structlog
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
# encodings no payload converter knows: converting a refused payload fails, as it must
PLAINTEXT_REFUSED = b"binary/plaintext-refused"
UNKNOWN_KEY_REFUSED = b"binary/unknown-key-refused"
TAMPERED_REFUSED = b"binary/tampered-refused"

log = structlog.get_logger("jitaccess.codec")


def new_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def key_id(key_b64: str) -> str:
    """The non-secret name of a key (what payloads carry in `encryption-key-id`)."""
    return hashlib.sha256(_raw(key_b64)).hexdigest()[:12]


def parse_ring(value: str) -> list[str]:
    """'k1,k2 , k3' -> ['k1', 'k2', 'k3'] (empty entries dropped, order kept, duplicates removed)."""
    return list(dict.fromkeys(k.strip() for k in value.split(",") if k.strip()))


def _raw(key_b64: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(key_b64.encode())
    except ValueError as e:
        raise ValueError("payload key must be urlsafe base64 of 32 random bytes (see `new_key`)") from e
    if len(key) != 32:
        raise ValueError(f"payload key must decode to 32 bytes, got {len(key)}")
    return key


def _refused(encoding: bytes, reason: str) -> Payload:
    return Payload(metadata={"encoding": encoding, "refused": reason.encode()}, data=b"")


class EncryptionCodec(PayloadCodec):
    def __init__(self, keys: str | Sequence[str]) -> None:
        """`keys`: one key, or a ring whose first key encrypts (each urlsafe base64 of 32 bytes)."""
        ring = [keys] if isinstance(keys, str) else list(keys)
        if not ring:
            raise ValueError("the payload key ring is empty")
        self._keys: dict[bytes, AESGCM] = {}
        for k in ring:
            self._keys.setdefault(key_id(k).encode(), AESGCM(_raw(k)))
        self.key_id = key_id(ring[0]).encode()  # encrypts
        self._aead = self._keys[self.key_id]

    @property
    def key_ids(self) -> list[str]:
        return [k.decode() for k in self._keys]

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for p in payloads:
            nonce = os.urandom(12)
            out.append(
                Payload(
                    metadata={"encoding": ENCODING, KEY_ID: self.key_id},
                    data=nonce + self._aead.encrypt(nonce, p.SerializeToString(), None),
                )
            )
        return out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Never raises (see the module docstring): what it cannot decrypt, it refuses."""
        return [self._decode_one(p) for p in payloads]

    def _decode_one(self, p: Payload) -> Payload:
        if p.metadata.get("encoding") != ENCODING:
            log.warning("payload_refused", reason="plaintext", encoding=_text(p.metadata.get("encoding")))
            return _refused(PLAINTEXT_REFUSED, "not encrypted by a jitaccess payload codec")
        kid = p.metadata.get(KEY_ID, b"")
        aead = self._keys.get(kid)
        if aead is None:
            log.error(
                "payload_key_unknown",
                key_id=_text(kid),
                ring=self.key_ids,
                hint="a payload was encrypted with a key this process does not hold: add that key to "
                "JITACCESS_PAYLOAD_KEYS (rotation: `jitaccess keys rotate`); the payload is refused",
            )
            return _refused(UNKNOWN_KEY_REFUSED, f"encrypted with unknown key {_text(kid)}")
        try:
            plain = aead.decrypt(p.data[:12], p.data[12:], None)
            decoded = Payload()
            decoded.ParseFromString(plain)
        except Exception as e:  # InvalidTag (forged or corrupted), or not a Payload inside
            log.error("payload_refused", reason="authentication failed", key_id=_text(kid), error=type(e).__name__)
            return _refused(TAMPERED_REFUSED, f"does not authenticate under key {_text(kid)}")
        return decoded


def _text(b: bytes | None) -> str:
    return (b or b"").decode(errors="replace")[:64]
