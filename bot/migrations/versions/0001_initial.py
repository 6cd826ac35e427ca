"""Initial schema: mentors, identities, link_codes, scan_runs, answers, contacts.

Exactly the tables of bot/storage.py as first released. Databases created earlier by
``storage.init_db()`` (``create_all``) are stamped at this revision by bot.db_migrate instead of
running it.

Revision ID: 0001
Revises:
Create Date: 2025-11-23
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mentors",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("display_name", sa.String(200), nullable=True),
        sa.Column("school", sa.String(200), nullable=True),
        sa.Column("partnership", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "identities",
        sa.Column("sender_id", sa.String(255), primary_key=True),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("mentor_id", sa.String(32), sa.ForeignKey("mentors.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_identities_mentor_id", "identities", ["mentor_id"])
    op.create_table(
        "link_codes",
        sa.Column("code", sa.String(16), primary_key=True),
        sa.Column("mentor_id", sa.String(32), sa.ForeignKey("mentors.id", ondelete="CASCADE"), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_link_codes_mentor_id", "link_codes", ["mentor_id"])
    op.create_table(
        "scan_runs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("mentor_id", sa.String(32), sa.ForeignKey("mentors.id", ondelete="CASCADE"), nullable=False),
        sa.Column("questionnaire_id", sa.String(64), nullable=False),
        sa.Column("questionnaire_version", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("completed_at", sa.DateTime(), nullable=True),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("edit_item_id", sa.String(32), nullable=True),
    )
    op.create_index("ix_scan_runs_mentor_id", "scan_runs", ["mentor_id"])
    op.create_table(
        "answers",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("scan_runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("item_id", sa.String(32), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("answered_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("run_id", "item_id", name="uq_answer_run_item"),
    )
    op.create_index("ix_answers_run_id", "answers", ["run_id"])
    op.create_table(
        "contacts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("school", sa.String(200), nullable=False),
        sa.Column("role", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(200), nullable=False),
        sa.Column("partnership", sa.String(64), nullable=True),
        sa.UniqueConstraint("school", "role", "email", name="uq_contact_school_role_email"),
    )
    op.create_index("ix_contacts_school", "contacts", ["school"])


def downgrade() -> None:
    for index, table in [("ix_contacts_school", "contacts"), ("ix_answers_run_id", "answers"),
                         ("ix_scan_runs_mentor_id", "scan_runs"), ("ix_link_codes_mentor_id", "link_codes"),
                         ("ix_identities_mentor_id", "identities")]:
        op.drop_index(index, table_name=table)
    for table in ("contacts", "answers", "scan_runs", "link_codes", "identities", "mentors"):
        op.drop_table(table)
