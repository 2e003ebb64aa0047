"""tocsin-sql: the SQLAlchemy Core schema, migrations and dialect-neutral queries for SQL storage backends."""
