"""tocsin-webhook (work in progress)."""
