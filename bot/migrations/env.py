"""Alembic environment for Mentorwijzer, driven from code by bot.db_migrate (no alembic.ini).

The database URL comes from ``config.attributes["url"]`` (set by bot.db_migrate), never from a file,
so passwords stay in the environment. All pending migrations run in one transaction; on
PostgreSQL an advisory lock makes concurrent ``mentorwijzer db upgrade`` runs wait for each other.
"""
from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool, text

from bot.storage import Base

ADVISORY_LOCK_KEY = 7_140_512  # arbitrary, constant: "mentorwijzer migrations"

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.attributes.get("url")
    if not url:
        raise RuntimeError("bot.db_migrate must pass the database URL in config.attributes['url']")
    return url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=_url().startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(_url(), future=True, poolclass=pool.NullPool, hide_parameters=True)
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
