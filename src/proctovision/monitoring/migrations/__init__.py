"""Alembic migrations of the monitoring database: the schema owned by revisions, upgraded when a folder opens."""
