"""Incremental timelines: each incident keeps where its fold stands, each entry the fold after it, and entries are
indexed by (incident, time) so that a late event reads its incident's timeline only from its own time on

Revision ID: 0010
Revises: 0003
Create Date: 2026-12-02 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing rows keep NULL: an incident without progress replays its whole timeline once, at its next event.
    with op.batch_alter_table('incident', schema=None) as batch_op:
        batch_op.add_column(sa.Column('progress', sa.JSON(), nullable=True))
    with op.batch_alter_table('timeline_entry', schema=None) as batch_op:
        batch_op.add_column(sa.Column('fold', sa.JSON(), nullable=True))
        batch_op.create_index('ix_timeline_entry_incident_id_at', ['incident_id', 'at'], unique=False)
        batch_op.drop_index('ix_timeline_entry_incident_id')


def downgrade() -> None:
    with op.batch_alter_table('timeline_entry', schema=None) as batch_op:
        batch_op.create_index('ix_timeline_entry_incident_id', ['incident_id'], unique=False)
        batch_op.drop_index('ix_timeline_entry_incident_id_at')
        batch_op.drop_column('fold')
    with op.batch_alter_table('incident', schema=None) as batch_op:
        batch_op.drop_column('progress')
