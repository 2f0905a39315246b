"""Typed tools the agent's roles call; heavy work goes to worker jobs (DESIGN.md)."""
