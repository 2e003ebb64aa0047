"""tocsin's web dashboard: live charts, alerts, traces, logs, workflows, served by tocsin serve."""
