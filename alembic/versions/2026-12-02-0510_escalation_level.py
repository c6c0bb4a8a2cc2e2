"""the escalation ladder: the step an overdue action has reached (and when), and an index that hands the sweep the
open, overdue actions alone

Existing actions start with no step taken: an action overdue today is taken up at the step it has reached, in one
comment.

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-02 05:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = '0031'
down_revision: str | None = '0030'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('action', schema=None) as batch_op:
        batch_op.add_column(sa.Column('escalation_level', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('escalated_at', app.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_action_status_due_date', ['status', 'due_date'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('action', schema=None) as batch_op:
        batch_op.drop_index('ix_action_status_due_date')
        batch_op.drop_column('escalated_at')
        batch_op.drop_column('escalation_level')
