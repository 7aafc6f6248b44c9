"""Images in chat over HTTP: a tiny model with a generated projector (Gemma 3's layout), real
libmtmd encoding and decoding inside the batching loop, and every bad input a 400 naming the part.
"""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from tests.e2e.server import running_server, serving
from tests.tiny_models import NO_EOS, make_tiny_llama, make_tiny_mmproj, png_bytes

RED = png_bytes(40, 30, (220, 10, 10))
NOISE = png_bytes(40, 30, (0, 0, 0), seed=7)


def data_url(image: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(image).decode()


def asking(*parts: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "text", "text": "what is it"}, *parts]}]


def image(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


@pytest.fixture(scope="module")
def image_host() -> Iterator[str]:
    """A loopback server with an image, a slow answer and a 404, for remote image URLs."""

    async def red(_: Any) -> Response:
        return Response(RED, media_type="image/png")

    async def slow(_: Any) -> Response:
        import asyncio

        await asyncio.sleep(8)  # past the 1 s fetch deadline: a fetch that waited would succeed
        return Response(RED, media_type="image/png")

    app = Starlette(routes=[Route("/red.png", red), Route("/slow.png", slow)])
    with serving(app) as url:
        yield url


@pytest.fixture(scope="module")
def server(model_dir: Path) -> Iterator[str]:
    llm = make_tiny_llama(model_dir / "tiny-vision-llm.gguf")
    mmproj = make_tiny_mmproj(model_dir / "mmproj-tiny-vision.gguf")
    base = {"model": str(llm), "context_length": 256}
    config = {
        "media": {"remote_urls": True, "max_mb": 0.01, "fetch_timeout": 1.0},
        "models": [
            # No host prompt cache here: the one slot's own prefix reuse is what the tests pin down
            # (with the cache, NOISE's saved state would come back whole after RED).
            {"name": "vision", **base, "mmproj": str(mmproj), "parallel": 1, "prompt_cache_mb": 0},
            {"name": "vision2", **base, "mmproj": str(mmproj), "parallel": 2},
            # one slot with the host prompt cache, and a model unloaded before each cold reference
            {"name": "vision_cached", **base, "mmproj": str(mmproj), "parallel": 1, "prompt_cache_mb": 16},
            {"name": "vision_cold", **base, "mmproj": str(mmproj), "parallel": 1, "prompt_cache_mb": 0},
            {"name": "text", **base, "parallel": 1},
        ],
    }
    with running_server(config) as (url, _):
        yield url


def chat(server: str, messages: list[dict[str, Any]], model: str = "vision", **kw: Any) -> httpx.Response:
    body = {
        "model": model,
        "messages": messages,
        "max_tokens": 6,
        "temperature": 0,
        "logit_bias": NO_EOS,
        **kw,
    }
    return httpx.post(server + "/v1/chat/completions", json=body, timeout=60)


def first_scores(reply: dict[str, Any]) -> list[tuple[str, float]]:
    top = reply["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
    return [(t["token"], round(t["logprob"], 4)) for t in top]


def cached(reply: dict[str, Any]) -> int:
    return int(reply["usage"]["prompt_tokens_details"]["cached_tokens"])


def test_models_say_which_inputs_they_take(server: str) -> None:
    listed = {m["id"]: m for m in httpx.get(server + "/v1/models").json()["data"]}
    assert listed["vision"]["inputs"] == listed["vision_cached"]["inputs"] == ["text", "image"]
    assert listed["text"]["inputs"] == ["text"]


def test_the_image_reaches_the_context_and_never_shares_a_cached_prefix(server: str) -> None:
    """Different images change the first token's scores; the same one repeats them exactly. The
    one slot's cache must not serve one image's KV for another: after RED, NOISE scores as cold."""
    lp: dict[str, Any] = {"logprobs": True, "top_logprobs": 5}
    text_only = chat(server, asking()).json()
    noise_cold = chat(server, asking(image(data_url(NOISE))), **lp).json()
    red = chat(server, asking(image(data_url(RED))), **lp).json()
    noise_again = chat(server, asking(image(data_url(NOISE))), **lp).json()
    # the projector's 4 embeddings (and the model's image markers) are in the prompt
    assert noise_cold["usage"]["prompt_tokens"] >= text_only["usage"]["prompt_tokens"] + 4
    assert first_scores(red) != first_scores(noise_cold)
    assert first_scores(noise_again) == first_scores(noise_cold)
    # the text before the image came from the cache; the image (and the text after it) did not
    assert 0 < cached(noise_again) < noise_again["usage"]["prompt_tokens"] - 4
    # the same image twice in a row: all but the last token is reused
    again = chat(server, asking(image(data_url(NOISE))), **lp).json()
    assert cached(again) == again["usage"]["prompt_tokens"] - 1
    assert first_scores(again) == first_scores(noise_cold)


def test_the_host_cache_never_hands_one_images_state_to_another(server: str) -> None:
    """NOISE, RED, NOISE, RED on one slot with the host prompt cache: each image but the first
    finds the other in the slot and its own state (from the second round) in the cache. Every
    answer, text and first-token scores, is that of the same request on a freshly loaded model."""
    kw: dict[str, Any] = {"logprobs": True, "top_logprobs": 5, "max_tokens": 20}  # worth saving

    def answer(reply: dict[str, Any]) -> tuple[list[tuple[str, float]], str]:
        return first_scores(reply), reply["choices"][0]["message"]["content"]

    cold = {}
    for img in (NOISE, RED):
        httpx.post(server + "/api/models/vision_cold/unload").raise_for_status()
        cold[img] = answer(chat(server, asking(image(data_url(img))), model="vision_cold", **kw).json())
    assert cold[NOISE][0] != cold[RED][0]
    for turn, img in enumerate((NOISE, RED, NOISE, RED)):
        reply = chat(server, asking(image(data_url(img))), model="vision_cached", **kw).json()
        assert answer(reply) == cold[img], turn
        if turn >= 2:  # the slot held the other image: this one came back from the cache whole
            assert cached(reply) == reply["usage"]["prompt_tokens"] - 1, turn
        else:  # nothing of the other image is reused: the text before the image at most
            assert cached(reply) < reply["usage"]["prompt_tokens"] - 4, turn


def test_seeded_sampling_with_an_image_repeats_and_streams_the_same(server: str) -> None:
    kw: dict[str, Any] = {"temperature": 0.9, "seed": 4, "max_tokens": 10}
    one = chat(server, asking(image(data_url(RED))), **kw).json()["choices"][0]["message"]["content"]
    two = chat(server, asking(image(data_url(RED))), **kw).json()["choices"][0]["message"]["content"]
    assert one == two and one
    body = {
        "model": "vision",
        "messages": asking(image(data_url(RED))),
        "stream": True,
        "logit_bias": NO_EOS,
        **kw,
    }
    streamed = ""
    with httpx.stream("POST", server + "/v1/chat/completions", json=body, timeout=60) as r:
        for line in r.iter_lines():
            if line.startswith("data: {"):
                import json

                choices = json.loads(line[6:])["choices"]
                streamed += (choices[0]["delta"].get("content") or "") if choices else ""
    assert streamed == one


def test_image_and_text_requests_decode_together(server: str) -> None:
    """Two slots: a long text stream is running while an image request arrives and answers."""
    body = {
        "model": "vision2",
        "messages": asking(),
        "max_tokens": 150,
        "temperature": 0,
        "logit_bias": NO_EOS,
        "stream": True,
    }
    with httpx.stream("POST", server + "/v1/chat/completions", json=body, timeout=60) as stream:
        lines = stream.iter_lines()
        next(line for line in lines if line.startswith("data: {"))  # admitted and decoding
        reply = chat(server, asking(image(data_url(RED))), model="vision2")
        assert reply.status_code == 200
        rest = [line for line in lines if line.startswith("data: ")]
    assert rest[-1] == "data: [DONE]"
    alone = chat(server, asking(image(data_url(RED))), model="vision").json()
    assert reply.json()["choices"][0]["message"]["content"] == alone["choices"][0]["message"]["content"]


def test_remote_image_url_is_fetched(server: str, image_host: str) -> None:
    remote = chat(server, asking(image(image_host + "/red.png")), logprobs=True, top_logprobs=5).json()
    inline = chat(server, asking(image(data_url(RED))), logprobs=True, top_logprobs=5).json()
    assert first_scores(remote) == first_scores(inline)


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("part", "says"),
    [
        (image(data_url(b"hello, not an image")), "is not an image"),
        (image("data:image/png;base64,@@@"), "not valid base64"),
        (image("data:image/png,rawbytes"), "must be base64"),
        (image(data_url(png_bytes(80, 80, (0, 0, 0), seed=1))), "larger than"),  # over max_mb
        (image("ftp://example.invalid/x.png"), "data: or http(s)"),
        ({"type": "image_url", "image_url": {}}, "missing"),
        (image("http://127.0.0.1:{port}/nothing.png"), "could not fetch"),
    ],
)
def test_bad_images_are_400_naming_the_part(server: str, part: dict[str, Any], says: str) -> None:
    if "{port}" in part.get("image_url", {}).get("url", ""):
        part = image(part["image_url"]["url"].format(port=unused_port()))
    r = chat(server, asking(part))
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"].startswith("messages.0.content.1"), error
    assert says in error["message"], error


def test_slow_and_missing_remote_images_fail_within_the_deadline(server: str, image_host: str) -> None:
    slow = chat(server, asking(image(image_host + "/slow.png")))
    assert slow.status_code == 400 and "timed out" in slow.json()["error"]["message"]
    missing = chat(server, asking(image(image_host + "/none.png")))
    assert missing.status_code == 400 and "HTTP 404" in missing.json()["error"]["message"]


def test_a_text_only_model_given_an_image_is_400(server: str) -> None:
    r = chat(server, asking(image(data_url(RED))), model="text")
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["param"] == "messages.0.content.1"
    assert "model 'text' takes text only" in error["message"]
    # audio to a projector without an audio encoder
    audio = {
        "type": "input_audio",
        "input_audio": {"data": base64.b64encode(b"RIFF").decode(), "format": "wav"},
    }
    r = chat(server, asking(audio))
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages.0.content.1"
    assert "takes text and image only" in r.json()["error"]["message"]
