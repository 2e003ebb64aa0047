"""tocsin storage backend "postgres": PostgreSQL with partitions, tsvector search, LISTEN/NOTIFY."""
