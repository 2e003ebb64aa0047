"""Built-in `tocsin notify ...` commands; filled in by the notifications work."""
