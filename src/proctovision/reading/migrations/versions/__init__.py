"""The reading room's schema revisions, oldest first: the initial schema, the append-only audit trigger, an opaque
case id per assignment item, and case-free unique user names."""
