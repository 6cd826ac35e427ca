"""link_failures: wrong or expired link codes per sender, so that codes cannot be guessed.

A sender with five failures within an hour is refused (bot/linking.py); rows older than an hour are
purged and a mentor's rows go with ``delete_mentor``. A database made by ``create_all`` of this
code already has the table when bot.db_migrate stamps it at 0002: then nothing is created.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("link_failures"):
        return
    op.create_table(
        "link_failures",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("sender_id", sa.String(255), nullable=False),
        sa.Column("failed_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_link_failures_sender_id", "link_failures", ["sender_id"])


def downgrade() -> None:
    op.drop_index("ix_link_failures_sender_id", table_name="link_failures")
    op.drop_table("link_failures")
