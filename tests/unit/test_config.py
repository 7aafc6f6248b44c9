"""config.yaml: parsing, validation messages that name file and key path, atomic saves."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from claracore.config import (
    Config,
    MemoryBudget,
    ModelSpec,
    dump_config,
    load_config,
    parse_config,
    save_config,
)
from claracore.errors import ConfigError

SPEC_EXAMPLE = """\
# config.yaml
host: "127.0.0.1"
port: 8080
cors: true
api_key: ""

models:
  - name: "llama-3.2-3b-instruct"
    backend: "cuda"
    model: "/path/to/llama-3.2-3b-instruct.Q4_K_M.gguf"
    context_length: 8192
    max_tokens: 4096
    temperature: 0.7
    top_p: 0.9
    top_k: 40
    repeat_penalty: 1.1
    gpu_layers: -1
    batch_size: 512
    threads: 8

  - name: "nomic-embed-text-v1.5"
    backend: "cuda"
    model: "/path/to/nomic-embed-text-v1.5.f16.gguf"
    context_length: 8192
    embedding: true
    gpu_layers: -1
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def config_error(text: str, tmp_path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path / "config.yaml", text))
    return info.value


def test_spec_example_parses(tmp_path: Path) -> None:
    config = load_config(write(tmp_path / "config.yaml", SPEC_EXAMPLE))
    assert config.port == 8080
    assert config.cors is True
    assert config.names() == ["llama-3.2-3b-instruct", "nomic-embed-text-v1.5"]
    llama, nomic = config.models
    assert llama.backend == "cuda"
    assert llama.gpu_layers == -1
    assert llama.temperature == 0.7
    assert llama.threads == 8
    assert llama.type is None
    assert nomic.embedding is True
    assert nomic.model == os.path.normpath("/path/to/nomic-embed-text-v1.5.f16.gguf")


def test_defaults() -> None:
    config = parse_config({})
    assert (config.host, config.port, config.cors, config.api_key) == ("127.0.0.1", 5800, False, "")
    assert config.memory == MemoryBudget(vram_gb="auto", ram_gb="auto", margin_gb=1.0)
    spec = ModelSpec(name="m", model="/m.gguf")
    assert (spec.backend, spec.gpu_layers, spec.batch_size, spec.parallel) == ("auto", 0, 512, 4)
    assert (spec.cache_type_k, spec.cache_type_v, spec.flash_attn) == ("f16", "f16", "auto")
    assert spec.temperature is None and spec.threads is None and spec.ttl is None
    assert spec.use_mmap is True and spec.pinned is False and spec.aliases == []


@pytest.mark.parametrize("text", ["", "# only a comment\n", "models:\n"])
def test_empty_file_is_empty_config(tmp_path: Path, text: str) -> None:
    config = load_config(write(tmp_path / "config.yaml", text))
    assert config.models == []
    assert config.port == 5800


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    config = Config(
        port=5900,
        cors=["http://localhost:3000"],
        memory=MemoryBudget(vram_gb=7.5),
        models=[
            ModelSpec(name="chat", model=str(tmp_path / "chat.gguf"), aliases=["gpt-4"], temperature=0.2),
            ModelSpec(name="emb", model=str(tmp_path / "emb.gguf"), type="embedding", ttl=300),
        ],
    )
    save_config(config, path)
    assert load_config(path) == config
    text = path.read_text(encoding="utf-8")
    keys = {line.strip(" -").split(":")[0] for line in text.splitlines()}
    assert "host" not in keys and "batch_size" not in keys  # defaults are left out
    assert text.index("name: chat") < text.index("model:")  # name first, readable order


def test_dump_of_default_config_loads_back() -> None:
    assert parse_config(dump_config(Config())) == Config()


def test_save_backs_up_previous_file_and_keeps_newest(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    save_config(Config(port=1000), path, keep_backups=3)
    assert not (tmp_path / ".backups").exists()  # nothing to back up the first time
    for port in range(1001, 1006):
        save_config(Config(port=port), path, keep_backups=3)
    backups = sorted((tmp_path / ".backups").iterdir())
    assert len(backups) == 3
    assert [load_config(b).port for b in backups] == [1002, 1003, 1004]
    assert load_config(path).port == 1005
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_unknown_key_names_file_and_path(tmp_path: Path) -> None:
    err = config_error("models:\n  - name: a\n    model: /a.gguf\n    temprature: 0.5\n", tmp_path)
    hint = "unknown key (did you mean 'temperature'?)"
    assert err.errors == [{"path": "models.0.temprature", "message": hint}]
    assert "config.yaml: models.0 (name 'a').temprature: unknown key" in str(err)
    assert err.path == str(tmp_path / "config.yaml")
    assert err.code == "INVALID_CONFIG"


def test_unknown_top_level_and_memory_keys(tmp_path: Path) -> None:
    err = config_error("bogus: 1\nmemory:\n  vram: 4\n", tmp_path)
    assert {e["path"] for e in err.errors} == {"bogus", "memory.vram"}


def test_bad_value_names_path(tmp_path: Path) -> None:
    text = "models:\n  - {name: a, model: /a}\n  - {name: foo, model: /b, temperature: 3}\n"
    err = config_error(text, tmp_path)
    assert err.errors[0]["path"] == "models.1.temperature"
    expected = "config.yaml: models.1 (name 'foo').temperature: Input should be less than or equal to 2"
    assert expected in str(err)


def test_every_error_is_reported(tmp_path: Path) -> None:
    text = "port: 0\nmodels:\n  - {model: /a, top_p: 0}\n  - {name: b, model: /b, backend: tpu}\n"
    err = config_error(text, tmp_path)
    assert [e["path"] for e in err.errors] == ["port", "models.0.name", "models.0.top_p", "models.1.backend"]
    assert "required key is missing" in err.errors[1]["message"]
    assert len(str(err).splitlines()) == 4


@pytest.mark.parametrize(
    ("models", "clash"),
    [
        ([{"name": "a", "model": "/a"}, {"name": "a", "model": "/b"}], "'a' is both the name of models.0"),
        ([{"name": "a", "model": "/a"}, {"name": "b", "model": "/b", "aliases": ["a"]}], "alias of models.1"),
        (
            [{"name": "a", "model": "/a", "aliases": ["x"]}, {"name": "b", "model": "/b", "aliases": ["x"]}],
            "'x' is both the alias of models.0 ('a') and the alias of models.1 ('b')",
        ),
    ],
)
def test_duplicate_names_and_aliases(models: list[dict[str, object]], clash: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"models": models})
    assert info.value.errors[0]["path"] == "models"
    assert clash in str(info.value)


