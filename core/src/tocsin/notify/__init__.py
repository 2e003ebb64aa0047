"""Notifications: channels, routing, the outbox dispatcher, retries, rate limits, templates, egress."""
