"""Built-in features, each a tiny plugin module listed in `tocsin.plugins.DEFAULT_PLUGINS`."""
