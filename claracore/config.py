"""The configuration file (config.yaml): pydantic models, load, save, and readable errors.

People edit config.yaml by hand, so every mistake comes back as one ConfigError that names the
file and each bad key in dotted form (``models.1.temperature``) instead of a pydantic traceback.
Unknown keys are errors, because a misspelt key that is silently ignored is a setting that
silently does nothing.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import unicodedata
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from claracore import yamldoc
from claracore.errors import ConfigError
from claracore.fsutil import atomic_write, backup
from claracore.inputs import find_problem, path_problem

ModelType = Literal["llm", "embedding", "reranker", "stt", "tts"]
Backend = Literal["auto", "cpu", "cuda", "rocm", "vulkan", "metal"]
CacheType = Literal["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"]


def _plain_text(value: str) -> str:
    """Names, aliases and keys appear in URLs, headers and logs: no control characters."""
    if any(unicodedata.category(c) == "Cc" for c in value):
        raise ValueError("must not contain control characters (such as NUL or a line break)")
    return value


def _host(value: str) -> str:
    """A host the server can bind: an IP address or a DNS name (labels of letters, digits, -)."""
    try:
        ipaddress.ip_address(value.strip("[]"))
        return value
    except ValueError:
        pass
    labels = value.rstrip(".").split(".")
    if not 0 < len(value) <= 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError("expected an IP address or a host name (letters, digits, '-' and '.')")
    return value


_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1), AfterValidator(_plain_text)]
PlainText = Annotated[str, AfterValidator(_plain_text)]
Host = Annotated[str, AfterValidator(_host)]
#: An llama.cpp RPC worker (`claracore worker`): "host:port", "[v6 address]:port".
_ENDPOINT = r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):[0-9]{1,5}$"
Endpoint = Annotated[str, StringConstraints(strip_whitespace=True, pattern=_ENDPOINT)]


# Fields that take one of several shapes validate through one function each, so a bad value gets
# one clear message instead of pydantic's one error per member of the union.
def _gb_or_auto(value: object) -> float | Literal["auto"]:
    if value == "auto":
        return "auto"
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1 << 20:
        return float(value)
    raise ValueError("expected a number of GB (0 to 1048576) or 'auto'")


def _bool_or_auto(value: object) -> bool | Literal["auto"]:
    if isinstance(value, bool):
        return value
    if value == "auto":
        return "auto"
    raise ValueError("expected true, false or 'auto'")


def _cors(value: object) -> bool | list[str]:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):  # one origin written without the list brackets
        value = [value]
    if isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value):
        return [v.strip() for v in value]
    raise ValueError("expected true, false or a list of allowed origins")


GbOrAuto = Annotated[float | Literal["auto"], PlainValidator(_gb_or_auto)]
BoolOrAuto = Annotated[bool | Literal["auto"], PlainValidator(_bool_or_auto)]
Cors = Annotated[bool | list[str], PlainValidator(_cors)]


def _resolve_path(value: str | None, info: ValidationInfo) -> str | None:
    """Expand ``~``; a relative path means "next to config.yaml" so a config folder moves whole."""
    if value is None:
        return None
    problem = path_problem(value)
    if problem:
        raise ValueError(f"the path {problem}")
    path = Path(value).expanduser()
    base_dir = (info.context or {}).get("base_dir")
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    return os.path.normpath(path)


class LoraAdapter(BaseModel):
    """One LoRA adapter of a model: a GGUF adapter file, applied at `scale`."""

    model_config = ConfigDict(extra="forbid")

    path: NonEmpty
    scale: float = Field(default=1.0, ge=-100, le=100)

    @field_validator("path")
    @classmethod
    def _resolve(cls, value: str, info: ValidationInfo) -> str | None:
        return _resolve_path(value, info)


class ModelSpec(BaseModel):
    """One served model. None on a tuning or sampling field means "the runtime's default"."""

    model_config = ConfigDict(extra="forbid")

    name: NonEmpty
    backend: Backend = "auto"
    model: NonEmpty  # a file or folder
    type: ModelType | None = None  # None: the pool infers it from the file
    embedding: bool = False  # the spec's older way to say type: embedding
    aliases: list[NonEmpty] = Field(default_factory=list)
    mmproj: str | None = None
    context_length: int | None = Field(default=None, ge=16, le=1 << 24)  # past any trained context
    gpu_layers: int = Field(default=0, ge=-1, le=65536)  # -1: every layer
    batch_size: int = Field(default=512, ge=1, le=1 << 20)
    threads: int | None = Field(default=None, ge=1, le=4096)  # None: detect
    parallel: int = Field(default=4, ge=1, le=64)  # sequences decoded together
    # Host memory for finished conversations' KV state (runtime/prompt_cache.py). None: up to
    # 1024 MiB of what the RAM budget has free at load, given back before any model is evicted;
    # 0: off; N: exactly N MiB, reserved like the weights.
    prompt_cache_mb: int | None = Field(default=None, ge=0, le=1 << 20)
    cache_type_k: CacheType = "f16"
    cache_type_v: CacheType = "f16"
    flash_attn: BoolOrAuto = "auto"
    use_mmap: bool = True
    chat_template: str | None = None
    chat_template_kwargs: dict[str, Any] = Field(
        default_factory=dict
    )  # template variables; requests add theirs
    reasoning_format: Literal["none", "auto", "deepseek"] = "auto"  # "none" keeps reasoning in content
    lora: list[LoraAdapter] = Field(default_factory=list)  # adapters loaded with the model
    speculative: Literal["ngram"] | None = None  # draft-free n-gram lookup (a draft_model needs none)
    draft_max: int = Field(default=8, ge=1, le=64)  # tokens drafted per sequence and step
    draft_model: str | None = None  # a small model with the same vocabulary that drafts for this one
    max_tokens: int | None = Field(default=None, ge=1, le=1 << 24)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=0, le=1 << 20)
    min_p: float | None = Field(default=None, ge=0, le=1)
    repeat_penalty: float | None = Field(default=None, gt=0, le=100)
    ttl: float | None = Field(default=None, ge=0, le=10 * 365 * 86400)  # idle seconds; None: never
    pinned: bool = False
    preload: bool = False
    # RPC workers whose devices take this model's offloaded layers beside local GPUs; None: the
    # global `workers`, []: none (docs/scaling.md).
    rpc: list[Endpoint] | None = Field(default=None, max_length=16)  # GGML_RPC_MAX_SERVERS

    @field_validator("backend", mode="before")
    @classmethod
    def _lower_backend(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("aliases", mode="before")
    @classmethod
    def _empty_aliases(cls, value: object) -> object:
        return [] if value is None else value  # "aliases:" with nothing after it

    @field_validator("model", "mmproj", "draft_model")
    @classmethod
    def _resolve(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _resolve_path(value, info)

    @model_validator(mode="after")
    def _embedding_agrees_with_type(self) -> ModelSpec:
        if self.embedding and self.type not in (None, "embedding"):
            raise ValueError(f"embedding: true contradicts type '{self.type}'")
        return self


class MemoryBudget(BaseModel):
    """What the pool may fill; "auto" means the detected total minus `margin_gb`."""

    model_config = ConfigDict(extra="forbid")

    vram_gb: GbOrAuto = "auto"
    ram_gb: GbOrAuto = "auto"
    margin_gb: float = Field(default=1.0, ge=0, le=1 << 20)


class MediaLimits(BaseModel):
    """Images and audio in chat requests (claracore.serving.media)."""

    model_config = ConfigDict(extra="forbid")

    remote_urls: bool = False  # fetch http(s) image URLs; off: data URLs only
    max_mb: float = Field(default=10.0, gt=0, le=1 << 12)  # largest image or audio clip (as base64 in a
    # JSON body it also counts against max_body_mb, 16 by default)
    fetch_timeout: float = Field(default=10.0, gt=0, le=600)  # seconds for a whole remote fetch


class Monitoring(BaseModel):
    """What the server keeps about itself and how often it says so (GET /api/events, /api/activity)."""

    model_config = ConfigDict(extra="forbid")

    activity_rows: int = Field(default=10_000, ge=0, le=10_000_000)  # requests kept in the store
    log_lines: int = Field(default=20_000, ge=0, le=10_000_000)  # log lines kept in the store
    retention_days: float = Field(default=30, ge=0, le=36_500)  # older rows go; 0: only the caps
    metrics_interval: float = Field(default=5.0, ge=0, le=3600)  # seconds between "metrics" events; 0: none
    heartbeat: float = Field(default=15.0, ge=0.05, le=3600)  # seconds of quiet before an SSE comment


class Config(BaseModel):
    """The whole of config.yaml. Model names and aliases are unique across all models."""

    model_config = ConfigDict(extra="forbid")

    host: Host = "127.0.0.1"
    port: int = Field(default=5800, ge=1, le=65535)
    cors: Cors = False
    api_key: PlainText = ""
    models_dir: str | None = None
    max_upload_mb: float = Field(default=25.0, gt=0, le=1 << 20)  # largest audio upload (OpenAI's limit)
    max_body_mb: float = Field(default=16.0, gt=0, le=1 << 20)  # largest other request body (JSON, YAML)
    loop_nice: int = Field(default=0, ge=0, le=19)  # the HTTP event loop's nice steps below model compute
    memory: MemoryBudget = Field(default_factory=MemoryBudget)
    monitoring: Monitoring = Field(default_factory=Monitoring)
    media: MediaLimits = Field(default_factory=MediaLimits)
    workers: list[Endpoint] = Field(default_factory=list, max_length=16)  # every model's default `rpc`
    models: list[ModelSpec] = Field(default_factory=list)

    @field_validator("models", "memory", "monitoring", "media", mode="before")
    @classmethod
    def _empty_section(cls, value: object, info: ValidationInfo) -> object:
        """A key written with nothing after it (``models:``) means the empty default."""
        if value is None:
            return [] if info.field_name == "models" else {}
        return value

    @field_validator("models_dir")
    @classmethod
    def _resolve(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _resolve_path(value, info)

    @field_validator("models")
    @classmethod
    def _names_unique(cls, models: list[ModelSpec]) -> list[ModelSpec]:
        """A request names a model by name or alias, so each must select exactly one model."""
        owner: dict[str, str] = {}
        clashes: list[str] = []
        for i, spec in enumerate(models):
            for kind, key in [("name", spec.name), *(("alias", a) for a in spec.aliases)]:
                where = f"{kind} of models.{i} ('{spec.name}')"
                if key in owner:
                    clashes.append(f"'{key}' is both the {owner[key]} and the {where}")
                else:
                    owner[key] = where
        if clashes:
            raise ValueError("; ".join(clashes))
        return models

    def find_model(self, name_or_alias: str) -> ModelSpec | None:
        """The model with this name or alias (exact, case-sensitive), or None."""
        for spec in self.models:
            if spec.name == name_or_alias or name_or_alias in spec.aliases:
                return spec
        return None

    def names(self) -> list[str]:
        """Model names in config order (aliases not included)."""
        return [spec.name for spec in self.models]


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate a config file; an empty file is an empty config.

    Relative `model`, `mmproj` and `models_dir` paths are resolved against the file's folder.
    Raises ConfigError when the file is missing or unreadable, is not valid YAML, or is invalid.
    """
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeError) as exc:
        why = f"cannot read: {getattr(exc, 'strerror', None) or exc}"
        raise ConfigError(f"{file}: {why}", path=str(file), errors=[{"path": "", "message": why}]) from exc
    return parse_config(text, source=str(file), base_dir=file.absolute().parent)


