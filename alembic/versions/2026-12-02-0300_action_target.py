"""action.tracker is the action's target: the column is named so

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 03:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('action', schema=None) as batch_op:
        batch_op.alter_column('tracker', new_column_name='target')


def downgrade() -> None:
    with op.batch_alter_table('action', schema=None) as batch_op:
        batch_op.alter_column('target', new_column_name='tracker')
