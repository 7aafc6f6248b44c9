"""The HTTP face of the engine: `create_app` builds the FastAPI app, whose routes parse a request,
call the engine or a management service, and answer (ARCHITECTURE.md has the map)."""

from claracore.server.app import create_app

__all__ = ["create_app"]