def parse_config(
    data: dict[str, Any] | str, *, source: str = "<dict>", base_dir: Path | None = None
) -> Config:
    """Validate a mapping or YAML text; `source` names it in errors, `base_dir` anchors paths.

    Without `base_dir`, relative paths stay relative (``~`` is still expanded). Raises ConfigError.
    """
    raw = _parse_yaml(data, source) if isinstance(data, str) else data
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        why = f"the top level must be a mapping of keys, not {type(raw).__name__}"
        raise ConfigError(f"{source}: {why}", path=source, errors=[{"path": "", "message": why}])
    found = find_problem(raw)  # lone surrogates, absurd nesting: the rules every way in applies
    if found is not None:
        key, why = found
        label = key or "the configuration"
        raise ConfigError(f"{source}: {label}: {why}", path=source, errors=[{"path": key, "message": why}])
    try:
        return Config.model_validate(raw, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise _config_error(exc, source, raw) from exc


def dump_config(config: Config) -> str:
    """YAML of `config` without default values, keys in declaration order, so files stay small."""
    return yamldoc.dump(config.model_dump(mode="json", exclude_defaults=True))


def save_config(config: Config, path: str | os.PathLike[str], *, keep_backups: int = 10) -> None:
    """Write `config` atomically, first copying the old file to `.backups/` (newest N kept).

    An existing valid file is edited in place rather than rewritten: only the keys whose value
    changed are written, so comments, order and the way paths were written (relative) survive.
    """
    file = Path(path)
    text = _edited(config, file)  # before the backup, so a failure here leaves no stray copy
    if keep_backups > 0:
        backup(file, keep=keep_backups)
    atomic_write(file, text)


def _edited(config: Config, file: Path) -> str:
    given = config.model_dump(mode="json", exclude_defaults=True)
    try:
        current = file.read_text(encoding="utf-8")
        old = parse_config(current, source=str(file), base_dir=file.absolute().parent)
    except (OSError, UnicodeError, ConfigError):
        return yamldoc.dump(given)  # nothing (valid) to keep: write it whole
    text = yamldoc.edited(current, old.model_dump(mode="json"), config.model_dump(mode="json"), given)
    return text if text is not None else yamldoc.dump(given)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key written twice in one mapping; PyYAML keeps the last."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[object] = set()
    for key_node, _ in node.value:
        # Merge keys (<<) may legitimately be overridden, so only explicit scalar keys count.
        if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
            key = loader.construct_object(key_node)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{key}'", key_node.start_mark
                )
            seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _parse_yaml(text: str, source: str) -> object:
    try:
        return yaml.load(text, Loader=_StrictLoader)  # safe: _StrictLoader is a SafeLoader
    except RecursionError:
        why = "invalid YAML: nested too deeply"
        raise ConfigError(f"{source}: {why}", path=source, errors=[{"path": "", "message": why}]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        why = f"invalid YAML: {where}{getattr(exc, 'problem', None) or exc}"
        raise ConfigError(f"{source}: {why}", path=source, errors=[{"path": "", "message": why}]) from exc


# Which model an unknown key was found in, by its parent path without list indexes.
_SECTIONS: dict[tuple[str, ...], type[BaseModel]] = {
    (): Config,
    ("memory",): MemoryBudget,
    ("monitoring",): Monitoring,
    ("models",): ModelSpec,
}


def _config_error(exc: ValidationError, source: str, data: dict[str, Any]) -> ConfigError:
    errors: list[dict[str, str]] = []
    lines: list[str] = []
    for err in exc.errors():
        loc = err["loc"]
        message = _message(err)
        errors.append({"path": ".".join(map(str, loc)), "message": message})
        label = _label(loc, data)
        lines.append(f"{source}: {label}: {message}" if label else f"{source}: {message}")
    return ConfigError("\n".join(lines), path=source, errors=errors)


def _message(err: Any) -> str:
    """Pydantic's message in a config file's words, with the offending value when it is short."""
    kind, loc = err["type"], err["loc"]
    if kind == "extra_forbidden":
        section = _SECTIONS.get(tuple(p for p in loc[:-1] if isinstance(p, str)))
        close = difflib.get_close_matches(str(loc[-1]), list(section.model_fields), n=1) if section else []
        return "unknown key" + (f" (did you mean '{close[0]}'?)" if close else "")
    if kind == "missing":
        return "required key is missing"
    message = str(err["msg"]).removeprefix("Value error, ")
    value = err.get("input")
    if isinstance(value, (str, int, float, bool)) and len(repr(value)) <= 60:
        message += f" (got {value!r})"
    return message


def _label(loc: tuple[int | str, ...], data: dict[str, Any]) -> str:
    """The dotted path, with the model's name added after ``models.N`` when the entry has one."""
    parts = [str(p) for p in loc]
    if len(loc) >= 2 and loc[0] == "models" and isinstance(loc[1], int):
        entries = data.get("models")
        entry = entries[loc[1]] if isinstance(entries, list) and loc[1] < len(entries) else None
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            parts[1] += f" (name '{entry['name']}')"
    return ".".join(parts)
