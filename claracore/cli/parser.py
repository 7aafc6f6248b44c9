"""The command line's shape: every subcommand and its options, and `main`, which runs one.

`main` is also where a known problem becomes one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import math

from claracore import __version__
from claracore.cli.common import EXIT_ERROR, CliError, say, setup_logging
from claracore.cli.models import cmd_chat, cmd_models
from claracore.cli.monitor import cmd_logs, cmd_top
from claracore.cli.prepare import cmd_convert_embedding, cmd_doctor, cmd_scan, cmd_setup, cmd_system
from claracore.cli.pull import cmd_pull
from claracore.cli.serve import cmd_serve
from claracore.cli.worker import cmd_worker
from claracore.errors import ClaraCoreError


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number from 1 to 65535, got {text!r}")
    return port


def _gib(text: str) -> float:
    """A memory size in GiB for `worker --mem`: a number above 0 (6, 0.5)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a size in GiB above 0 (e.g. 6 or 0.5), got {text!r}")
    return value


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
    serve.add_argument(
        "--role",
        choices=("leader", "follower"),
        default="leader",
        help="replicas sharing one data directory: followers leave downloads to the leader",
    )
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="serve this machine's devices to servers over llama.cpp RPC")
    worker.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    worker.add_argument("--port", type=_port, default=50052, help="port to bind (default: 50052)")
    worker.add_argument(
        "--device", action="append", metavar="NAME", help="devices: CPU, CUDA0, ... (default: GPUs or CPU)"
    )
    worker.add_argument(
        "--mem",
        type=_gib,
        metavar="GB",
        help="report at most GB GiB of memory to servers, split evenly over the devices served "
        "(--mem 6 with two GPUs: 3 GiB each); default: what the devices have",
    )
    worker.add_argument("--threads", type=int, help="CPU threads (default: half the cores)")
    worker.add_argument("--log-level", choices=levels, default="info")
    worker.set_defaults(func=cmd_worker)

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

    doctor = sub.add_parser(
        "doctor", parents=[common], help="check that llama.cpp's build matches this machine's GPU"
    )
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

    pull = sub.add_parser("pull", help="download a model from the hub (or a URL) and add it to the config")
    pull.add_argument(
        "what", nargs="+", metavar="REPO [FILE] | URL | WORDS", help="what to download or search"
    )
    pull.add_argument("--search", action="store_true", help="list the hub's GGUF repositories matching WORDS")
    pull.add_argument("--limit", type=int, default=20, metavar="N", help="search results to show")
    pull.add_argument("--revision", metavar="REV", help="branch, tag or commit (default: main)")
    pull.add_argument("--mmproj", metavar="FILE", help="also download this vision projector of the repo")
    pull.add_argument("--name", metavar="NAME", help="the model's name in the config")
    pull.add_argument("--sha256", metavar="HEX", help="checksum a URL download must match")
    pull.add_argument("--dir", metavar="DIR", help="where to save (default: $CLARACORE_HOME/models)")
    pull.add_argument("--no-configure", action="store_true", help="download only; leave the config alone")
    pull.add_argument("--config", metavar="PATH", help="config.yaml to add the model to (default: as serve)")
    pull.add_argument("--log-level", choices=levels, default="warning")
    pull.set_defaults(func=cmd_pull)

    server = argparse.ArgumentParser(add_help=False, parents=[common])
    server.add_argument("--url", help="the server (default: the config's host and port)")
    server.add_argument("--api-key", metavar="KEY", help="the server's API key (default: the config's)")
    server.add_argument("--log-level", choices=levels, default="warning")

    logs = sub.add_parser("logs", parents=[server], help="show a running server's log (-f: follow it)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines until Ctrl+C")
    logs.add_argument(
        "-n", "--lines", type=int, default=50, metavar="N", help="how many past lines (default 50)"
    )
    logs.add_argument("--level", choices=levels, help="only lines at this level or above")
    logs.add_argument(
        "--source", metavar="S", help="only these sources, comma-separated (claracore, llama.cpp)"
    )
    logs.add_argument("--grep", metavar="TEXT", help="only lines containing TEXT (any case)")
    logs.set_defaults(func=cmd_logs)

    top = sub.add_parser("top", parents=[server], help="watch a running server's models, slots and tokens/s")
    top.add_argument("--interval", type=float, default=1.0, metavar="S", help="seconds between refreshes")
    top.add_argument("--once", action="store_true", help="print one screen and exit")
    top.set_defaults(func=cmd_top)

    convert = sub.add_parser("convert-embedding", help="turn a sentence-transformers BERT folder into GGUF")
    convert.add_argument("folder", metavar="DIR", help="holds model.safetensors, config.json, vocab.txt")
    convert.add_argument("--out", metavar="DIR", help="cache folder (default: DATA_DIR/converted)")
    convert.add_argument("--log-level", choices=levels, default="warning")
    convert.set_defaults(func=cmd_convert_embedding)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 a reported error)."""
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    try:
        status: int = args.func(args)
    except ClaraCoreError as exc:
        say(f"claracore: error: {exc.message}", err=True)
        return EXIT_ERROR
    except CliError as exc:
        say(f"claracore: error: {exc}", err=True)
        return EXIT_ERROR
    return status
