"""The config file edited by several processes at once, as replicas behind a proxy edit it.

Each child does read-modify-write edits through `ConfigFile.edit` (each appends one alias to the
model it finds in the file); with the lock file every alias must survive. Without it two
processes read the same file and the later save drops the earlier one's alias.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from claracore.config import Config, load_config
from claracore.manage.config_file import ConfigFile
from claracore.manage.shared_lock import LockedError, SharedLock
from tests.processes import run_in_children
from tests.tiny_models import make_tiny_llama

CHILDREN = 3
ROUNDS = 12


def _child(path: str, index: int, start: Any, errors: Any) -> None:
    try:
        config_file = ConfigFile(Path(path))

        def add_alias(n: int) -> Any:
            def change(config: Config, _source: str, _base: Path | None) -> tuple[Config, None]:
                model = config.models[0]
                model = model.model_copy(update={"aliases": [*model.aliases, f"c{index}-{n}"]})
                return config.model_copy(update={"models": [model]}), None

            return change

        start.wait(timeout=120)  # spawning is slow on a starved machine
        for n in range(ROUNDS):
            config_file.edit(add_alias(n))
    except Exception as exc:  # noqa: BLE001 - any failure is reported to the parent
        errors.put(f"child {index}: {type(exc).__name__}: {exc}")


def test_processes_editing_one_config_lose_no_edit(tmp_path: Path) -> None:
    model = make_tiny_llama(tmp_path / "tiny.gguf")
    path = tmp_path / "config.yaml"
    path.write_text(f"models:\n  - name: tiny\n    model: {model}\n    aliases: []\n")
    assert run_in_children(_child, CHILDREN, str(path)) == []
    aliases = load_config(path).models[0].aliases
    assert sorted(aliases) == sorted(f"c{i}-{n}" for i in range(CHILDREN) for n in range(ROUNDS))


def test_a_lock_held_elsewhere_fails_after_the_wait(tmp_path: Path) -> None:
    target = tmp_path / "config.yaml"
    holder = SharedLock(target)
    with holder, holder:  # re-entrant in the holding thread
        with pytest.raises(LockedError) as caught, SharedLock(target, wait=0.1):
            pass
        assert caught.value.details == {"path": str(target)}
    with SharedLock(target, wait=0.1):  # released: the next one gets it at once
        pass
    assert (tmp_path / ".config.yaml.lock").exists()
