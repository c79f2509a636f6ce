"""Alembic migrations of the archive database."""
