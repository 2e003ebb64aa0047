"""Health: checks, their schedule, and each component's and the system's status."""
