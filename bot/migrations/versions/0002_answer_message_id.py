"""answers.message_id: the channel's id of the message that gave the answer.

A channel that re-delivers a message (a retry after a lost reply) sends the same id; the answer is
then not applied a second time, to the next question.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("answers") as batch:
        batch.add_column(sa.Column("message_id", sa.String(64), nullable=True))
        batch.create_index("ix_answers_run_message", ["run_id", "message_id"])


def downgrade() -> None:
    with op.batch_alter_table("answers") as batch:
        batch.drop_index("ix_answers_run_message")
        batch.drop_column("message_id")
