"""HTTP routes, one module per family; each handler parses, calls the engine, and returns."""
