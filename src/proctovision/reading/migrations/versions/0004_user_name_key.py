"""users.name_key: user names compared without case (unique), so ``Reader-C`` cannot sit beside ``reader-c``

Revision ID: 0004
Revises: 0002
Create Date: 2026-12-06

A database that already holds two names differing only in case cannot be upgraded silently (one of them would
lose their account): the upgrade stops and names them, so an admin can rename one first.
"""
from collections import defaultdict

import sqlalchemy as sa
from alembic import op

from proctovision.reading.db import ReadingError, name_key

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    users = sa.table("users", sa.column("id", sa.Integer), sa.column("name", sa.String),
                     sa.column("name_key", sa.String))
    connection = op.get_bind()
    rows = connection.execute(sa.select(users.c.id, users.c.name)).all()
    names = defaultdict(list)
    for _, name in rows:
        names[name_key(name)].append(name)
    clashes = sorted(" / ".join(sorted(group)) for group in names.values() if len(group) > 1)
    if clashes:
        raise ReadingError(f"user names that differ only in case: {'; '.join(clashes)}; rename all but one of "
                           "each (UPDATE users SET name = ...) and open the project again")
    # Plain ALTER TABLE and CREATE INDEX: SQLite's batch mode would rebuild users, which other tables refer to.
    op.add_column("users", sa.Column("name_key", sa.String(length=200), nullable=True))
    for user_id, name in rows:
        connection.execute(users.update().where(users.c.id == user_id).values(name_key=name_key(name)))
    op.create_index("ix_users_name_key", "users", ["name_key"], unique=True)
    login_failures = sa.table("login_failures", sa.column("username", sa.String))
    connection.execute(login_failures.delete())  # counted under the old key; the window is short anyway


def downgrade() -> None:
    op.drop_index("ix_users_name_key", table_name="users")
    op.execute("ALTER TABLE users DROP COLUMN name_key")
