"""The reading room's Alembic environment: schema changes of its database, applied by ``reading`` when a project is
opened, so an upgraded database keeps its answers."""
