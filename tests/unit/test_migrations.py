"""Migrations: `db upgrade` builds exactly storage's schema; servers refuse a schema that is behind."""
from __future__ import annotations

import shutil

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from bot import db_migrate, storage

NEXT_REVISION = '''"""test only: a later revision"""
import sqlalchemy as sa
from alembic import op

revision = "0099"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("mentors") as batch:
        batch.add_column(sa.Column("nickname", sa.String(50), nullable=True))


def downgrade():
    with op.batch_alter_table("mentors") as batch:
        batch.drop_column("nickname")
'''


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path / 'migrated.db'}"


def columns_by_table(url: str) -> dict[str, set[str]]:
    engine = create_engine(url, future=True)
    try:
        inspector = inspect(engine)
        return {
            table: {column["name"] for column in inspector.get_columns(table)}
            for table in inspector.get_table_names()
            if table != "alembic_version"
        }
    finally:
        engine.dispose()


@pytest.fixture
def later_revision(tmp_path, monkeypatch):
    """A copy of the migrations with one more revision (0099), as a newer release would ship."""
    scripts = tmp_path / "migrations"
    shutil.copytree(db_migrate.MIGRATIONS_DIR, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    (scripts / "versions" / "0099_later.py").write_text(NEXT_REVISION)
    monkeypatch.setattr(db_migrate, "MIGRATIONS_DIR", scripts)
    return "0099"


def test_migrations_upgrade_creates_the_tables_of_storage(url):
    assert db_migrate.upgrade(url) == db_migrate.head_revision()
    expected = {table.name: {column.name for column in table.columns} for table in storage.Base.metadata.sorted_tables}
    assert columns_by_table(url) == expected
    assert set(expected) == {"mentors", "identities", "link_codes", "link_failures", "scan_runs", "answers", "contacts",
                             "feedback", "staff_members", "staff_codes", "questions", "conversation_refs", "outbox",
                             "reminders", "trainings", "answer_log"}


def test_migrations_upgrade_matches_models_in_types_indexes_and_constraints(url):
    db_migrate.upgrade(url)
    engine = create_engine(url, future=True)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), storage.Base.metadata)
    engine.dispose()
    assert diff == []


def test_migrations_upgrade_twice_is_a_no_op(url):
    first = db_migrate.upgrade(url)
    assert db_migrate.upgrade(url) == first


def test_migrations_check_current_passes_after_upgrade(url):
    db_migrate.upgrade(url)
    assert db_migrate.check_current(url) == db_migrate.head_revision()


def test_migrations_check_current_raises_on_empty_database(url):
    with pytest.raises(db_migrate.SchemaError, match=r"behind \(at base, need 0004\).*mentorwijzer db upgrade"):
        db_migrate.check_current(url)


def test_migrations_check_current_raises_when_stamp_is_older(url, later_revision):
    db_migrate.upgrade(url, revision="0002")
    with pytest.raises(db_migrate.SchemaError) as error:
        db_migrate.check_current(url)
    assert str(error.value) == "database schema is behind (at 0002, need 0099): run `mentorwijzer db upgrade`"
    assert db_migrate.upgrade(url) == "0099"
    assert "nickname" in columns_by_table(url)["mentors"]
    assert db_migrate.check_current(url) == "0099"


def test_migrations_upgrade_stamps_a_database_made_by_create_all(url):
    storage.init_db(url)
    with storage.session_scope(url) as session:
        storage.mentor_for_sender(session, "sender-1", "rest")
    # create_all already has message_id, link_failures and the 0004 tables: stamped at 0002, then
    # 0003 and 0004 add nothing
    assert db_migrate.upgrade(url) == "0004"
    assert db_migrate.check_current(url) == "0004"
    with storage.session_scope(url) as session:
        assert storage.find_mentor(session, "sender-1") is not None


def test_migrations_default_url_comes_from_settings(isolated_db):
    db_migrate.upgrade()
    assert isolated_db.exists()
    assert db_migrate.current_revision() == db_migrate.head_revision()
