"""Signals: recording metrics, spans and logs in process, cheaply, and the context that links them."""
