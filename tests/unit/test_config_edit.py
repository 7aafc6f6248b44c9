"""config_edit: every edit returns a config that validates, or raises naming the key path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from claracore.config import Config, parse_config
from claracore.errors import ConfigError, ConflictError, InvalidRequestError, ModelNotFoundError
from claracore.manage import config_edit as edit
from tests.tiny_models import make_tiny_llama


def _config(tmp_path: Path, tiny_llama: Path) -> Config:
    return parse_config(
        {
            "models": [
                {"name": "a", "model": str(tiny_llama), "aliases": ["alpha"]},
                {"name": "b", "model": str(tmp_path / "b.gguf"), "temperature": 0.5},
            ]
        }
    )


def _paths(exc: pytest.ExceptionInfo[ConfigError]) -> list[str]:
    return [e["path"] for e in exc.value.errors]


def test_update_model_is_partial_and_validated(tmp_path: Path, tiny_llama: Path) -> None:
    config = _config(tmp_path, tiny_llama)
    new = edit.update_model(config, "alpha", {"temperature": 0.8, "context_length": 256})
    assert (new.models[0].temperature, new.models[0].context_length) == (0.8, 256)
    assert new.models[0].aliases == ["alpha"] and new.models[1] == config.models[1]
    assert config.models[0].temperature is None  # the input is not changed


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"temprature": 0.5}, "models.1.temprature"),
        ({"temperature": -1}, "models.1.temperature"),
        ({"context_length": 10**9}, "models.1.context_length"),
        ({"name": "a"}, "models"),  # a name clash
    ],
)
def test_update_model_rejects_naming_the_key(
    tmp_path: Path, tiny_llama: Path, fields: dict[str, object], path: str
) -> None:
    with pytest.raises(ConfigError) as exc:
        edit.update_model(_config(tmp_path, tiny_llama), "b", fields)
    assert _paths(exc) == [path]


def test_update_model_bad_requests(tmp_path: Path, tiny_llama: Path) -> None:
    config = _config(tmp_path, tiny_llama)
    with pytest.raises(ModelNotFoundError):
        edit.update_model(config, "nope", {"temperature": 1})
    for fields in ({}, [1], "x"):
        with pytest.raises(InvalidRequestError):
            edit.update_model(config, "a", fields)


def test_delete_model(tmp_path: Path, tiny_llama: Path) -> None:
    new, removed = edit.delete_model(_config(tmp_path, tiny_llama), "alpha")
    assert removed.name == "a" and new.names() == ["b"]
    with pytest.raises(ModelNotFoundError):
        edit.delete_model(new, "a")


def test_new_and_add_model(tmp_path: Path, tiny_llama: Path) -> None:
    other = make_tiny_llama(tmp_path / "Other-Model.gguf", seed=5)
    entry = edit.new_model(str(other), options={"throughputFirst": True, "enableJinja": True})
    assert entry == {"name": "other-model", "model": str(other), "type": "llm", "parallel": 8}
    config = edit.add_model(_config(tmp_path, tiny_llama), entry)
    assert config.names() == ["a", "b", "other-model"]
    with pytest.raises(ConflictError):  # the same name again
        edit.add_model(config, {**entry, "model": str(tiny_llama) + ".x"})
    with pytest.raises(ConflictError):  # the same file under another name
        edit.add_model(config, {**entry, "name": "again"})
    with pytest.raises(ConflictError):  # an alias counts as a name
        edit.add_model(config, {**entry, "name": "alpha"})


def test_new_model_refuses_bad_files(tmp_path: Path, corrupt_gguf: Path) -> None:
    text = tmp_path / "notes.gguf"
    text.write_text("hello")
    for path in ("", "relative.gguf", str(tmp_path / "missing.gguf"), str(text), str(corrupt_gguf)):
        with pytest.raises(InvalidRequestError):
            edit.new_model(path)
    with pytest.raises(InvalidRequestError, match="unknown option"):
        edit.new_model(str(corrupt_gguf), options={"turbo": True})


def test_new_model_speech(tmp_path: Path) -> None:
    whisper = tmp_path / "Whisper-Tiny.en"
    whisper.mkdir()
    (whisper / "model.bin").write_bytes(b"\0")
    voice = tmp_path / "en_US-joe-medium.onnx"
    voice.write_bytes(b"\0")
    (tmp_path / "en_US-joe-medium.onnx.json").write_text("{}")
    assert edit.new_model(str(whisper))["type"] == "stt"
    assert edit.new_model(str(whisper))["name"] == "whisper-tiny.en"
    assert edit.new_model(str(voice), name="joe") == {"name": "joe", "model": str(voice), "type": "tts"}


def test_remove_duplicates_keeps_the_first(tmp_path: Path, tiny_llama: Path) -> None:
    link = tmp_path / "link.gguf"
    os.symlink(tiny_llama, link)
    rel = os.path.relpath(tiny_llama, tmp_path)
    raw = {
        "port": 5900,
        "models": [
            {"name": "a", "model": str(tiny_llama)},
            {"name": "a", "model": str(tmp_path / "x.gguf")},  # same name
            {"name": "c", "model": str(link)},  # same file through a symlink
            {"name": "d", "model": rel},  # same file, relative to the config's folder
            {"name": "e", "model": str(tmp_path / "e.gguf")},
        ],
    }
    data, removed = edit.remove_duplicates(raw, base_dir=tmp_path)
    assert isinstance(data, dict)
    assert [m["name"] for m in data["models"]] == ["a", "e"] and data["port"] == 5900
    assert [(r["index"], r["reason"]) for r in removed] == [
        (1, "same name as models.0"),
        (2, "same file as models.0"),
        (3, "same file as models.0"),
    ]
    assert edit.remove_duplicates(data, base_dir=tmp_path)[1] == []
    assert edit.remove_duplicates("text", base_dir=None) == ("text", [])


def test_limits(tmp_path: Path, tiny_llama: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        edit.validated(
            {
                "max_upload_mb": 1e12,
                "memory": {"vram_gb": 1e9},
                "models": [{"name": "a", "model": "m", "threads": 10**6}],
            },
            source="t",
            base_dir=None,
        )
    assert _paths(exc) == ["max_upload_mb", "memory.vram_gb", "models.0.threads"]


def test_check_model_file(tmp_path: Path, tiny_llama: Path, corrupt_gguf: Path) -> None:
    assert edit.check_model_file(str(tiny_llama)) == {
        "exists": True, "readable": True, "valid": True, "type": "llm", "error": None
    }  # fmt: skip
    missing = edit.check_model_file(str(tmp_path / "gone.gguf"))
    assert (missing["exists"], missing["error"]) == (False, "file not found")
    bad = edit.check_model_file(str(corrupt_gguf))
    assert bad["exists"] and bad["readable"] and not bad["valid"] and bad["error"]


def test_validation_report(tmp_path: Path, tiny_llama: Path, corrupt_gguf: Path) -> None:
    config = parse_config(
        {
            "models": [
                {"name": "ok", "model": str(tiny_llama)},
                {"name": "long", "model": str(tiny_llama), "context_length": 4096},  # trained: 512
                {"name": "gone", "model": str(tmp_path / "gone.gguf")},
                {"name": "bad", "model": str(corrupt_gguf)},
            ]
        }
    )
    report = edit.validation_report(config)
    assert report["valid"] and report["errors"] == []
    warnings = report["warnings"]
    assert len(warnings) == 3
    assert warnings[0].startswith("models.1 ('long').context_length: 4096 is above the 512")
    assert warnings[1].startswith("models.2 ('gone').model: Model file path may not exist")
    assert warnings[2].startswith("models.3 ('bad').model: cannot be used")


def test_split_and_mmproj_files(tmp_path: Path, tiny_llama: Path) -> None:
    from tests.unit.test_scanner import write_split_part

    first = write_split_part(tmp_path / "big-00001-of-00002.gguf", 0, 2)
    missing_part = edit.check_model_file(str(first))
    assert not missing_part["valid"] and "parts" in missing_part["error"]
    write_split_part(tmp_path / "big-00002-of-00002.gguf", 1, 2)
    assert edit.check_model_file(str(first))["valid"]
    config = parse_config(
        {"models": [{"name": "v", "model": str(tiny_llama), "mmproj": str(tmp_path / "mm.gguf")}]}
    )
    assert edit.validation_report(config)["warnings"] == [
        f"models.0 ('v').mmproj: Model file path may not exist: {tmp_path / 'mm.gguf'}"
    ]
