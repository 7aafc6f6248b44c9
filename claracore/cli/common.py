"""What every command shares: terminal output, logging, the config it runs on, reported errors."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from claracore.config import Config
from claracore.manage.defaults import add_models_dir, resolve_config
from claracore.units import GIB, MIB

# The package's name rather than each module's, so log lines read as they did when the CLI was one file.
log = logging.getLogger("claracore.cli")
EXIT_ERROR = 2


class CliError(Exception):
    """A problem to report in one line (exit 2) that is not one of the engine's errors."""


def say(text: str = "", *, err: bool = False, end: str = "\n") -> None:
    """The CLI's only way to write to the terminal (design: no print outside the CLI)."""
    print(text, end=end, file=sys.stderr if err else sys.stdout, flush=True)  # noqa: T201


def setup_logging(level_name: str) -> None:
    """Compact log lines on stderr; llama.cpp's chatter stays at WARNING unless debugging."""
    level = getattr(logging, level_name.upper())
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("claracore.llama").setLevel(
        logging.DEBUG if level <= logging.DEBUG else logging.WARNING
    )


def command_config(args: argparse.Namespace) -> tuple[Config, str]:
    """The config of `--config` (or the search), plus the models of `--models-dir` (or `models_dir`)."""
    config, source = resolve_config(args.config, os.environ, Path.cwd())
    folder = args.models_dir or config.models_dir
    if folder:
        config = add_models_dir(config, folder)
    return config, source


def human_size(n: int) -> str:
    """GiB from one GiB up, else MiB: the unit a person compares model files and budgets in."""
    return f"{n / GIB:.1f} GiB" if n >= GIB else f"{n / MIB:.0f} MiB"
