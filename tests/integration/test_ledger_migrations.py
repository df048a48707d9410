"""The ledger's schema under Alembic (`jitaccess db upgrade`), on SQLite and a real PostgreSQL.

The finding behind it: the API and two workers started together on a fresh ledger each ran
`metadata.create_all`, and one crashed with `table identity_events already exists`. Now only
`jitaccess db upgrade` changes the schema — safe from several processes at once — and every other
process refuses a ledger whose schema is not current, with a message that says what to run.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

import jitaccess.ledger.holds  # noqa: F401  (registers the hold tables on the metadata)
from jitaccess.ledger import Ledger
from jitaccess.ledger.migrate import HEAD, MIGRATIONS, LedgerSchemaError, current, upgrade
from jitaccess.ledger.store import metadata

REPO = Path(__file__).resolve().parents[2]
JITACCESS = Path(sys.executable).with_name("jitaccess")
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def at_once(n: int, code: str) -> list[subprocess.CompletedProcess]:
    """Run `code` in n fresh Python processes that all start its work at the same instant."""
    start = time.time() + 3  # after every interpreter has imported jitaccess
    prog = f"import time\n{code.split(chr(10), 1)[0]}\nwhile time.time() < {start}: pass\n{code.split(chr(10), 1)[1]}"
    procs = [
        subprocess.Popen([sys.executable, "-c", prog], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(n)
    ]
    return [
        subprocess.CompletedProcess(p.args, p.wait(60), p.stdout.read().decode(), p.stderr.read().decode())
        for p in procs
    ]


def test_head_is_the_newest_script():
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(cfg).get_current_head() == HEAD


def test_the_migrated_schema_is_the_one_the_code_uses(fresh_ledger_url):
    """Whatever store.py / holds.py declare, the migrations create: no column, index or table
    missing or extra (a new column needs a new revision)."""
    res = upgrade(fresh_ledger_url)
    assert (res.before, res.after, res.changed) == (None, HEAD, True)
    engine = create_engine(fresh_ledger_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_a_fresh_ledger_is_refused_until_upgraded_and_upgrade_is_idempotent(fresh_ledger_url):
    with pytest.raises(LedgerSchemaError, match="jitaccess db upgrade"):
        Ledger(fresh_ledger_url)
    assert upgrade(fresh_ledger_url).changed
    again = upgrade(fresh_ledger_url)
    assert not again.changed and again.after == HEAD and current(fresh_ledger_url) == HEAD
    Ledger(fresh_ledger_url).close()


def test_a_ledger_newer_than_the_code_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path}/ledger.db"
    upgrade(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(LedgerSchemaError, match="newer than this jitaccess"):
        Ledger(url)


@pytest.mark.slow
def test_starting_processes_together_on_a_fresh_ledger_used_to_crash(tmp_path):
    """The finding, reproduced the old way (every process creating the tables itself when it opened
    the ledger, as Ledger.__init__ and HoldStore did): with several processes starting at once,
    SQLite answers `table ... already exists` to some of them."""
    crashed: list[subprocess.CompletedProcess] = []
    for attempt in range(3):  # a race: it usually shows in the first round
        url = f"sqlite:///{tmp_path}/ledger-{attempt}.db"
        code = (
            "from sqlalchemy import create_engine, event; import jitaccess.ledger.holds as h; "
            "from jitaccess.ledger.store import metadata, _sqlite_pragmas\n"
            f"e = create_engine({url!r}); event.listen(e, 'connect', _sqlite_pragmas)\n"
            "metadata.create_all(e, tables=[t for t in metadata.sorted_tables if not t.name.startswith('access_')])\n"
            "metadata.create_all(e, tables=[h.access_targets, h.access_holds])"
        )
        crashed = [r for r in at_once(8, code) if r.returncode != 0]
        if crashed:
            break
    if not crashed:
        pytest.skip("the race did not show in three rounds")
    assert any("already exists" in r.stderr for r in crashed), crashed[0].stderr[-500:]


def test_many_processes_upgrading_at_once(fresh_ledger_url):
    """Several `jitaccess db upgrade` at the same instant (the API and workers' start scripts):
    every one succeeds, one migrates, the others find it done; the ledger then opens everywhere."""
    code = (
        "from jitaccess.ledger.migrate import upgrade; from jitaccess.ledger import Ledger\n"
        f"r = upgrade({fresh_ledger_url!r}); Ledger({fresh_ledger_url!r}).close(); print(r.before, r.after)"
    )
    runs = at_once(6, code)
    assert [r.returncode for r in runs] == [0] * 6, [r.stderr[-800:] for r in runs if r.returncode]
    outs = sorted(r.stdout.split() for r in runs)
    assert outs == [[HEAD, HEAD]] * 5 + [["None", HEAD]]  # exactly one process migrated


def test_a_ledger_created_before_migrations_is_adopted(tmp_path):
    """A dev ledger from before (metadata.create_all, and older still: no grants.scope) keeps its
    rows; the upgrade adds what is missing and stamps the version."""
    url = f"sqlite:///{tmp_path}/ledger.db"
    engine = create_engine(url)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE grants DROP COLUMN scope"))
        conn.execute(
            text(
                "INSERT INTO grants (grant_id, state, entitlement, requester, break_glass, seq, created_at, updated_at)"
                " VALUES ('grant-old', 'revoked', 'secrets-readonly', 'alice', 0, 7, 't0', 't1')"
            )
        )
    with pytest.raises(LedgerSchemaError, match="no schema version"):
        Ledger(url)
    assert upgrade(url).before is None
    assert "scope" in {c["name"] for c in inspect(engine).get_columns("grants")}
    engine.dispose()
    led = Ledger(url)
    try:
        assert led.grant("grant-old")["state"] == "revoked"
    finally:
        led.close()


def test_cli_db_upgrade_and_current(tmp_path):
    url = f"sqlite:///{tmp_path}/cli.db"
    env_run = lambda *a: subprocess.run([str(JITACCESS), "db", *a, "--url", url], capture_output=True, text=True)
    before = env_run("current")
    assert before.returncode == 1 and "ledger schema none" in before.stdout
    up = env_run("upgrade")
    assert up.returncode == 0 and f"schema none -> {HEAD}" in up.stdout
    again = env_run("upgrade")
    assert again.returncode == 0 and "already current" in again.stdout
    assert env_run("current").returncode == 0
