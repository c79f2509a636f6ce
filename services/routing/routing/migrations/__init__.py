"""Alembic migrations of the routing database."""
