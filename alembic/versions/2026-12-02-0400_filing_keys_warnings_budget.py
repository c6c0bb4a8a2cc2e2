"""filing that survives real trackers: installation-unique issue keys, dropped-field warnings, the tracker's issue id,
the reason an action will not be done, and the write budget every process shares

Actions filed before keep the key their issues carry (aftermath-action-<id>).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import app.db

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('installation',
    sa.Column('one', sa.Integer(), nullable=False),
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.PrimaryKeyConstraint('one', name=op.f('pk_installation'))
    )
    op.create_table('write_budget',
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_write_budget'))
    )
    op.create_table('write_slot',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('budget', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['budget'], ['write_budget.key'], name=op.f('fk_write_slot_budget_write_budget')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_write_slot'))
    )
    with op.batch_alter_table('write_slot', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_write_slot_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_write_slot_budget'), ['budget'], unique=False)

    with op.batch_alter_table('action', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tracker_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True))
        batch_op.add_column(sa.Column('idempotency_key', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True))
        batch_op.add_column(sa.Column('warnings', sa.JSON(), nullable=False, server_default='[]'))
        batch_op.add_column(sa.Column('wont_do_reason', sa.Text(), nullable=True))
    op.execute("UPDATE action SET idempotency_key = 'aftermath-action-' || id")
    with op.batch_alter_table('action', schema=None) as batch_op:
        batch_op.alter_column('warnings', server_default=None)
        batch_op.create_unique_constraint(batch_op.f('uq_action_idempotency_key'), ['idempotency_key'])


def downgrade() -> None:
    with op.batch_alter_table('action', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_action_idempotency_key'), type_='unique')
        batch_op.drop_column('wont_do_reason')
        batch_op.drop_column('warnings')
        batch_op.drop_column('idempotency_key')
        batch_op.drop_column('tracker_id')
    with op.batch_alter_table('write_slot', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_write_slot_budget'))
        batch_op.drop_index(batch_op.f('ix_write_slot_at'))
    op.drop_table('write_slot')
    op.drop_table('write_budget')
    op.drop_table('installation')
