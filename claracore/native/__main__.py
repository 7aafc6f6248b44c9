"""`python -m claracore.native build --backend cuda`: build llama-cpp-python for a GPU backend.

Exit status 0 when the build is installed and verified, 2 with a one-paragraph reason
(a missing tool, a failed compile, a build that came out CPU-only) otherwise.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from claracore.native.build import (
    DEFAULT_VERSION,
    BuildError,
    Runner,
    check_toolchain,
    dry_run_lines,
    plan_build,
    run_build,
    subprocess_runner,
)
from claracore.native.presets import BACKENDS, load_presets

EXIT_ERROR = 2


def _say(text: str, *, err: bool = False) -> None:
    print(text, file=sys.stderr if err else sys.stdout, flush=True)  # noqa: T201


def installed_version() -> str:
    """Rebuild the llama-cpp-python already installed, so the Python API the engine uses stays."""
    try:
        return metadata.version("llama-cpp-python")
    except metadata.PackageNotFoundError:
        return DEFAULT_VERSION


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m claracore.native", description="Build llama-cpp-python for a GPU backend."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    build = sub.add_parser("build", help="build, install and verify a llama-cpp-python wheel")
    build.add_argument("--backend", required=True, choices=sorted(BACKENDS), help="CMake preset to build")
    wheels = Path.home() / ".cache" / "claracore" / "wheels"
    build.add_argument("--wheelhouse", type=Path, default=wheels, metavar="DIR",
                       help="where built wheels are cached (default: %(default)s)")  # fmt: skip
    build.add_argument("--llama-cpp-python", dest="version", metavar="VERSION",
                       help="version to build (default: the installed one)")  # fmt: skip
    build.add_argument("--source", type=Path, metavar="PATH",
                       help="a llama-cpp-python source tree or sdist to build, instead of "
                            "fetching the sdist")  # fmt: skip
    build.add_argument("--offline", action="store_true",
                       help="no package index: build --source with the installed scikit-build-core, "
                            "cmake and ninja")  # fmt: skip
    build.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override one of the preset's cache variables, e.g. "
                            "CMAKE_CUDA_ARCHITECTURES=90 to build for one GPU generation only")  # fmt: skip
    build.add_argument("--dry-run", action="store_true", help="print CMAKE_ARGS and the commands only")
    sub.add_parser("presets", help="list the presets and their CMAKE_ARGS")
    return parser


def main(argv: Sequence[str] | None = None, runner: Runner = subprocess_runner) -> int:
    args = build_parser().parse_args(argv)
    presets = load_presets()
    if args.command == "presets":
        from claracore.native.presets import cmake_args

        for name in BACKENDS:
            _say(f"{name:9} {cmake_args(presets[name])}")
        return 0
    parser = build_parser()
    overrides: dict[str, str] = {}
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not key.replace("_", "").isalnum():
            parser.error(f"--set wants KEY=VALUE with a CMake variable name, not {item!r}")
        overrides[key.strip()] = value
    if args.offline and args.source is None:
        parser.error("--offline needs --source: without an index there is nothing to fetch the sdist from")
    if args.source is not None and not args.source.exists():
        parser.error(f"--source {args.source} does not exist")
    try:
        plan = plan_build(
            presets[args.backend],
            args.version or installed_version(),
            args.wheelhouse,
            overrides=overrides,
            source=args.source,
            offline=args.offline,
        )
    except BuildError as exc:
        _say(f"error: {exc}", err=True)
        return EXIT_ERROR
    if args.dry_run:
        for line in dry_run_lines(plan):
            _say(line)
        return 0
    missing = check_toolchain(args.backend)
    if missing:
        _say(f"cannot build the {args.backend} backend:", err=True)
        for item in missing:
            _say(f"  - {item}", err=True)
        return EXIT_ERROR
    try:
        run_build(plan, runner, say=_say)
    except BuildError as exc:
        _say(f"error: {exc}", err=True)
        return EXIT_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
