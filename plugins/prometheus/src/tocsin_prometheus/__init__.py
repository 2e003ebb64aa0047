"""tocsin for Prometheus: /metrics exposition and an Alertmanager-compatible receiver."""
