"""The one set of input rules (claracore.inputs) and the crashes they prevent: token ids outside
the vocabulary, lone surrogates, data nested past any parser's recursion limit, unusable paths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from claracore import AsyncEngine, InvalidRequestError
from claracore.inputs import MAX_DEPTH, check_path, find_problem, path_problem


@pytest.fixture
async def engine(tiny_llama: Path, tiny_bert: Path) -> Any:
    eng = AsyncEngine(
        {
            "models": [
                {"name": "tiny", "model": str(tiny_llama), "context_length": 256},
                {"name": "embed", "model": str(tiny_bert)},
            ]
        }
    )
    yield eng
    await eng.close()


@pytest.mark.parametrize("bad", [99_999, -1, 2**31])
@pytest.mark.parametrize("options", [{"echo": True}, {"echo": False}, {"echo": True, "logprobs": 1}])
async def test_token_ids_outside_the_vocabulary_are_a_400_before_llama_cpp_sees_them(
    engine: AsyncEngine, bad: int, options: dict[str, Any]
) -> None:
    """With echo the ids were detokenized before the check and llama.cpp aborted the process."""
    with pytest.raises(InvalidRequestError) as err:
        await engine.complete(model="tiny", prompt=[5, bad], max_tokens=2, **options)
    assert err.value.param == "prompt" and str(bad) in err.value.message
    with pytest.raises(InvalidRequestError) as err:
        await engine.complete(model="tiny", prompt=[[5, 6], [7, bad]], max_tokens=2, **options)
    assert err.value.param == "prompt.1"
    # The engine still serves.
    ok = await engine.complete(model="tiny", prompt=[5, 6], max_tokens=2, echo=True, temperature=0)
    assert ok.choices[0].text


async def test_embedding_token_ids_are_checked(engine: AsyncEngine) -> None:
    with pytest.raises(InvalidRequestError) as err:
        await engine.embed(model="embed", input=[[5, 6], [10**6]])
    assert err.value.param == "input.1"


@pytest.mark.parametrize(
    "call",
    [
        {"model": "tiny", "messages": [{"role": "user", "content": "a\ud800b"}]},
        {"model": "\udfff", "messages": [{"role": "user", "content": "x"}]},
        {"model": "tiny", "messages": [{"role": "user", "content": "x"}], "stop": ["\ud800"]},
    ],
)
async def test_lone_surrogates_are_a_400_naming_the_field(engine: AsyncEngine, call: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequestError) as err:
        await engine.chat(call, max_tokens=2)
    assert err.value.param in ("messages.0.content", "model", "stop.0")
    assert "surrogate" in err.value.message


def test_find_problem_walks_without_recursion() -> None:
    deep: Any = "x"
    for _ in range(100_000):  # far past Python's recursion limit
        deep = [deep]
    field, problem = find_problem({"a": deep}) or ("", "")
    assert field.startswith("a.0.0") and "nested" in problem
    assert find_problem({"a": [[["ok"]] * 3] * 3, "b": {"c": 1.5}}) is None
    ok_depth: Any = "x"
    for _ in range(MAX_DEPTH - 1):
        ok_depth = [ok_depth]
    assert find_problem({"a": ok_depth}) is None
    assert find_problem({"k\ud800": 1}) == (
        "",
        "has a key that holds a lone surrogate (\\ud800), which is not valid Unicode",
    )
    assert find_problem({"a": [1, {"b": "\udc80"}]})[0] == "a.1.b"  # type: ignore[index]


@pytest.mark.parametrize(
    "path,problem",
    [
        ("/tmp/a\x00b", "NUL"),
        ("/tmp/\ud800", "surrogate"),
        ("/" + "a/" * 2100, "longer than"),
        ("/tmp/" + "n" * 256, "name longer"),
    ],
)
def test_unusable_paths_are_named(path: str, problem: str) -> None:
    assert problem in (path_problem(path) or "")
    with pytest.raises(InvalidRequestError) as err:
        check_path(path, "folderPath")
    assert err.value.param == "folderPath"


def test_usable_paths_pass() -> None:
    for path in ("/", "/tmp/models", "~/models", "/tmp/" + "n" * 255, "relative/ok", "/tmp/été"):
        assert path_problem(path) is None
