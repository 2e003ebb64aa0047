"""tocsin-slack (work in progress)."""
