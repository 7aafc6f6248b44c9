"""The `claracore` command (also `python -m claracore`): serve, models, chat, doctor, convert-embedding.

Each command resolves one config (see `claracore.defaults`), then uses the same Engine the
server and Python callers use. Known problems (a bad config, a missing model package, a port in
use) end with one line on stderr and exit status 2, never a traceback: the person reading it
needs the fix, not the stack.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from claracore import __version__
from claracore.config import Config, ModelSpec
from claracore.defaults import add_models_dir, data_dir, find_config, resolve_config
from claracore.engine import AsyncEngine, Engine
from claracore.errors import ClaraCoreError
from claracore.protocol import openai as p
from claracore.store import Store

log = logging.getLogger(__name__)
EXIT_ERROR = 2


class CliError(Exception):
    """A problem to report in one line (exit 2) that is not one of the engine's errors."""


# ------------------------------------------------------------------ shared plumbing


def _say(text: str = "", *, err: bool = False, end: str = "\n") -> None:
    """The CLI's only way to write to the terminal (design: no print outside the CLI)."""
    print(text, end=end, file=sys.stderr if err else sys.stdout, flush=True)  # noqa: T201


def _setup_logging(level_name: str) -> None:
    """Compact log lines on stderr; llama.cpp's chatter stays at WARNING unless debugging."""
    level = getattr(logging, level_name.upper())
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("claracore.llama").setLevel(
        logging.DEBUG if level <= logging.DEBUG else logging.WARNING
    )


def _config(args: argparse.Namespace) -> tuple[Config, str]:
    """The config of `--config` (or the search), plus the models of `--models-dir` (or `models_dir`)."""
    config, source = resolve_config(args.config, os.environ, Path.cwd())
    folder = args.models_dir or config.models_dir
    if folder:
        config = add_models_dir(config, folder)
    return config, source


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number from 1 to 65535, got {text!r}")
    return port


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


# ------------------------------------------------------------------ serve


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
    except OSError as exc:
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
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

    config, source = _config(args)
    update: dict[str, Any] = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    config = config.model_copy(update=update)
    sock = _bind(config.host, config.port)
    url = _url(config.host, config.port)
    names = ", ".join(_label(spec) for spec in config.models) or "(none)"

    def announce() -> None:
        _say(f"ClaraCore {__version__} serving at {url} (OpenAI API: {url}/v1); models: {names}")
        _say(f"config: {source}. Press Ctrl+C to stop.")

    # The file the management API edits: the one in use, or for the bundled default the data
    # directory's config.yaml, which the config search finds on the next start.
    config_file = find_config(args.config, os.environ, Path.cwd())
    if config_file is None:
        config_file = Path.cwd() / data_dir(os.environ) / "config.yaml"
    app = create_app(AsyncEngine(config), config_path=config_file, data_dir=Path.cwd() / data_dir(os.environ))
    app.state.hard_restart = functools.partial(_reexec, sock)
    _run(app, config, args.log_level, sock, announce)
    return 0


_LISTEN_FD = "CLARACORE_LISTEN_FD"


def _reexec(sock: socket.socket) -> None:
    """A hard restart: the same command line in a fresh process image (same pid, same port).

    The listening socket stays open across exec and its fd number travels in the environment,
    so the new process serves on it at once and the port is never free for anyone else.
    """
    logging.getLogger(__name__).warning("hard restart: re-executing %s", " ".join(sys.argv))
    sock.set_inheritable(True)
    env = {**os.environ, _LISTEN_FD: str(sock.fileno())}
    os.execve(sys.executable, [sys.executable, "-m", "claracore", *sys.argv[1:]], env)


def _label(spec: ModelSpec) -> str:
    return f"{spec.name} ({', '.join(spec.aliases)})" if spec.aliases else spec.name


def _run(app: Any, config: Config, log_level: str, sock: socket.socket, announce: Callable[[], None]) -> None:
    """Run uvicorn on the bound socket; uvicorn is imported only by `serve`."""
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, announcing the URL once the app has started and is listening."""

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                announce()

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


# ------------------------------------------------------------------ models


def _size(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def _memory(info: p.ModelInfo) -> str:
    """The pool's figure: resident when loaded, else what a load would budget for."""
    if info.memory is None:
        return "-"
    vram, ram = info.memory.vram_bytes, info.memory.ram_bytes
    return _size(vram + ram) + (f" ({_size(vram)} VRAM)" if vram else "")


