"""HTTP routes, one module per family; each handler parses, calls one engine method or management
service, and answers. Route modules never import one another (tests/unit/test_layers.py)."""
