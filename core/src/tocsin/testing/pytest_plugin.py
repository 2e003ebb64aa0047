"""tocsin's pytest plugin (entry point `pytest11`); imports stay lazy so loading it costs nothing."""
