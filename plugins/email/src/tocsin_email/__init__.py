"""tocsin-email (work in progress)."""
