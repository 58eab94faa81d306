"""The monitoring database's revisions, oldest first (0001: the initial schema)."""
