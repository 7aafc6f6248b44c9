"""The HTTP face of the engine: FastAPI routes that parse, call the engine and serialise."""

from claracore.server.app import create_app

__all__ = ["create_app"]
