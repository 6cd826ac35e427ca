"""People in the loop (issue 16): feedback, staff and their link codes, forwarded questions,
conversation references, the outbox, reminders, training dates, the anonymous answer log, and
``mentors.reminders_off``.

A database made by ``create_all`` of this code already has these tables: then only what is missing
is created.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TABLES = ("feedback", "staff_members", "staff_codes", "questions", "conversation_refs", "outbox", "reminders",
          "trainings", "answer_log")


def upgrade() -> None:
    from bot import storage  # the models are the schema of this revision

    bind = op.get_bind()
    inspector = sa.inspect(bind)
    if "reminders_off" not in {column["name"] for column in inspector.get_columns("mentors")}:
        op.add_column("mentors", sa.Column("reminders_off", sa.Boolean(), nullable=False, server_default=sa.false()))
    tables = [storage.Base.metadata.tables[name] for name in TABLES if not inspector.has_table(name)]
    storage.Base.metadata.create_all(bind, tables=tables)


def downgrade() -> None:
    for name in reversed(TABLES):
        op.drop_table(name)
    with op.batch_alter_table("mentors") as batch:
        batch.drop_column("reminders_off")
