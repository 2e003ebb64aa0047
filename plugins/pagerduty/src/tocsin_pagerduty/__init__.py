"""tocsin-pagerduty (work in progress)."""
