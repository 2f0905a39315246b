"""Asset files: procedural URDFs, shipped Genesis meshes, user imports."""
