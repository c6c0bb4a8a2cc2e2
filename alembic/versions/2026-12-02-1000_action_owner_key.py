"""action.owner_key: the owner in lower case, so owner= matches whatever the case, still through an (x, id) index

Revision ID: 0020
Revises: 0010
Create Date: 2026-12-02 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0020'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('action', schema=None) as batch_op:
        batch_op.add_column(sa.Column('owner_key', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True))
    # Python's lower(), as the app writes it: SQLite's lower() folds ASCII only.
    action = sa.table('action', sa.column('id', sa.Integer), sa.column('owner', sa.String), sa.column('owner_key', sa.String))
    conn = op.get_bind()
    rows = conn.execute(sa.select(action.c.id, action.c.owner).where(action.c.owner.is_not(None))).all()
    for row_id, owner in rows:
        conn.execute(action.update().where(action.c.id == row_id).values(owner_key=owner.lower()))
    with op.batch_alter_table('action', schema=None) as batch_op:
        batch_op.drop_index('ix_action_owner_id')
        batch_op.create_index('ix_action_owner_key_id', ['owner_key', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('action', schema=None) as batch_op:
        batch_op.drop_index('ix_action_owner_key_id')
        batch_op.create_index('ix_action_owner_id', ['owner', 'id'], unique=False)
        batch_op.drop_column('owner_key')
