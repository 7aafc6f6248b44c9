"""The config file the management API and `claracore setup` write: one object that owns it.

`ConfigFile` knows where the file is (or that there is none), reads it (falling back to the
config the server runs while the file does not exist yet, the bundled default's case), lets one
writer at a time read-modify-write it, validates every write through `parse_config`, and saves
atomically with a timestamped backup. Callers never touch the path, the lock or the YAML.

Every method blocks on file I/O (and on the lock while another edit runs), so async callers run
them in a worker thread; the lock is a thread lock for that reason (plus a lock file against
other processes: replicas share the file), and it also serialises the setup workflow's
plan-and-write against hand edits.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

import yaml

from claracore.config import Config, dump_config, load_config, save_config
from claracore.errors import ConfigError, ConflictError
from claracore.events import EventBus
from claracore.fsutil import atomic_write, backup, remove_stale_temps
from claracore.manage import config_edit as edit
from claracore.manage.shared_lock import SharedLock

T = TypeVar("T")

#: What GET /api/config shows instead of a set API key; POSTed back, it keeps the current key.
MASK = "********"
_API_KEY_LINE = re.compile(r"^api_key[ \t]*:.*$", re.MULTILINE)

#: An edit: (current config, source name for errors, folder relative paths start from) -> (new, result).
Change = Callable[[Config, str, Path | None], tuple[Config, T]]


class NoConfigFileError(ConflictError):
    """The server was started without a config file, so there is nothing to save edits to."""

    code = "NO_CONFIG_FILE"

    def __init__(self) -> None:
        super().__init__(
            "this server runs without a config file, so the configuration cannot be changed; "
            "start it with `claracore serve --config FILE`"
        )


class ConfigFile:
    """One config file: its path (None: edits are refused), its lock, reads, validated atomic writes.

    `running` returns the config in use, which reads fall back to while the file does not exist.
    With `events`, every write is published as a "config" event (`action: saved`).
    """

    def __init__(
        self, path: Path | None, running: Callable[[], Config] = Config, events: EventBus | None = None
    ) -> None:
        self.path = Path(path) if path is not None else None
        self._running = running
        self._events = events
        # Re-entrant (an edit inside `locked()` takes it again), and held against other processes
        # too: replicas behind a proxy edit the same file.
        self._lock = SharedLock(self.path)
        if self.path is not None:
            # A write killed half-way (kill -9) left its temp file. Under the lock: another
            # replica's write in progress has a temp file too, and it is not stale.
            with suppress(OSError), self._lock:
                remove_stale_temps(self.path)

    def _saved(self, what: str) -> None:
        if self._events is not None:
            self._events.publish(
                "config", {"action": "saved", "path": str(self.path), "what": what, "needsRestart": True}
            )

    @property
    def base_dir(self) -> Path | None:
        """The folder relative model paths in the file are resolved against."""
        return self.path.absolute().parent if self.path is not None else None

    @property
    def source(self) -> str:
        """How errors name the file."""
        return str(self.path) if self.path is not None else "<running config>"

    def writable(self) -> Path:
        """The file to write; NoConfigFileError (409) when there is none."""
        if self.path is None:
            raise NoConfigFileError()
        return self.path

    def current(self) -> Config:
        """The config edits start from: the file when it exists, else the one running.

        Raises ConfigError (naming the file and key) when the file exists but is invalid.
        """
        if self.path is not None and self.path.exists():
            return load_config(self.path)
        return self._running()

    def current_or_running(self) -> Config:
        """`current()`, or the running config when the file is invalid (never raises)."""
        try:
            return self.current()
        except ConfigError:
            return self._running()

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the write lock across several steps (the setup's read, plan and save)."""
        with self._lock:
            yield

    # ------------------------------------------------------------ reading

    def show(self) -> str:
        """The YAML of the file (comments kept) or of the running config, with the API key masked.

        A file that does not validate is still shown, so that it can be fixed.
        """
        path = self.path
        if path is None or not path.exists():
            config = self._running()
            if config.api_key:
                config = config.model_copy(update={"api_key": MASK})
            return dump_config(config)
        text = path.read_text(encoding="utf-8")
        try:
            key = load_config(path).api_key
        except ConfigError:
            key = ""
        masked = _API_KEY_LINE.sub(f'api_key: "{MASK}"', text)
        if key and key in masked:  # the key is also written somewhere the line rule misses
            return dump_config(load_config(path).model_copy(update={"api_key": MASK}))
        return masked

    def validate(self) -> dict[str, Any]:
        """GET /api/config/validate: errors with key paths, or warnings about the files it names."""
        try:
            config = self.current()
        except ConfigError as exc:
            errors = [f"{e['path']}: {e['message']}" if e["path"] else e["message"] for e in exc.errors]
            return {"valid": False, "errors": errors or [exc.message], "warnings": []}
        return edit.validation_report(config)

    def validate_models(self) -> dict[str, Any]:
        """Which configured model files are missing, unreadable, or not a model they can load."""
        models = [
            {"name": s.name, "path": s.model, **edit.check_model_file(s.model)} for s in self.current().models
        ]
        missing = [m["name"] for m in models if not m["exists"]]
        unreadable = [m["name"] for m in models if m["exists"] and not m["valid"]]
        return {
            "valid": not missing and not unreadable,
            "total": len(models),
            "validCount": len(models) - len(missing) - len(unreadable),
            "missing": missing,
            "unreadable": unreadable,
            "models": models,
        }

    # ------------------------------------------------------------ writing

    def validated(self, data: Mapping[str, Any] | str) -> Config:
        """`data` (a mapping or YAML text) as a Config, relative paths from the file's folder.

        Raises ConfigError naming the file and every bad key; nothing is written.
        """
        return edit.validated(data, source=self.source, base_dir=self.base_dir)

    def _before(self) -> Config | None:
        """The config a write replaces: the file (None when it is invalid), else the one running."""
        try:
            return self.current()
        except ConfigError:
            return None

    def save(self, config: Config, what: str = "saved") -> None:
        """Write `config` atomically, after a timestamped backup of the old file."""
        path = self.writable()
        with self._lock:
            edit.check_new_files(self._before(), config, source=self.source)
            save_config(config, path)
        self._saved(what)

    def replace(self, data: Mapping[str, Any] | str) -> None:
        """Replace the whole file with `data` once it validates. YAML text is saved as sent,
        comments included; a masked `api_key` (as `show` writes it) keeps the current key, and
        then the file is written from the parsed config instead."""
        path = self.writable()
        with self._lock:
            config = self.validated(data)
            edit.check_new_files(self._before(), config, source=self.source)
            if config.api_key == MASK:
                current = load_config(path).api_key if path.exists() else self._running().api_key
                save_config(config.model_copy(update={"api_key": current}), path)
            elif isinstance(data, str):
                backup(path)
                atomic_write(path, data)
            else:
                save_config(config, path)
        self._saved("replaced")

    def edit(self, change: Change[T], what: str = "edited") -> T:
        """Read, `change`, validate and save under the lock, so two edits never lose one another."""
        path = self.writable()
        with self._lock:
            before = self.current()
            new, result = change(before, str(path), self.base_dir)
            edit.check_new_files(before, new, source=str(path))
            save_config(new, path)
        self._saved(what)
        return result

    def update_model(self, model_id: str, fields: object) -> None:
        """Change some fields of one model (by name or alias), validated like the whole file."""

        def change(config: Config, source: str, base: Path | None) -> tuple[Config, None]:
            return edit.update_model(config, model_id, fields, source=source, base_dir=base), None

        self.edit(change, f"model {model_id} updated")

    def delete_model(self, model_id: str) -> str:
        """Remove one model (by name or alias); returns its name."""

        def change(config: Config, _source: str, _base: Path | None) -> tuple[Config, str]:
            new, removed = edit.delete_model(config, model_id)
            return new, removed.name

        return self.edit(change, f"model {model_id} deleted")

    def add_model(self, entry: Mapping[str, Any]) -> None:
        """Append one model entry; ConflictError when its name or file is already configured."""

        def change(config: Config, source: str, base: Path | None) -> tuple[Config, None]:
            return edit.add_model(config, entry, source=source, base_dir=base), None

        self.edit(change, f"model {entry.get('name', '')} added")

    def remove_duplicates(self) -> list[dict[str, Any]]:
        """Drop entries that repeat an earlier model's name or file; the first one stays.

        Works on the file's raw YAML, so a file that fails validation only because of a repeated
        name is repaired. The result must validate, or nothing is written. Returns what went.
        """
        path = self.writable()
        with self._lock:
            if path.exists():
                try:
                    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
                except yaml.YAMLError as exc:
                    load_config(path)  # raises the ConfigError that names the line
                    raise ConfigError(str(exc), path=str(path)) from exc  # pragma: no cover
            else:
                raw = edit.as_data(self._running())
            data, removed = edit.remove_duplicates(raw, base_dir=self.base_dir)
            if removed:
                assert isinstance(data, dict)  # entries are only removed from a mapping's list
                save_config(self.validated(data), path)
        if removed:
            self._saved("duplicates removed")
        return removed
