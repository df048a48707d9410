"""Payload encryption: every payload Temporal stores (inputs, results, update
results — including the single-use wrapping token) is AES-256-GCM encrypted by
the client before it leaves the process, so history and the UI hold ciphertext."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Sequence

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

ENCODING = b"binary/encrypted"


def new_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


class EncryptionCodec(PayloadCodec):
    def __init__(self, key_b64: str) -> None:
        try:
            key = base64.urlsafe_b64decode(key_b64)
        except ValueError as e:
            raise ValueError("payload key must be urlsafe base64 of 32 random bytes (see `new_key`)") from e
        if len(key) != 32:
            raise ValueError(f"payload key must decode to 32 bytes, got {len(key)}")
        self._aead = AESGCM(key)
        self.key_id = hashlib.sha256(key).hexdigest()[:12].encode()  # names the key, reveals nothing

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for p in payloads:
            nonce = os.urandom(12)
            out.append(
                Payload(
                    metadata={"encoding": ENCODING, "encryption-key-id": self.key_id},
                    data=nonce + self._aead.encrypt(nonce, p.SerializeToString(), None),
                )
            )
        return out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for p in payloads:
            if p.metadata.get("encoding") != ENCODING:
                out.append(p)
                continue
            if p.metadata.get("encryption-key-id") != self.key_id:
                raise ValueError(
                    f"payload encrypted with key {p.metadata.get('encryption-key-id')!r}, this worker has {self.key_id!r}"
                )
            plain = self._aead.decrypt(p.data[:12], p.data[12:], None)
            decoded = Payload()
            decoded.ParseFromString(plain)
            out.append(decoded)
        return out
