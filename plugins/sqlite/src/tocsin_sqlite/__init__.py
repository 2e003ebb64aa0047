"""tocsin-sqlite: the embedded default storage backend (work in progress)."""
