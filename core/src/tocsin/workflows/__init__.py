"""Workflows: executions and steps as traces, their stats, and expected runs that go missing."""
