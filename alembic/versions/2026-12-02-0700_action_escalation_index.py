"""an index on action.escalation_level: the overview's escalations and `?escalated=true` read the few escalated
actions instead of every action (a sequential scan of 100,000 rows, 37 ms, for a handful)

Revision ID: 0050
Revises: 0041
Create Date: 2026-12-02 07:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0050'
down_revision: str | None = '0041'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('action', schema=None) as batch_op:
        batch_op.create_index('ix_action_escalation_level', ['escalation_level'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('action', schema=None) as batch_op:
        batch_op.drop_index('ix_action_escalation_level')
