"""items.token: an opaque id per assignment item, so a reader's case ids differ between arms and repeats

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""
import secrets

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE, not a batch copy: SQLite could not drop the old items table under the answers' foreign
    # keys. SQLite keeps the column nullable (it cannot add NOT NULL later); the ORM always fills it.
    op.add_column("items", sa.Column("token", sa.String(length=32), nullable=True))
    items = sa.table("items", sa.column("id", sa.Integer), sa.column("token", sa.String))
    connection = op.get_bind()
    for (item_id,) in connection.execute(sa.select(items.c.id)).all():
        connection.execute(items.update().where(items.c.id == item_id).values(token=secrets.token_urlsafe(12)))
    if connection.dialect.name != "sqlite":
        op.alter_column("items", "token", existing_type=sa.String(length=32), nullable=False)
    op.create_index("ix_items_token", "items", ["token"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_items_token", table_name="items")
    op.drop_column("items", "token")