def test_find_model_by_name_or_alias() -> None:
    config = parse_config({"models": [{"name": "a", "model": "/a", "aliases": ["x", " y "]}]})
    assert config.find_model("a") is config.models[0]
    assert config.find_model("y") is config.models[0]  # aliases are stripped
    assert config.find_model("A") is None


def test_relative_model_paths_resolve_against_config_folder(tmp_path: Path) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    text = "models_dir: models\nmodels:\n  - {name: a, model: ../weights/a.gguf, mmproj: mm.gguf}\n"
    config = load_config(write(folder / "config.yaml", text))
    assert config.models[0].model == str(tmp_path / "weights" / "a.gguf")
    assert config.models[0].mmproj == str(folder / "mm.gguf")
    assert config.models_dir == str(folder / "models")


def test_home_is_expanded_and_absolute_paths_kept(tmp_path: Path) -> None:
    config = parse_config({"models": [{"name": "a", "model": "~/a.gguf"}, {"name": "b", "model": "/x/b"}]})
    assert config.models[0].model == str(Path.home() / "a.gguf")
    assert config.models[1].model == os.path.normpath("/x/b")
    relative = parse_config({"models": [{"name": "c", "model": "c.gguf"}]}, base_dir=tmp_path)
    assert relative.models[0].model == str(tmp_path / "c.gguf")


def test_yaml_syntax_error(tmp_path: Path) -> None:
    err = config_error("port: 5800\nmodels: [\n", tmp_path)
    assert "config.yaml: invalid YAML: line" in str(err)


def test_duplicate_yaml_key_is_an_error(tmp_path: Path) -> None:
    err = config_error("port: 1\nport: 2\n", tmp_path)
    assert "duplicate key 'port'" in str(err)
    assert "line 2" in str(err)


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    err = config_error("- a\n- b\n", tmp_path)
    assert "must be a mapping" in str(err)


def test_missing_file_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("cors", "expected"),
    [
        (True, True),
        (False, False),
        (["http://a", "http://b"], ["http://a", "http://b"]),
        ("http://a", ["http://a"]),
    ],
)
def test_cors(cors: object, expected: object) -> None:
    assert parse_config({"cors": cors}).cors == expected


def test_cors_rejects_other_shapes() -> None:
    with pytest.raises(ConfigError, match="cors: expected true, false or a list"):
        parse_config({"cors": 3})


def test_memory_auto_and_numbers() -> None:
    memory = parse_config({"memory": {"vram_gb": 8, "ram_gb": "auto", "margin_gb": 0.5}}).memory
    assert (memory.vram_gb, memory.ram_gb, memory.margin_gb) == (8.0, "auto", 0.5)
    for bad in (-1, "lots", True):
        with pytest.raises(ConfigError) as info:
            parse_config({"memory": {"vram_gb": bad}})
        assert [e["path"] for e in info.value.errors] == ["memory.vram_gb"]  # one error, not one per shape


def test_backend_and_flash_attn() -> None:
    entry = {"name": "a", "model": "/a", "backend": "CUDA", "flash_attn": True}
    spec = parse_config({"models": [entry]}).models[0]
    assert (spec.backend, spec.flash_attn) == ("cuda", True)
    with pytest.raises(ConfigError) as info:
        parse_config({"models": [{"name": "a", "model": "/a", "flash_attn": "yes please"}]})
    assert [e["path"] for e in info.value.errors] == ["models.0.flash_attn"]


def test_embedding_flag_contradicting_type() -> None:
    with pytest.raises(ConfigError, match="contradicts type 'llm'"):
        parse_config({"models": [{"name": "a", "model": "/a", "type": "llm", "embedding": True}]})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "  "),
        ("context_length", 8),
        ("gpu_layers", -2),
        ("parallel", 65),
        ("cache_type_k", "q3"),
        ("type", "vision"),
        ("min_p", 1.5),
        ("repeat_penalty", 0),
        ("ttl", -1),
        ("threads", 0),
        ("prompt_cache_mb", -1),
        ("prompt_cache_mb", "lots"),
        ("prompt_cache_mb", 1.5),
    ],
)
def test_model_field_bounds(field: str, value: object) -> None:
    entry = {"name": "a", "model": "/a", field: value}
    with pytest.raises(ConfigError) as info:
        parse_config({"models": [entry]})
    assert info.value.errors[0]["path"] == f"models.0.{field}"
