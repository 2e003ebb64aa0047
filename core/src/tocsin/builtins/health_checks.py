"""Built-in health checks (http, tcp, disk, storage, process memory); filled in by the health work."""
