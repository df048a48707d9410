"""Make the secret files docker-compose.yml mounts (never baked into the image):

    python -m jitaccess.ops.make_secrets secrets/        # then: docker compose up

Each file is 0600 in a 0700 directory; an existing file is kept (run it again safely). The API
gets the command signing key, the workers its public half and their own signing key; both get
the payload key ring; passwords for PostgreSQL's roles and the ledger URL that uses one.
Rotation: docs/operations.md."""

from __future__ import annotations

import json
import os
import secrets
import sys
from pathlib import Path

from jitaccess.domain.commands import CommandSigner, SignerRole, new_private_key_text, public_key_text
from jitaccess.workers.codec import new_key


def _write(path: Path, text: str) -> bool:
    if path.exists():
        return False
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return True


def make(directory: Path) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    made: list[str] = []

    def put(name: str, text: str) -> None:
        if _write(directory / name, text):
            made.append(name)

    def read(name: str) -> str:
        return (directory / name).read_text().strip()

    put("postgres_password", secrets.token_urlsafe(24))
    put("jitaccess_db_password", secrets.token_urlsafe(24))
    put("temporal_db_password", secrets.token_urlsafe(24))
    put("temporal.env", f"POSTGRES_PWD={read('temporal_db_password')}\n")
    put(
        "jitaccess_ledger_url",
        f"postgresql+psycopg://jitaccess:{read('jitaccess_db_password')}@postgres:5432/jitaccess",
    )
    put("jitaccess_payload_keys", new_key())
    put("jitaccess_command_signing_key", new_private_key_text())
    api = CommandSigner.from_text(read("jitaccess_command_signing_key"), SignerRole.api)
    put("jitaccess_command_public_keys", json.dumps([public_key_text(api.public_key)]))
    put("jitaccess_worker_signing_key", new_private_key_text())
    return made


def main() -> None:
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "secrets")
    made = make(target)
    print(f"{target}: made {', '.join(made) if made else 'nothing (all present)'}")


if __name__ == "__main__":
    main()
