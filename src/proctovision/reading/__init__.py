"""The reading room: expert labelling with consensus and timed reader studies, with and without the model.

A reading project is a folder made by ``reading init`` (``project.py``) holding the cases' images, named by
opaque random ids, and a database (SQLite in WAL mode in the folder, or PostgreSQL; SQLAlchemy models and
Alembic migrations in ``db.py``/``migrations``). Readers work through a JSON API and a page (``api.py``,
``static/``) behind argon2 passwords, server-side sessions and CSRF tokens (``security.py``); each reader gets
a seeded random order per arm with a washout and unannounced repeats (``assignments.py``), experts' labels
become a consensus by rule or adjudication (``consensus.py``), and ``export.py`` writes the manifest that
``split`` reads or the readers.csv that ``compare`` and ``agreement`` read.
"""
