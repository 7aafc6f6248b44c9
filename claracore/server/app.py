"""`create_app(engine)`: the FastAPI application around one engine, built without globals."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from claracore import __version__
from claracore.engine import AsyncEngine
from claracore.manage.activity import ActivityLog
from claracore.manage.config_file import ConfigFile
from claracore.manage.downloads import DownloadManager, DownloadOptions
from claracore.manage.settings import Settings
from claracore.manage.setup import SetupRunner
from claracore.manage.store import Store
from claracore.server import errors, openapi, ui
from claracore.server.auth import Auth
from claracore.server.drain import DrainMiddleware
from claracore.server.guard import RequestGuard
from claracore.server.routes import (
    activity,
    audio,
    config,
    control,
    downloads,
    folders,
    monitor,
    openai,
    settings,
    setup,
    system,
)
from claracore.server.state import AppState
from claracore.server.telemetry import RequestTelemetry

ROUTERS = (openai, audio, folders, control, config, system, settings, setup, downloads, monitor, activity)


def create_app(
    engine: AsyncEngine,
    *,
    config_path: Path | None = None,
    data_dir: Path | None = None,
    hard_restart: Callable[[], None] | None = None,
    download_options: DownloadOptions | None = None,
    leader: bool = True,
) -> FastAPI:
    """The app; its lifespan preloads models at start-up and frees them all at shutdown.

    The API key and CORS come from `engine.config`. `config_path` is the YAML file the management
    API edits (None: edits are refused), `data_dir` holds ClaraCore's SQLite store (None: a
    temporary folder, so tests and embedded uses never touch the user's data). `hard_restart`
    replaces the process (`claracore serve` passes one; without it the route refuses).
    `download_options` say which hub to use and where models land (default: `HF_ENDPOINT` or the
    public hub; `data_dir/models`). `leader=False` makes a follower replica, which leaves the
    shared data directory's downloads to the leader (docs/scaling.md).
    """
    # Without a data directory the store lives in a scratch folder made once for this app.
    folder = data_dir if data_dir is not None else Path(tempfile.mkdtemp(prefix="claracore-"))
    scratch = folder if data_dir is None else None
    store = Store(folder / "claracore.db")
    config_file = ConfigFile(config_path, running=lambda: engine.config, events=engine.events)
    prefs = Settings(store)
    state = AppState(
        engine=engine,
        store=store,
        data_dir=folder,
        config_file=config_file,
        auth=Auth(store, engine.config.api_key),
        settings=prefs,
        setup=SetupRunner(store, config_file, engine.events),
        activity=ActivityLog(store, engine.events, lambda: engine.config.monitoring),
        downloads=DownloadManager(
            store, engine.events, prefs, config_file, data_dir=folder, options=download_options, leader=leader
        ),
        file_at_start=config_file.current_or_running(),
        hard_restart=hard_restart,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The request guard reads each route's media types from the OpenAPI document, built on
        # first use: build it now, so the first request (a user's first chat) does not wait on it.
        app.openapi()
        state.activity.start()
        await engine.start()
        await state.downloads.start()  # unfinished downloads go on (paused ones stay paused)
        try:
            yield
        finally:
            await state.downloads.close()  # keeps their state: the next start resumes them
            await engine.close()
            state.activity.close()
            store.close()
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)

    app = FastAPI(title="ClaraCore", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state = state  # type: ignore[assignment]  # the typed AppState instead of Starlette's bag
    # The guard checks key, origin, media type, size and JSON text before any route runs; CORS,
    # added after it, wraps it, so preflights are answered and refusals carry CORS headers.
    app.add_middleware(RequestGuard, state=state, openapi=app.openapi)
    app.add_middleware(DrainMiddleware, draining=state.draining)  # outside the guard: refuses first
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
    app.add_middleware(RequestTelemetry, monitor=engine.monitor)  # outermost: times everything
    errors.install(app)
    openapi.install(app)
    for module in ROUTERS:
        app.include_router(module.router)

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    ui.install(app)  # last: its /ui/* catch-all must not shadow an API route
    return app
