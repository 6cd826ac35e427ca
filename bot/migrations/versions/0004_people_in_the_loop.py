"""People in the loop (issue 16): feedback, staff and their link codes, forwarded questions,
conversation references, the outbox, reminders, training dates, the anonymous answer log, and
``mentors.reminders_off``.

Written out (not ``create_all`` of the models), so that later revisions can change these tables.
A database made by ``create_all`` of this code (stamped by bot.db_migrate) already has them: then
nothing is created.

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


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("outbox"):
        return
    op.create_table('answer_log',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('entry_id', sa.String(length=128), nullable=True),
        sa.Column('topic', sa.String(length=128), nullable=True),
        sa.Column('outcome', sa.String(length=16), nullable=False),
        sa.Column('partnership', sa.String(length=64), nullable=True),
        sa.Column('day', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_answer_log_entry_id'), 'answer_log', ['entry_id'], unique=False)
    op.create_table('trainings',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('school', sa.String(length=200), nullable=False),
        sa.Column('training_date', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('school', 'training_date', name='uq_training_school_date')
    )
    op.create_index(op.f('ix_trainings_school'), 'trainings', ['school'], unique=False)
    op.create_table('conversation_refs',
        sa.Column('sender_id', sa.String(length=255), nullable=False),
        sa.Column('mentor_id', sa.String(length=32), nullable=False),
        sa.Column('channel', sa.String(length=32), nullable=False),
        sa.Column('reference', sa.Text(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['mentor_id'], ['mentors.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('sender_id')
    )
    op.create_index(op.f('ix_conversation_refs_mentor_id'), 'conversation_refs', ['mentor_id'], unique=False)
    op.create_table('feedback',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('mentor_id', sa.String(length=32), nullable=False),
        sa.Column('entry_id', sa.String(length=128), nullable=False),
        sa.Column('kb_version', sa.String(length=64), nullable=True),
        sa.Column('partnership', sa.String(length=64), nullable=True),
        sa.Column('vote', sa.String(length=8), nullable=False),
        sa.Column('comment', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['mentor_id'], ['mentors.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_feedback_entry_id'), 'feedback', ['entry_id'], unique=False)
    op.create_index(op.f('ix_feedback_mentor_id'), 'feedback', ['mentor_id'], unique=False)
    op.create_table('staff_members',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('email', sa.String(length=200), nullable=False),
        sa.Column('role', sa.String(length=64), nullable=False),
        sa.Column('school', sa.String(length=200), nullable=True),
        sa.Column('partnership', sa.String(length=64), nullable=True),
        sa.Column('report_admin', sa.Boolean(), server_default='0', nullable=False),
        sa.Column('account_id', sa.String(length=32), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['mentors.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('email', 'role', 'school', name='uq_staff_email_role_school')
    )
    op.create_index(op.f('ix_staff_members_account_id'), 'staff_members', ['account_id'], unique=False)
    op.create_index(op.f('ix_staff_members_school'), 'staff_members', ['school'], unique=False)
    op.create_table('questions',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('mentor_id', sa.String(length=32), nullable=False),
        sa.Column('staff_id', sa.Integer(), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('topic', sa.String(length=128), nullable=True),
        sa.Column('school', sa.String(length=200), nullable=True),
        sa.Column('partnership', sa.String(length=64), nullable=True),
        sa.Column('sender_id', sa.String(length=255), nullable=False),
        sa.Column('channel', sa.String(length=32), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('sent_at', sa.DateTime(), nullable=True),
        sa.Column('answered_at', sa.DateTime(), nullable=True),
        sa.Column('answer', sa.Text(), nullable=True),
        sa.Column('answered_by', sa.Integer(), nullable=True),
        sa.Column('escalated_at', sa.DateTime(), nullable=True),
        sa.Column('draft_requested_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['answered_by'], ['staff_members.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['mentor_id'], ['mentors.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['staff_id'], ['staff_members.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_questions_mentor_id'), 'questions', ['mentor_id'], unique=False)
    op.create_index(op.f('ix_questions_staff_id'), 'questions', ['staff_id'], unique=False)
    op.create_index(op.f('ix_questions_status'), 'questions', ['status'], unique=False)
    op.create_table('reminders',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('mentor_id', sa.String(length=32), nullable=False),
        sa.Column('run_id', sa.Integer(), nullable=True),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('sender_id', sa.String(length=255), nullable=False),
        sa.Column('channel', sa.String(length=32), nullable=False),
        sa.Column('remind_at', sa.DateTime(), nullable=False),
        sa.Column('sent_at', sa.DateTime(), nullable=True),
        sa.Column('cancelled_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['mentor_id'], ['mentors.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['run_id'], ['scan_runs.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('run_id', name='uq_reminder_run')
    )
    op.create_index(op.f('ix_reminders_mentor_id'), 'reminders', ['mentor_id'], unique=False)
    op.create_index(op.f('ix_reminders_run_id'), 'reminders', ['run_id'], unique=False)
    op.create_table('staff_codes',
        sa.Column('code', sa.String(length=16), nullable=False),
        sa.Column('staff_id', sa.Integer(), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.Column('used_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['staff_id'], ['staff_members.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('code')
    )
    op.create_index(op.f('ix_staff_codes_staff_id'), 'staff_codes', ['staff_id'], unique=False)
    op.create_table('outbox',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('mentor_id', sa.String(length=32), nullable=True),
        sa.Column('sender_id', sa.String(length=255), nullable=True),
        sa.Column('email_to', sa.String(length=200), nullable=True),
        sa.Column('channel', sa.String(length=32), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('question_id', sa.Integer(), nullable=True),
        sa.Column('subject', sa.String(length=200), nullable=True),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('buttons', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('claimed_at', sa.DateTime(), nullable=True),
        sa.Column('delivered_at', sa.DateTime(), nullable=True),
        sa.Column('handed_out_with', sa.String(length=64), nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('last_error', sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(['mentor_id'], ['mentors.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['question_id'], ['questions.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_outbox_mentor_id'), 'outbox', ['mentor_id'], unique=False)
    op.create_index('ix_outbox_pending', 'outbox', ['delivered_at', 'channel'], unique=False)
    op.create_index(op.f('ix_outbox_question_id'), 'outbox', ['question_id'], unique=False)
    op.create_index(op.f('ix_outbox_sender_id'), 'outbox', ['sender_id'], unique=False)
    if "reminders_off" not in {column["name"] for column in sa.inspect(op.get_bind()).get_columns("mentors")}:
        op.add_column("mentors", sa.Column("reminders_off", sa.Boolean(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("mentors") as batch:
        batch.drop_column("reminders_off")
    op.drop_index(op.f('ix_outbox_sender_id'), table_name='outbox')
    op.drop_index(op.f('ix_outbox_question_id'), table_name='outbox')
    op.drop_index('ix_outbox_pending', table_name='outbox')
    op.drop_index(op.f('ix_outbox_mentor_id'), table_name='outbox')
    op.drop_table('outbox')
    op.drop_index(op.f('ix_staff_codes_staff_id'), table_name='staff_codes')
    op.drop_table('staff_codes')
    op.drop_index(op.f('ix_reminders_run_id'), table_name='reminders')
    op.drop_index(op.f('ix_reminders_mentor_id'), table_name='reminders')
    op.drop_table('reminders')
    op.drop_index(op.f('ix_questions_status'), table_name='questions')
    op.drop_index(op.f('ix_questions_staff_id'), table_name='questions')
    op.drop_index(op.f('ix_questions_mentor_id'), table_name='questions')
    op.drop_table('questions')
    op.drop_index(op.f('ix_staff_members_school'), table_name='staff_members')
    op.drop_index(op.f('ix_staff_members_account_id'), table_name='staff_members')
    op.drop_table('staff_members')
    op.drop_index(op.f('ix_feedback_mentor_id'), table_name='feedback')
    op.drop_index(op.f('ix_feedback_entry_id'), table_name='feedback')
    op.drop_table('feedback')
    op.drop_index(op.f('ix_conversation_refs_mentor_id'), table_name='conversation_refs')
    op.drop_table('conversation_refs')
    op.drop_index(op.f('ix_trainings_school'), table_name='trainings')
    op.drop_table('trainings')
    op.drop_index(op.f('ix_answer_log_entry_id'), table_name='answer_log')
    op.drop_table('answer_log')
