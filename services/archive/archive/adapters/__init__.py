"""Adapters of the archive service: database tables and repositories, retention config, object store use."""
