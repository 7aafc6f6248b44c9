"""`claracore serve`: the HTTP server in the foreground, and its hard restart in place.

The port is bound here rather than by uvicorn, so a busy port is a one-line error, and a hard
restart can hand the very same listening socket to the re-executed process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from claracore import __version__
from claracore.cli.common import CliError, command_config, log, say
from claracore.config import Config, ModelSpec
from claracore.engine import AsyncEngine
from claracore.manage.defaults import data_dir, find_config
from claracore.priority import ThreadStarter, lower_this_thread, prestarted_executor

_LISTEN_FD = "CLARACORE_LISTEN_FD"


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _label(spec: ModelSpec) -> str:
    return f"{spec.name} ({', '.join(spec.aliases)})" if spec.aliases else spec.name


def _bind(host: str, port: int) -> socket.socket:
    """Bind before the app starts, so a busy port is a clear error instead of uvicorn's exit 3.

    After a hard restart the listening socket is inherited (see `_reexec`) rather than bound
    again, so the port is never released and no connection is refused in between.
    """
    inherited = os.environ.pop(_LISTEN_FD, None)
    if inherited is not None:
        with contextlib.suppress(OSError, ValueError):
            sock = socket.socket(fileno=int(inherited))
            if sock.getsockname()[1] == port:
                return sock
            sock.close()
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, UnicodeError) as exc:  # UnicodeError: a host name IDNA cannot encode
        raise CliError(f"cannot listen on {host}:{port}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the HTTP server in the foreground until Ctrl+C (SIGINT) or SIGTERM."""
    from claracore.server.app import create_app

    config, source = command_config(args)
    update: dict[str, Any] = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    config = config.model_copy(update=update)
    sock = _bind(config.host, config.port)
    url = _url(config.host, config.port)
    names = ", ".join(_label(spec) for spec in config.models) or "(none)"

    def announce() -> None:
        say(f"ClaraCore {__version__} serving at {url} (OpenAI API: {url}/v1); models: {names}")
        say(f"config: {source}. Press Ctrl+C to stop.")

    # The file the management API edits: the one in use, or for the bundled default the data
    # directory's config.yaml, which the config search finds on the next start.
    config_file = find_config(args.config, os.environ, Path.cwd())
    if config_file is None:
        config_file = Path.cwd() / data_dir(os.environ) / "config.yaml"
    # The event loop may run lowered (loop_nice), which a process started by execve from its
    # thread would inherit: the restart runs from a thread that kept the original priority.
    restarter = ThreadStarter("restart")
    app = create_app(
        AsyncEngine(config),
        config_path=config_file,
        data_dir=Path.cwd() / data_dir(os.environ),
        hard_restart=lambda: restarter.start(threading.Thread(target=_reexec, args=(sock,), name="restart")),
        leader=args.role == "leader",
    )
    _run(app, config, args.log_level, sock, announce)
    return 0


def _reexec(sock: socket.socket) -> None:
    """A hard restart: the same command line in a fresh process image (same pid, same port).

    The listening socket stays open across exec and its fd number travels in the environment,
    so the new process serves on it at once and the port is never free for anyone else.
    """
    log.warning("hard restart: re-executing %s", " ".join(sys.argv))
    sock.set_inheritable(True)
    env = {**os.environ, _LISTEN_FD: str(sock.fileno())}
    os.execve(sys.executable, [sys.executable, "-m", "claracore", *sys.argv[1:]], env)


def _run(app: Any, config: Config, log_level: str, sock: socket.socket, announce: Callable[[], None]) -> None:
    """Run uvicorn on the bound socket; uvicorn is imported only by `serve`."""
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, announcing the URL once the app has started and is listening, and
        ending the open event streams when it stops (uvicorn would wait for their clients)."""

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            if config.loop_nice:  # before the app starts anything: see claracore.priority
                asyncio.get_running_loop().set_default_executor(prestarted_executor())
            await super().startup(sockets=sockets)
            if self.started:
                lower_this_thread(config.loop_nice)
                announce()

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            app.state.end_streams()
            await super().shutdown(sockets=sockets)

    server = Server(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            log_level=log_level,
            log_config=None,  # keep our basicConfig format for uvicorn's loggers too
            access_log=False,  # the app logs one line per request itself
            lifespan="on",
            timeout_graceful_shutdown=5,  # open streams must not hold Ctrl+C hostage
        )
    )
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises Ctrl+C after a clean shutdown
        server.run(sockets=[sock])
