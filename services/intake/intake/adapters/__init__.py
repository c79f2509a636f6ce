"""intake adapters: SQLAlchemy tables and repository, the arrival counter, migrations runner."""
