"""the process around a postmortem: participants, accepted risks, preventive controls and counterfactuals

Existing postmortems get an empty participant list and keep their status (a published one stays published); existing
findings and actions get no accepted risk, control or counterfactual.

Revision ID: 0030
Revises: 0004
Create Date: 2026-12-02 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0030'
down_revision: str | None = '0021'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('postmortem', schema=None) as batch_op:
        batch_op.add_column(sa.Column('participants', sa.JSON(), nullable=False, server_default='[]'))
    with op.batch_alter_table('postmortem', schema=None) as batch_op:
        batch_op.alter_column('participants', server_default=None)

    with op.batch_alter_table('finding', schema=None) as batch_op:
        batch_op.add_column(sa.Column('accepted_risk', sa.Text(), nullable=True))

    with op.batch_alter_table('action', schema=None) as batch_op:
        batch_op.add_column(sa.Column('control', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))
        batch_op.add_column(sa.Column('counterfactual', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('action', schema=None) as batch_op:
        batch_op.drop_column('counterfactual')
        batch_op.drop_column('control')

    with op.batch_alter_table('finding', schema=None) as batch_op:
        batch_op.drop_column('accepted_risk')

    with op.batch_alter_table('postmortem', schema=None) as batch_op:
        batch_op.drop_column('participants')
