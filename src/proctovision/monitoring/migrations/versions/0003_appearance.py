"""appearance: each answer's mean red, green and blue levels of the lit area it was judged on

Revision ID: 0003ap
Revises: 0002cc
Create Date: 2026-12-07 (from monitoring.store, then reviewed)

Answers recorded before stay without them (NULL): the appearance charts skip them.
"""
from alembic import op
import sqlalchemy as sa


revision = '0003ap'
down_revision = '0002cc'
branch_labels = None
depends_on = None

COLUMNS = ('appearance_red', 'appearance_green', 'appearance_blue')


def upgrade() -> None:
    with op.batch_alter_table('predictions', schema=None) as batch_op:
        for name in COLUMNS:
            batch_op.add_column(sa.Column(name, sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('predictions', schema=None) as batch_op:
        for name in reversed(COLUMNS):
            batch_op.drop_column(name)
