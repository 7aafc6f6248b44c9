"""Every route fuzzed from the server's own OpenAPI document (schemathesis), against a real
server on the tiny models (and the real speech models when installed): zero 5xx, zero dropped or
hung connections, every answer's status, media type and (for 2xx) body as documented, and the
server healthy afterwards.

Routes come from the document the app serves, so routes added later are fuzzed as well. The
document is narrowed only where the fuzzer would otherwise waste its examples: `model` is one
of the real model names (or a missing one), token counts stay small, paths are a few real and
unreal ones (a fuzzed absolute path could name `/`, whose scan is bounded but slow), speech
input is short. Everything else (types, nesting, unknown fields, invalid data in the negative
phase) is drawn as the schema allows or as it forbids. Bounded: a fixed number of examples per
operation and mode, derandomized, so the run is the same every time.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from claracore.manage.defaults import BUNDLED
from claracore.manage.downloads import DownloadOptions, Retry
from tests.e2e.server import running_server
from tests.hub_stub import HubStub

log = logging.getLogger(__name__)

KEY = "fuzz-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
EXAMPLES = {schemathesis.GenerationMode.POSITIVE: 50, schemathesis.GenerationMode.NEGATIVE: 30}
TIMEOUT_S = 60  # one answer; longer is a hang
# An event feed is read for FEED_TIMEOUT_S (its headers must come by then), with fewer examples.
FEED_EXAMPLES = {schemathesis.GenerationMode.POSITIVE: 6, schemathesis.GenerationMode.NEGATIVE: 4}
FEED_TIMEOUT_S = 2.0
STUB_REPO = "stub/tiny"
MUTATING_LAST = ("/api/config", "/api/server/restart")  # replace the config, then apply it: at the end


@pytest.fixture(scope="module")
def server(
    tiny_llama: Path, tiny_bert: Path, tiny_rerank: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, list[str], Path, str]]:
    folder = tmp_path_factory.mktemp("fuzz")
    models: list[dict[str, Any]] = [
        {"name": "tiny", "model": str(tiny_llama), "context_length": 256, "parallel": 4},
        {"name": "embed", "model": str(tiny_bert)},
        {"name": "rerank", "model": str(tiny_rerank)},
    ]
    speech = {b.name: b.locate() for b in BUNDLED if b.spec["type"] in ("stt", "tts")}
    if speech.get("joe") and speech.get("whisper-tiny.en"):
        models.append({"name": "whisper", "model": str(speech["whisper-tiny.en"]), "type": "stt"})
        models.append({"name": "joe", "model": str(speech["joe"]), "type": "tts", "aliases": ["tts-1"]})
    config = {"api_key": KEY, "models": models}
    cfg = folder / "config.yaml"
    cfg.write_text(yaml.safe_dump(config))
    with HubStub() as hub:  # downloads and search reach this loopback hub, never the internet
        hub.add(STUB_REPO, {"tiny.gguf": tiny_llama.read_bytes()})
        options = DownloadOptions(hub_endpoint=hub.url, retry=Retry(attempts=2, delay=0.01, max_delay=0.02))
        app = {"config_path": cfg, "data_dir": folder / "data", "download_options": options}
        with running_server(config, **app) as (url, _):
            yield url, [m["name"] for m in models], tiny_llama.parent, hub.url


def narrowed(document: dict[str, Any], names: list[str], model_dir: Path, hub: str) -> dict[str, Any]:
    """The document with the fuzzer steered onto real names, small counts and a few paths."""
    doc = copy.deepcopy(document)
    model_names = {"type": "string", "enum": [*names, "no-such-model"]}
    paths = {"type": "string", "enum": [str(model_dir), str(model_dir / "tiny-llama.gguf"), "/no/such/dir"]}
    choices = {
        "repo": [STUB_REPO, "nobody/nothing"],
        "modelId": [STUB_REPO, "nobody/nothing"],
        "filename": ["tiny.gguf", "missing.gguf"],
        "url": [f"{hub}/{STUB_REPO}/resolve/main/tiny.gguf", "http://127.0.0.1:9/none.gguf"],
        "owner": ["stub", "nobody"],
        "name": ["tiny", "nothing"],
    }
    small = {"max_tokens": 8, "max_completion_tokens": 8, "n": 2, "top_logprobs": 3, "logprobs": 3}

    def visit(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                visit(item)
            return
        if not isinstance(node, dict):
            return
        props = node.get("properties")
        if isinstance(props, dict):
            for name, schema in list(props.items()):
                if name == "model":
                    props[name] = model_names
                elif name in choices and node.get("title") in ("DownloadRequest", None):
                    props[name] = {"anyOf": [{"type": "string", "enum": choices[name]}, {"type": "null"}]}
                elif name in ("folderPath", "filePath", "modelPath", "targetDir"):
                    props[name] = paths
                elif name == "folderPaths":
                    props[name] = {"type": "array", "items": paths, "minItems": 1, "maxItems": 2}
                elif name in small and isinstance(schema, dict):
                    props[name] = {
                        "anyOf": [{"type": "integer", "minimum": 0, "maximum": small[name]}, {"type": "null"}]
                    }
                elif name == "input" and node.get("title") == "SpeechRequest":
                    props[name] = {"type": "string", "minLength": 1, "maxLength": 40}
                elif name == "messages":
                    props[name] = {**schema, "maxItems": 3}
        if node.get("in") == "path" and node.get("name") == "model_id":
            node["schema"] = model_names
        elif node.get("in") == "path" and node.get("name") in choices:
            node["schema"] = {"type": "string", "enum": choices[node["name"]]}
        for value in node.values():
            visit(value)

    # Only what requests carry: request bodies (inline, or the components named for them) and
    # path parameters; the response schemas stay as the server documents them.
    for operations in doc["paths"].values():
        for op in operations.values():
            visit(op.get("requestBody"))
            visit(op.get("parameters"))
    for name, component in doc.get("components", {}).get("schemas", {}).items():
        if name.endswith("Request") or name.startswith("Body_"):
            visit(component)
    # Writes that replace the whole config and apply it go last, so they do not empty the server
    # of models before the other routes had their turn.
    doc["paths"] = dict(sorted(doc["paths"].items(), key=lambda kv: kv[0] in MUTATING_LAST))
    return doc


class Tally:
    """What the fuzz sent and what came back."""

    def __init__(self) -> None:
        self.requests = 0
        self.server_errors = 0
        self.dropped = 0
        self.failures: list[str] = []

    def failed(self, label: str, case: schemathesis.Case, why: str) -> None:
        if len(self.failures) < 20:
            self.failures.append(f"{label}: {why}\n    {case.as_curl_command(headers=AUTH)}")


def is_feed(operation: schemathesis.APIOperation) -> bool:
    """A GET that may answer an event stream that never ends by itself (/api/events)."""
    content = operation.definition.raw.get("responses", {}).get("200", {}).get("content", {})
    return operation.method.upper() == "GET" and "text/event-stream" in content


def fuzz(operation: schemathesis.APIOperation, url: str, tally: Tally) -> None:
    started, sent = time.monotonic(), tally.requests
    feed = is_feed(operation)
    for mode, examples in (FEED_EXAMPLES if feed else EXAMPLES).items():
        try:
            _fuzz(operation, mode, examples, url, tally, FEED_TIMEOUT_S if feed else TIMEOUT_S)
        except Unsatisfiable:  # nothing in this operation can be made invalid (no parameters)
            assert mode == schemathesis.GenerationMode.NEGATIVE, operation.path
    took = time.monotonic() - started
    log.info(
        "%s %s: %d requests, %.1f s", operation.method.upper(), operation.path, tally.requests - sent, took
    )


def _fuzz(
    operation: schemathesis.APIOperation,
    mode: schemathesis.GenerationMode,
    examples: int,
    url: str,
    tally: Tally,
    timeout: float,
) -> None:
    label = f"{operation.method.upper()} {operation.path} ({mode.value})"
    checks = [not_a_server_error, status_code_conformance, content_type_conformance]
    if mode == schemathesis.GenerationMode.POSITIVE:
        checks.append(response_schema_conformance)

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        tally.requests += 1
        try:
            response = case.call(base_url=url, headers=AUTH, timeout=timeout)
        except requests.RequestException as exc:  # refused, reset, cut mid-body, or timed out
            tally.dropped += 1
            tally.failed(label, case, f"no answer: {exc!r}")
            return
        if response.status_code >= 500:
            tally.server_errors += 1
        try:
            case.validate_response(response, checks=checks)
        except (AssertionError, FailureGroup) as exc:
            found = exc.exceptions if isinstance(exc, FailureGroup) else [exc]
            why = "; ".join(f"{type(e).__name__}: {str(e)[:300]}" for e in found)
            tally.failed(label, case, f"{response.status_code} {why}")

    run()


# A fixed number of examples, not a time budget: on a busy machine (the suite's default 300 s
# timeout was reached with other test runs sharing two cores) the same run just takes longer.
@pytest.mark.timeout(1200)
def test_every_route_survives_fuzzing(server: tuple[str, list[str], Path, str]) -> None:
    url, names, model_dir, hub = server
    document = httpx.get(url + "/openapi.json", headers=AUTH, timeout=30).json()
    # Curl lines show max_tokens (sanitizing hides fields named like tokens); a stream is read
    # up to 64 events (a chat of at most 8 tokens x 2 choices ends sooner).
    config = schemathesis.Config.from_dict(
        {"output": {"sanitization": {"enabled": False}}, "max-stream-events": 64}
    )
    schema = schemathesis.openapi.from_dict(narrowed(document, names, model_dir, hub), config=config)
    tally = Tally()
    started = time.monotonic()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 30
    for operation in operations:
        fuzz(operation, url, tally)
    took = time.monotonic() - started
    log.warning(
        "fuzz: %d operations, %d requests, %d 5xx, %d dropped or hung, %.0f s",
        len(operations),
        tally.requests,
        tally.server_errors,
        tally.dropped,
        took,
    )
    # Healthy afterwards: answers, and still generates when the tiny model is still configured.
    assert httpx.get(url + "/health", timeout=10).status_code == 200
    listed = httpx.get(url + "/v1/models", headers=AUTH, timeout=30).json()["data"]
    if any(m["id"] == "tiny" for m in listed):
        body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
        assert (
            httpx.post(url + "/v1/chat/completions", json=body, headers=AUTH, timeout=60).status_code == 200
        )
    assert tally.server_errors == 0 and tally.dropped == 0 and not tally.failures, "\n".join(tally.failures)
