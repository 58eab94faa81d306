"""Alembic environment: runs on the engine the project opened (config.attributes["engine"])."""
from __future__ import annotations

from alembic import context

from proctovision.reading.db import Base

config = context.config
target_metadata = Base.metadata
engine = config.attributes.get("engine")
if engine is None:  # the alembic command line: a URL in sqlalchemy.url
    from proctovision.reading.db import make_engine

    engine = make_engine(config.get_main_option("sqlalchemy.url"))
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()
