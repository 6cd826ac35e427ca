"""Schema migrations (Alembic, configured in code): `mentorwijzer db upgrade` and a start-up check.

``upgrade()`` brings any database to the newest revision. A database created before migrations
existed (by ``storage.init_db()``'s ``create_all``) has all tables of revision 0001 but no
``alembic_version`` table: it is stamped at 0001 first, then upgraded. ``check_current()`` is for
servers at start-up: it refuses to run against a schema older than the code.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, pool

from bot.settings import get_settings

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
BASELINE = "0001"
BASELINE_TABLES = frozenset({"mentors", "identities", "link_codes", "scan_runs", "answers", "contacts"})


class SchemaError(RuntimeError):
    """The database schema does not match this version of the code."""


def _config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["url"] = url  # not a main option: '%' in passwords would break ConfigParser
    return config


def _engine(url: str):
    return create_engine(url, future=True, poolclass=pool.NullPool, hide_parameters=True)


def _current(url: str) -> tuple[Optional[str], set[str]]:
    """(revision stamped in the database or None, names of the tables present)."""
    engine = _engine(url)
    try:
        with engine.connect() as connection:
            tables = set(inspect(connection).get_table_names())
            return MigrationContext.configure(connection).get_current_revision(), tables
    finally:
        engine.dispose()


def head_revision() -> str:
    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


def current_revision(url: Optional[str] = None) -> Optional[str]:
    return _current(url or get_settings().db_url)[0]


def upgrade(url: Optional[str] = None, revision: str = "head") -> str:
    """Migrate the database at ``url`` (default: MENTORWIJZER_DB_URL) to ``revision``; returns it."""
    url = url or get_settings().db_url
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    config = _config(url)
    current, tables = _current(url)
    if current is None and tables & BASELINE_TABLES:
        missing = BASELINE_TABLES - tables
        if missing:
            raise SchemaError(
                f"database has some Mentorwijzer tables but not {', '.join(sorted(missing))} and no "
                "migration stamp: repair it by hand or start from an empty database"
            )
        stamp = _revision_of_unstamped(url)
        log.info("database created by create_all: stamping revision %s", stamp)
        command.stamp(config, stamp)
    command.upgrade(config, revision)
    now = _current(url)[0]
    log.info("database schema at revision %s", now)
    return now or "base"


def check_current(url: Optional[str] = None) -> str:
    """Raise SchemaError unless the database is at the newest revision; returns that revision."""
    url = url or get_settings().db_url
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    head = script.get_current_head()
    current, _ = _current(url)
    if current == head:
        return head
    known = {rev.revision for rev in script.walk_revisions()}
    if current is not None and current not in known:
        raise SchemaError(
            f"database schema is newer than this code (at {current}, code knows up to {head}): "
            "deploy the newer code"
        )
    raise SchemaError(
        f"database schema is behind (at {current or 'base'}, need {head}): run `mentorwijzer db upgrade`"
    )


def _revision_of_unstamped(url: str) -> str:
    """Which revision a database made by ``create_all`` (no stamp) matches: it has the columns of
    the code that created it."""
    engine = _engine(url)
    try:
        columns = {column["name"] for column in inspect(engine).get_columns("answers")}
    finally:
        engine.dispose()
    return "0002" if "message_id" in columns else BASELINE


def ensure_ready(url: Optional[str] = None) -> None:
    """At process start: a SQLite (development) database is created or migrated on the fly; any
    other database must already be migrated, otherwise start-up stops with the SchemaError's
    instructions."""
    url = url or get_settings().db_url
    if url.startswith("sqlite"):
        upgrade(url)
        return
    check_current(url)
