"""The reading room's schema revisions, oldest first: the initial schema, then the append-only audit trigger."""
