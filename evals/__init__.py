"""Eval suites of agent behaviour, their runner and scorers (DESIGN.md)."""
