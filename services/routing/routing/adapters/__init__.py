"""Adapters of the routing service: database tables and repositories, the unit-queue adapter."""
