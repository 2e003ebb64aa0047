"""Built-in `tocsin rules ...` and `tocsin alerts ...` commands; filled in by the alerting work."""
