"""incident.tags (Opsgenie tags, PagerDuty custom fields) and incident.postmortem_by_hand (trigger rules keep off)

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-02 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0021'
down_revision: str | None = '0020'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('incident', schema=None) as batch_op:
        batch_op.add_column(sa.Column('postmortem_by_hand', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('tags', sa.JSON(), server_default='[]', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('incident', schema=None) as batch_op:
        batch_op.drop_column('tags')
        batch_op.drop_column('postmortem_by_hand')
