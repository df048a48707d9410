"""The ledger's schema, versioned by Alembic (scripts in jitaccess/ledger/migrations, shipped in
the package).

`jitaccess db upgrade` (upgrade()) brings a ledger to HEAD: idempotent, and safe from several
processes at once — on PostgreSQL the migration runs in one transaction under an advisory lock, on
SQLite under an exclusive lock on a file beside the database — so a second process waits, then finds
the schema current and does nothing. Workers and the API never create or change the schema: they
open the ledger only when its version is HEAD (check()), and otherwise refuse with a message that
says to run the upgrade.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url

MIGRATIONS = Path(__file__).parent / "migrations"
HEAD = "0003"  # the newest revision in migrations/versions (a test keeps the two equal)
# pg_advisory_xact_lock key for migrations: "jitacces" as a big-endian int64
PG_LOCK_KEY = int.from_bytes(b"jitacces", "big")


class LedgerSchemaError(RuntimeError):
    """The ledger's schema is not the one this code needs (empty, older, or newer)."""


@dataclass(frozen=True)
class UpgradeResult:
    url: str  # without a password
    before: str | None  # revision before the upgrade (None: empty, or created before migrations)
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


def sqlite_path(url: str) -> Path | None:
    """The database file of a sqlite URL (None for in-memory databases and other dialects)."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database)


def engine_for(url: str) -> Engine:
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, pool_pre_ping=True)
    if engine.dialect.name not in ("sqlite", "postgresql"):
        engine.dispose()
        raise ValueError(f"ledger supports sqlite and postgresql URLs, not {engine.dialect.name}")
    return engine


def revision_of(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def check(engine: Engine) -> str:
    """The ledger's revision when it is HEAD; LedgerSchemaError saying what to do otherwise."""
    with engine.connect() as conn:
        rev = revision_of(conn)
    if rev == HEAD:
        return rev
    where = engine.url.render_as_string(hide_password=True)
    if rev is None:
        raise LedgerSchemaError(
            f"the ledger at {where} has no schema version (empty, or created before migrations): "
            "run `jitaccess db upgrade` first (same JITACCESS_LEDGER_URL)"
        )
    if rev in _known_revisions():
        raise LedgerSchemaError(
            f"the ledger at {where} is at schema version {rev}, this jitaccess needs {HEAD}: "
            "run `jitaccess db upgrade` first (same JITACCESS_LEDGER_URL)"
        )
    raise LedgerSchemaError(
        f"the ledger at {where} is at schema version {rev}, newer than this jitaccess knows ({HEAD}): "
        "run a jitaccess version that matches the ledger"
    )


def upgrade(url: str, target: str = "head") -> UpgradeResult:
    """Bring the ledger at `url` to `target` (default: the newest revision). Idempotent; several
    processes may run it at once."""
    engine = engine_for(url)
    try:
        with _migration_lock(engine, url), engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # held until this transaction commits: PostgreSQL DDL is transactional, so a second
                # process sees either nothing or the whole migration, never half of it
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_LOCK_KEY})
            before = revision_of(conn)
            cfg = _config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, target)
            after = revision_of(conn)
    finally:
        engine.dispose()
    assert after is not None
    return UpgradeResult(url=make_url(url).render_as_string(hide_password=True), before=before, after=after)


def current(url: str) -> str | None:
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            return revision_of(conn)
    finally:
        engine.dispose()


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def _known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    return {s.revision for s in ScriptDirectory.from_config(_config()).walk_revisions()}


@contextlib.contextmanager
def _migration_lock(engine: Engine, url: str) -> Iterator[None]:
    """SQLite: an exclusive flock on `<database>.migrate.lock` (SQLite runs DDL outside the
    transaction, so the lock, not the transaction, keeps two migrations apart). PostgreSQL: the
    advisory lock taken inside the migration's transaction (see upgrade)."""
    path = sqlite_path(url)
    if path is None:
        yield
        return
    with open(path.with_name(path.name + ".migrate.lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
