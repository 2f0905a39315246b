"""The simulation layer: catalog, task specs, Genesis scenes, the batched hand environment (DESIGN.md)."""
