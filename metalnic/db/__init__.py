"""Database access: the declarative base, engine and sessions, and migrations."""
