"""The experience store of past tasks, subtasks and policies (DESIGN.md)."""
