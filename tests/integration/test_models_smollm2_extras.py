"""The real SmolLM2-135M-Instruct with this issue's features: n-gram speculation on a rewrite
(greedy answer unchanged, most drafts kept), a generated projector of its width (the image
reaches its context), and a random LoRA adapter of its shapes (applied, and scaled off).

The projector and adapter are random: what they do to the answers means nothing; that they
reach the model's context, and deterministically, is what is checked."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from claracore import AsyncEngine
from tests.tiny_models import make_tiny_lora, make_tiny_mmproj, png_bytes

pytestmark = pytest.mark.integration

TEXT = (
    "The keeper climbed the stairs every evening to light the lamp, and the ships saw the beam "
    "sweep across the water. In winter the wind howled, and in summer children came to ask for stories."
)
REWRITE = [
    {
        "role": "user",
        "content": f"Here is a text:\n\n{TEXT}\n\nWrite the text again exactly, word for word. "
        "Output only the text.",
    }
]


@pytest.fixture(scope="module")
def engine(smollm2: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("smol-extras")
    mmproj = make_tiny_mmproj(folder / "mmproj-smol.gguf", n_embd_llm=576)
    adapter = make_tiny_lora(folder / "smol-lora.gguf", n_embd=576, n_layer=30, n_ff=1536, rank=2)
    base = {"model": str(smollm2), "context_length": 1024, "parallel": 2}
    eng = AsyncEngine(
        {
            "models": [
                {"name": "plain", **base},
                {"name": "ngram", **base, "speculative": "ngram"},
                {"name": "vision", **base, "mmproj": str(mmproj)},
                {"name": "tuned", **base, "lora": [{"path": str(adapter), "scale": 1.0}]},
                {"name": "off", **base, "lora": [{"path": str(adapter), "scale": 0.0}]},
            ]
        }
    )
    yield eng
    eng.pool.close()


async def test_ngram_speculation_keeps_the_greedy_rewrite_and_most_drafts(engine: AsyncEngine) -> None:
    options: dict[str, Any] = {"messages": REWRITE, "temperature": 0, "max_tokens": 60}
    plain = await engine.chat(model="plain", **options)
    fast = await engine.chat(model="ngram", **options)
    assert fast.choices[0].message.content == plain.choices[0].message.content
    details = fast.usage.completion_tokens_details
    kept, missed = details["accepted_prediction_tokens"], details["rejected_prediction_tokens"]
    assert kept > 20 and kept > missed, details  # the answer repeats the prompt


async def test_an_image_reaches_the_context(engine: AsyncEngine) -> None:
    def asking(image: bytes) -> list[dict[str, Any]]:
        url = "data:image/png;base64," + base64.b64encode(image).decode()
        parts = [{"type": "text", "text": "Describe it."}, {"type": "image_url", "image_url": {"url": url}}]
        return [{"role": "user", "content": parts}]

    async def scores(image: bytes) -> list[float]:
        r = await engine.chat(
            model="vision", messages=asking(image), temperature=0, max_tokens=1, logprobs=True, top_logprobs=3
        )
        return [round(t.logprob, 4) for t in r.choices[0].logprobs.content[0].top_logprobs]

    red, noise = png_bytes(64, 64, (200, 0, 0)), png_bytes(64, 64, (0, 0, 0), seed=3)
    assert await scores(red) != await scores(noise)
    assert await scores(red) == await scores(red)


async def test_a_lora_adapter_applies_and_scales_off(engine: AsyncEngine) -> None:
    async def first(model: str, **kw: Any) -> list[float]:
        r = await engine.chat(
            model=model, messages=REWRITE, temperature=0, max_tokens=1, logprobs=True, top_logprobs=3, **kw
        )
        return [round(t.logprob, 4) for t in r.choices[0].logprobs.content[0].top_logprobs]

    # An adapter in the graph, even at scale 0, changes the quantized model's rounding a little,
    # so "scaled off" is compared with the same adapter configured at 0, and both with no adapter.
    plain, off = await first("plain"), await first("off")
    tuned = await first("tuned")
    assert tuned != plain and tuned != off
    assert await first("tuned", lora=[{"id": 0, "scale": 0.0}]) == off
