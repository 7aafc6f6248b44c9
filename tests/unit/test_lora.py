"""LoRA adapters on a tiny model: applied, scaled per request, switched between requests without
reusing KV computed under other scales, and refused at load when the file does not fit."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from claracore import AsyncEngine, InvalidRequestError
from claracore.errors import ClaraCoreError
from tests.tiny_models import NO_EOS, make_tiny_lora

USER = [{"role": "user", "content": "hello world"}]


@pytest.fixture
async def engine(tiny_llama: Path, model_dir: Path) -> Any:
    adapter = make_tiny_lora(model_dir / "tiny-lora.gguf")
    wrong = make_tiny_lora(model_dir / "tiny-lora-32.gguf", n_embd=32, n_ff=64)
    base = {"model": str(tiny_llama), "context_length": 256, "parallel": 2}
    eng = AsyncEngine(
        {
            "models": [
                {"name": "base", **base},
                {"name": "tuned", **base, "lora": [{"path": str(adapter), "scale": 1.0}]},
                {
                    "name": "cached",
                    **base,
                    "prompt_cache_mb": 64,
                    "lora": [{"path": str(adapter), "scale": 1.0}],
                },
                {"name": "misfit", **base, "lora": [{"path": str(wrong)}]},
            ]
        }
    )
    yield eng
    await eng.close()


async def answer(engine: AsyncEngine, model: str, **kw: Any) -> tuple[str, float]:
    r = await engine.chat(
        model=model, messages=USER, max_tokens=8, temperature=0, logit_bias=NO_EOS, logprobs=True, **kw
    )
    return r.choices[0].message.content, r.choices[0].logprobs.content[0].logprob


async def test_adapter_applies_and_scales_per_request(engine: AsyncEngine) -> None:
    plain = await answer(engine, "base")
    tuned = await answer(engine, "tuned")
    assert tuned != plain, "the adapter should change the model's scores"
    assert await answer(engine, "tuned", lora=[{"id": 0, "scale": 0.0}]) == plain
    # back to the configured scale: the prompt cached under scale 0 must not be reused
    assert await answer(engine, "tuned") == tuned
    half = await answer(engine, "tuned", lora=[{"id": 0, "scale": 0.5}])
    assert half not in (plain, tuned)
    listed = {m.id: m.model_dump() for m in engine.models().data}
    assert listed["tuned"]["lora"] == [{"path": str(engine.config.models[1].lora[0].path), "scale": 1.0}]
    assert listed["base"].get("lora") is None


async def test_requests_with_different_scales_arriving_together_answer_as_alone(engine: AsyncEngine) -> None:
    scales: list[dict[str, Any]] = [
        {},
        {"lora": [{"id": 0, "scale": 0.0}]},
        {},
        {"lora": [{"id": 0, "scale": 0.5}]},
    ]
    alone = [await answer(engine, "tuned", **kw) for kw in scales]
    together = await asyncio.gather(*(answer(engine, "tuned", **kw) for kw in scales))
    assert list(together) == alone


async def test_a_switch_forgets_the_prompt_cache_saved_under_other_scales(engine: AsyncEngine) -> None:
    """The host-memory prompt cache holds KV computed under the scales of its time: restored
    after a switch, it would answer as the old adapter."""
    prompts = [[{"role": "user", "content": f"conversation {i} " * 8}] for i in range(4)]

    async def ask(messages: list[dict[str, str]], **kw: Any) -> Any:
        r = await engine.chat(
            model="cached",
            messages=messages,
            max_tokens=4,
            temperature=0,
            logit_bias=NO_EOS,
            logprobs=True,
            **kw,
        )
        return r.choices[0].logprobs.content[0].logprob

    unscaled = [await ask(p, lora=[{"id": 0, "scale": 0.0}]) for p in prompts[:1]]
    for p in prompts:  # prompt 0 under scale 1, then three others take both slots: 0 goes to the cache
        await ask(p)
    assert [await ask(p, lora=[{"id": 0, "scale": 0.0}]) for p in prompts[:1]] == unscaled


async def test_bad_adapter_id_is_400(engine: AsyncEngine) -> None:
    with pytest.raises(InvalidRequestError) as err:
        await answer(engine, "tuned", lora=[{"id": 3, "scale": 1.0}])
    assert err.value.param == "lora"
    with pytest.raises(InvalidRequestError):
        await answer(engine, "base", lora=[{"id": 0, "scale": 1.0}])  # a model without adapters


async def test_an_adapter_that_does_not_fit_fails_the_load_naming_it(engine: AsyncEngine) -> None:
    with pytest.raises(ClaraCoreError) as err:
        await answer(engine, "misfit")
    assert "tiny-lora-32.gguf" in str(err.value)
    assert (await answer(engine, "base"))[0]  # the others keep serving


def test_an_adapters_file_counts_as_weights_in_the_estimate(tiny_llama: Path, model_dir: Path) -> None:
    """The adapter's tensors sit beside the model's weights in RAM: the budget and the estimate's
    weights line both grow by its file size."""
    from claracore.config import ModelSpec
    from claracore.pool import loaders

    adapter = make_tiny_lora(model_dir / "tiny-lora.gguf")
    base = {"name": "m", "model": str(tiny_llama), "context_length": 256}
    plain = loaders.recipe(ModelSpec(**base), gpu_offload=False).estimate
    tuned = loaders.recipe(ModelSpec(**base, lora=[{"path": str(adapter)}]), gpu_offload=False).estimate
    size = adapter.stat().st_size
    assert (tuned.ram_bytes - plain.ram_bytes, tuned.weights_ram - plain.weights_ram) == (size, size)
