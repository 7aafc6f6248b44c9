"""Wire types (pydantic only): what the HTTP layer and Python callers exchange with the engine."""
