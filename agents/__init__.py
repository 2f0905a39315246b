"""The LangGraph graph, its roles and model backends, the CLI and the run modes (DESIGN.md)."""
