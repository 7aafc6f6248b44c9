"""Model files read and nothing else: the GGUF reader, a file's model type, its memory estimate, its name.

Nothing here loads a model or holds state, so the pool, the planner, the scanner and the config
editor all price and identify files the same way, from their headers alone.
"""
