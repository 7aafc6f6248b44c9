"""`create_app(engine)`: the FastAPI application around one engine, built without globals."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from claracore import __version__
from claracore.engine import AsyncEngine
from claracore.server import errors, ui
from claracore.server.deps import key_digest
from claracore.server.routes import audio, control, openai
from claracore.server.routes import config as config_routes
from claracore.server.routes import folders as folder_routes
from claracore.server.routes import settings as settings_routes
from claracore.server.routes import setup as setup_routes
from claracore.server.routes import system as system_routes
from claracore.store import Store


def create_app(
    engine: AsyncEngine, *, config_path: Path | None = None, data_dir: Path | None = None
) -> FastAPI:
    """The app; its lifespan preloads models at start-up and frees them all at shutdown.

    The API key and CORS come from `engine.config`. `config_path` is the YAML file the management
    API edits (None: edits are refused), `data_dir` holds ClaraCore's SQLite store (None: a
    temporary folder, so tests and embedded uses never touch the user's data).
    """

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await engine.start()
        try:
            yield
        finally:
            await engine.close()
            store.close()
            if scratch:
                shutil.rmtree(scratch, ignore_errors=True)

    app = FastAPI(title="ClaraCore", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.engine = engine
    app.state.config_path = config_path
    app.state.data_dir = data_dir
    # Without a data directory the store lives in a scratch folder made once for this app.
    scratch = None if data_dir is not None else tempfile.mkdtemp(prefix="claracore-")
    store = Store(Path(scratch or data_dir or ".") / "claracore.db")
    app.state.store = store
    key = engine.config.api_key
    app.state.key_digest = key_digest(key) if key else None
    settings_routes.restore_auth(app)  # a key set through the settings route outlives restarts
    cors = engine.config.cors
    if cors:
        origins = ["*"] if cors is True else list(cors)
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["*"],
            allow_headers=["*"],
            allow_credentials=origins != ["*"],
        )
    errors.install(app)
    app.include_router(openai.router)
    app.include_router(audio.router)
    app.include_router(folder_routes.router)
    app.include_router(control.router)
    app.include_router(config_routes.router)
    app.include_router(system_routes.router)
    app.include_router(settings_routes.router)
    app.include_router(setup_routes.router)

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    ui.install(app)  # last: its /ui/* catch-all must not shadow an API route
    return app
