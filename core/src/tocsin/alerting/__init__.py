"""Alerting: rules, their evaluation, the alert state machine, silences and backtests."""