def cmd_models(args: argparse.Namespace) -> int:
    """Print a table of the configured models without loading any of them."""
    config, source = _config(args)
    engine = AsyncEngine(config)  # not Engine: its start() would preload models
    try:
        listing = engine.models()
    finally:
        asyncio.run(engine.close())
    rows = [["NAME", "TYPE", "STATE", "MEMORY", "ALIASES", "FILE"]]
    for info, spec in zip(listing.data, config.models, strict=True):
        state = f"{info.state}: {info.error}" if info.error else info.state
        missing = "" if Path(spec.model).exists() else " (missing)"
        rows.append(
            [info.id, info.type, state, _memory(info), ", ".join(info.aliases) or "-",
             spec.model + missing]
        )  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        _say("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1])
    _say(f"{len(config.models)} model(s) from {source}", err=True)
    return 0


# ------------------------------------------------------------------ chat


def _reply(engine: Engine, args: argparse.Namespace, history: list[dict[str, str]]) -> str:
    """Stream one answer to stdout as it is generated; Ctrl+C stops it (what came stays)."""
    sampling = {
        k: v for k, v in (("temperature", args.temperature), ("max_tokens", args.max_tokens)) if v is not None
    }
    stream = engine.chat(model=args.model, messages=history, stream=True, **sampling)
    if isinstance(stream, p.ChatCompletion):  # cannot happen with stream=True; narrows the type
        return stream.choices[0].message.content or ""
    parts: list[str] = []
    try:
        for chunk in stream:
            text = chunk.choices[0].delta.content if chunk.choices else None
            if text:
                parts.append(text)
                _say(text, end="")
    except KeyboardInterrupt:
        _say(" [stopped]", end="")
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()  # cancels the generation in the engine at once when it stopped early
    _say()
    return "".join(parts)


def cmd_chat(args: argparse.Namespace) -> int:
    """A multi-turn terminal chat with one model, in-process; /reset, /exit, EOF."""
    config, _ = _config(args)
    interactive = sys.stdin.isatty()
    if interactive:
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401  (line editing and history for input())
    system = [{"role": "system", "content": args.system}] if args.system else []
    with Engine(config) as engine:
        name = engine.aio.model(args.model).id  # ModelNotFoundError lists what exists
        _say(f"loading {name}...", err=True)
        engine.load(name)
        _say(f"chatting with {name}: /reset clears the conversation, /exit (or Ctrl+D) quits", err=True)
        history = list(system)
        while True:
            try:
                line = input(">>> " if interactive else "").strip()
            except (EOFError, KeyboardInterrupt):
                break
            if line in ("/exit", "/quit", "/bye"):
                break
            if line == "/reset":
                history = list(system)
                _say("(conversation cleared)", err=True)
                continue
            if not line:
                continue
            history.append({"role": "user", "content": line})
            try:
                answer = _reply(engine, args, history)
            except ClaraCoreError as exc:  # e.g. the conversation outgrew the context
                history.pop()
                _say(f"error: {exc.message} (/reset starts over)", err=True)
                continue
            history.append({"role": "assistant", "content": answer})
    return 0


# ------------------------------------------------------------------ doctor


def cmd_doctor(args: argparse.Namespace) -> int:
    """Report the llama.cpp build, the GPUs and whether offload works; always exit 0."""
    from claracore.doctor import diagnose, render

    for line in render(diagnose()):
        _say(line)
    return 0


def cmd_system(args: argparse.Namespace) -> int:
    """Print what the hardware probes found (what the planner and /api/system/detection use)."""
    import json

    from claracore.hardware_probe import detect, render

    found = detect()
    if args.json:
        _say(json.dumps({"specs": found.specs_json(), "detection": found.detection_json()}, indent=2))
    else:
        for line in render(found):
            _say(line)
    return 0


def cmd_convert_embedding(args: argparse.Namespace) -> int:
    """Convert a sentence-transformers BERT folder to GGUF (cached) and print the file's path."""
    from claracore.convert import cached_conversion
    from claracore.defaults import data_dir

    cache = Path(args.out) if args.out else data_dir(os.environ) / "converted"
    try:
        path = cached_conversion(Path(args.folder), cache)
    except (ValueError, OSError) as exc:
        raise CliError(str(exc)) from exc
    _say(str(path))
    return 0


# ------------------------------------------------------------------ scan


def _scan_store() -> Store | None:
    """The data directory's store, so a rescan reads only changed files; None when unavailable."""
    import sqlite3

    from claracore.defaults import data_dir

    try:
        return Store(data_dir(os.environ) / "claracore.db")
    except (OSError, sqlite3.Error) as exc:
        log.warning("scanning without the cache: %s", exc)
        return None


def cmd_scan(args: argparse.Namespace) -> int:
    """List the models in DIR (and why other model-like files were skipped)."""
    from claracore.scanner import scan_folder

    folder = Path(args.folder).expanduser().resolve()
    if not folder.is_dir():
        raise CliError(f"{folder} is not a folder" if folder.exists() else f"{folder} does not exist")

    def progress(done: int, total: int, _path: str) -> None:
        if done == total or done % 100 == 0:
            _say(f"\rscanning {folder}: {done}/{total} files", err=True, end="\n" if done == total else "")

    store = None if args.no_cache else _scan_store()
    try:
        result = scan_folder(folder, recursive=args.recursive, store=store, progress=progress)
    except OSError as exc:
        raise CliError(f"cannot list {folder}: {exc.strerror or exc}") from None
    finally:
        if store is not None:
            store.close()

    def size(n: int) -> str:
        return _size(n) if n >= 2**20 else f"{n / 1024:.0f} KiB"

    rows = [(m.name, m.kind or "", size(m.size), m.path) for m in result.models]
    if rows:
        widths = [max(len(r[i]) for r in [("NAME", "TYPE", "SIZE", "FILE"), *rows]) for i in range(3)]
        for row in [("NAME", "TYPE", "SIZE", "FILE"), *rows]:
            _say("  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)) + "  " + row[3])
    _say(f"{len(result.models)} model(s) in {folder}")
    if result.skipped:
        _say(f"skipped {len(result.skipped)}:")
        for skip in result.skipped:
            _say(f"  {skip.path}: {skip.reason}")
    return 0


# ------------------------------------------------------------------ setup


def cmd_setup(args: argparse.Namespace) -> int:
    """Scan (DIRs, else the tracked folders), detect the hardware, plan and write config.yaml.

    DIRs become tracked folders, so the server's regenerate-from-db plans the same models later.
    Hand edits of models already in the file are kept, as the server's regeneration does.
    """
    from claracore import config_edit as edit
    from claracore.config import load_config, save_config
    from claracore.defaults import find_config
    from claracore.hardware import system_detection
    from claracore.planner import GENERATED, Hardware, PlanOptions, plan
    from claracore.scanner import scan_folder
    from claracore.store import utc_now

    raw = {
        "forceBackend": args.force_backend,
        "forceVRAM": args.force_vram,
        "forceRAM": args.force_ram,
        "throughputFirst": args.throughput_first or None,
        "minContext": args.min_context,
        "preferredContext": args.prefer_context,
    }
    options = PlanOptions.from_api({k: v for k, v in raw.items() if v is not None})
    path = find_config(args.config, os.environ, Path.cwd()) or data_dir(os.environ) / "config.yaml"
    existing = load_config(path) if path.exists() else None
    folders = [Path(d).expanduser().resolve() for d in args.dirs]
    for folder in folders:
        if not folder.is_dir():
            raise CliError(f"{folder} is not a folder" if folder.exists() else f"{folder} does not exist")
    store = Store(data_dir(os.environ) / "claracore.db")
    try:
        for folder in folders:
            if store.folder(str(folder)) is None:
                store.add_folder(str(folder), recursive=True)
        tracked = [f for f in store.folders() if f.enabled]
        if not tracked:
            raise CliError("no model folders: name one (claracore setup DIR) or track one in the server")
        for entry in tracked:
            if not os.path.isdir(entry.path):
                _say(f"skipping {entry.path}: it no longer exists", err=True)
                continue

            def scanning(done: int, total: int, _path: str, where: str = entry.path) -> None:
                _say(f"\rscanning {where}: {done}/{total} files", err=True, end="\n" if done == total else "")

            result = scan_folder(entry.path, recursive=entry.recursive, store=store, progress=scanning)
            store.set_folder_scan(entry.path, len(result.models), utc_now())
        _say("detecting hardware", err=True)
        hardware = Hardware.from_detection(system_detection())

        def planning(done: int, total: int, _path: str) -> None:
            _say(f"\rplanning: {done}/{total} models", err=True, end="\n" if done == total else "")

        files = [f for f in store.files() if os.path.exists(f.path)]
        generated = store.get_setting(GENERATED, {}) or {}
        result_plan = plan(
            files, hardware, options, existing=existing, generated=generated, progress=planning
        )
        config = edit.validated(
            edit.as_data(result_plan.config), source=str(path), base_dir=path.absolute().parent
        )
        save_config(config, path)
        store.set_setting(GENERATED, result_plan.record())
    finally:
        store.close()
    vram, ram = result_plan.vram_budget / 2**30, result_plan.ram_budget / 2**30
    _say(f"backend {result_plan.backend}, budget {vram:.1f} GiB VRAM + {ram:.1f} GiB RAM")
    for m in result_plan.models:
        if m.dropped:
            _say(f"  {m.name}: dropped: {m.dropped}")
        elif m.spec is not None:
            s = m.spec
            cost = f", ~{_size(m.estimate.total)}" if m.estimate is not None else ""
            _say(
                f"  {s.name} ({m.type}): context {s.context_length or 'auto'}, gpu_layers {s.gpu_layers}, "
                f"kv {s.cache_type_k}, parallel {s.parallel}{cost}"
            )
    _say(f"wrote {path} ({len(config.models)} model(s))")
    return 0


# ------------------------------------------------------------------ parser and main


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; every subcommand stores its handler in `func`."""
    parser = argparse.ArgumentParser(prog="claracore", description="Serve local AI models from one process.")
    parser.add_argument("--version", action="version", version=f"claracore {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", help="config.yaml to use (default: search, then bundled)")
    common.add_argument("--models-dir", metavar="DIR", help="also serve every *.gguf in DIR")
    levels = ["debug", "info", "warning", "error", "critical"]
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", parents=[common], help="run the HTTP server")
    serve.add_argument("--host", help="address to bind (default: config, else 127.0.0.1)")
    serve.add_argument("--port", type=_port, help="port to bind (default: config, else 5800)")
    serve.add_argument("--log-level", choices=levels, default="info")
    serve.set_defaults(func=cmd_serve)

    models = sub.add_parser("models", parents=[common], help="list the configured models")
    models.add_argument("--log-level", choices=levels, default="warning")
    models.set_defaults(func=cmd_models)

    chat = sub.add_parser("chat", parents=[common], help="chat with a model in the terminal")
    chat.add_argument("model", metavar="MODEL", help="model name or alias")
    chat.add_argument("--system", metavar="TEXT", help="system prompt")
    chat.add_argument("--temperature", type=float, metavar="T")
    chat.add_argument("--max-tokens", type=int, metavar="N")
    chat.add_argument("--log-level", choices=levels, default="warning")
    chat.set_defaults(func=cmd_chat)

    doctor = sub.add_parser("doctor", help="check that llama.cpp's build matches this machine's GPU")
    doctor.add_argument("--log-level", choices=levels, default="warning")
    doctor.set_defaults(func=cmd_doctor)

    system = sub.add_parser("system", help="show the detected OS, CPU, RAM, GPUs and recommended backend")
    system.add_argument("--json", action="store_true", help="print the /api/system specs and detection JSON")
    system.add_argument("--log-level", choices=levels, default="warning")
    system.set_defaults(func=cmd_system)

    scan = sub.add_parser("scan", help="list the models in a folder (GGUF, Whisper, Piper)")
    scan.add_argument("folder", metavar="DIR", help="the folder to scan")
    scan.add_argument("--recursive", "-r", action="store_true", help="also scan sub-folders")
    scan.add_argument("--no-cache", action="store_true", help="read every header, not the data dir's cache")
    scan.add_argument("--log-level", choices=levels, default="warning")
    scan.set_defaults(func=cmd_scan)

    setup = sub.add_parser("setup", help="scan model folders, detect the hardware and write a fitting config")
    setup.add_argument(
        "dirs", nargs="*", metavar="DIR", help="model folders to track (default: those tracked)"
    )
    setup.add_argument(
        "--config", metavar="PATH", help="config.yaml to write (default: search, then data dir)"
    )
    setup.add_argument(
        "--force-vram", type=float, metavar="GB", help="plan for this much VRAM, not the detected"
    )
    setup.add_argument(
        "--force-ram", type=float, metavar="GB", help="plan for this much RAM, not the detected"
    )
    setup.add_argument("--force-backend", choices=["cpu", "cuda", "rocm", "vulkan", "metal"])
    setup.add_argument("--prefer-context", type=int, metavar="N", help="preferred context length (tokens)")
    setup.add_argument("--min-context", type=int, metavar="N", help="drop models that cannot reach N tokens")
    setup.add_argument("--throughput-first", action="store_true", help="more parallel slots before context")
    setup.add_argument("--log-level", choices=levels, default="warning")
    setup.set_defaults(func=cmd_setup)

    convert = sub.add_parser("convert-embedding", help="turn a sentence-transformers BERT folder into GGUF")
    convert.add_argument("folder", metavar="DIR", help="holds model.safetensors, config.json, vocab.txt")
    convert.add_argument("--out", metavar="DIR", help="cache folder (default: DATA_DIR/converted)")
    convert.add_argument("--log-level", choices=levels, default="warning")
    convert.set_defaults(func=cmd_convert_embedding)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 a reported error)."""
    args = build_parser().parse_args(argv)
    _setup_logging(args.log_level)
    try:
        status: int = args.func(args)
    except ClaraCoreError as exc:
        _say(f"claracore: error: {exc.message}", err=True)
        return EXIT_ERROR
    except CliError as exc:
        _say(f"claracore: error: {exc}", err=True)
        return EXIT_ERROR
    return status
