"""whether the fix worked: a done action's verification (state, due date, note, when it was asked for and recorded),
and an index that hands the verification sweep the pending ones that fell due

Actions done before this revision start with no verification: nobody is asked about fixes closed long ago, and the
effectiveness metrics count only what was verified.

Revision ID: 0040
Revises: 0031
Create Date: 2026-12-02 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = '0040'
down_revision: str | None = '0031'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('action', schema=None) as batch_op:
        batch_op.add_column(sa.Column('verification_state', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('verification_due', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('verification_note', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('verification_asked_at', app.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('verified_at', app.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index(
            'ix_action_verification_state_due', ['verification_state', 'verification_due'], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table('action', schema=None) as batch_op:
        batch_op.drop_index('ix_action_verification_state_due')
        batch_op.drop_column('verified_at')
        batch_op.drop_column('verification_asked_at')
        batch_op.drop_column('verification_note')
        batch_op.drop_column('verification_due')
        batch_op.drop_column('verification_state')
