"""query indexes: (status, id) and (owner, id) on action, replacing the single-column ones

The action list filters page by id; with the filter column first and id second, PostgreSQL reads one status's or
one owner's actions already in id order instead of walking the whole table by primary key when few rows match.
Measured with bench/queries.py (100,000 actions): open and overdue, none overdue, 53 ms -> 14 ms.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 23:22:36.783459
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('action', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_action_owner'))
        batch_op.drop_index(batch_op.f('ix_action_status'))
        batch_op.create_index('ix_action_owner_id', ['owner', 'id'], unique=False)
        batch_op.create_index('ix_action_status_id', ['status', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('action', schema=None) as batch_op:
        batch_op.drop_index('ix_action_status_id')
        batch_op.drop_index('ix_action_owner_id')
        batch_op.create_index(batch_op.f('ix_action_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_action_owner'), ['owner'], unique=False)
