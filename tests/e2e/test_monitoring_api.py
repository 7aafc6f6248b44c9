"""GET /api/metrics, /metrics (Prometheus), /api/activity and /api/logs over real HTTP: the figures
match the requests a test sent, the Prometheus text parses, activity pages and filters, logs
filter and follow; config writes, soft restarts and setup runs are published as events."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI
from prometheus_client.parser import text_string_to_metric_families

from claracore.runtime.native import forward_log
from tests.e2e.server import running_server
from tests.e2e.sse_reader import SseReader
from tests.e2e.test_setup_api import OPTIONS
from tests.tiny_models import NO_EOS
from tests.unit.test_scanner import build_model_tree
from tests.waiting import wait_for

USER = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def served(tiny_llama: Path) -> Iterator[tuple[str, dict[str, int]]]:
    """A server that has answered 4 requests to model a, two to paths no route serves, one to an
    unknown model and one bad one; yields its URL and the usage totals the answers reported."""
    # one slot, so the last request (another prompt) saves what the chats left into the prompt cache
    a = {"name": "a", "model": str(tiny_llama), "context_length": 256, "parallel": 1, "aliases": ["alias-a"]}
    with running_server({"models": [a], "monitoring": {"metrics_interval": 0}}) as (url, _engine):
        client = OpenAI(base_url=url + "/v1", api_key="none")
        totals = {"prompt": 0, "completion": 0}
        for n in (3, 5):
            r = client.chat.completions.create(
                model="a",
                messages=USER,
                max_tokens=n,
                temperature=0,
                logit_bias=NO_EOS,  # type: ignore[arg-type]
            )
            assert r.usage is not None
            totals["prompt"] += r.usage.prompt_tokens
            totals["completion"] += r.usage.completion_tokens
        stream = client.chat.completions.create(
            model="alias-a",
            messages=USER,  # type: ignore[arg-type]
            max_tokens=4,
            temperature=0,
            logit_bias=NO_EOS,
            stream=True,
            stream_options={"include_usage": True},
        )
        usage = [c.usage for c in stream if c.usage is not None][0]
        totals["prompt"] += usage.prompt_tokens
        totals["completion"] += usage.completion_tokens
        done = client.completions.create(model="a", prompt="one two", max_tokens=2, logit_bias=NO_EOS)
        assert done.usage is not None
        totals["prompt"] += done.usage.prompt_tokens
        totals["completion"] += done.usage.completion_tokens
        for path in ("/v1/no/such/route", "/v1/nor/this/one"):  # no route: one label for all such paths
            assert httpx.post(url + path, json={}).status_code == 404
        assert httpx.get(url + "/v1/models/alias-a").status_code == 200
        unknown = {"model": "nope", "messages": USER}
        assert httpx.post(url + "/v1/chat/completions", json=unknown).status_code == 404
        assert httpx.post(url + "/v1/chat/completions", json={"model": "a"}).status_code == 400
        yield url, totals


def samples(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    r = httpx.get(url + "/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            found.setdefault(s.name, []).append((s.labels, s.value))
    return found


def value(found: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    hits = [v for got, v in found.get(name, []) if all(got.get(k) == w for k, w in labels.items())]
    assert len(hits) == 1, (name, labels, found.get(name))
    return hits[0]


def test_api_metrics_is_the_spec_shape_with_each_models_figures(served: tuple[str, dict[str, int]]) -> None:
    url, totals = served
    m = httpx.get(url + "/api/metrics").json()
    assert set(m["cpu"]) == {"usage", "cores"} and m["cpu"]["cores"] >= 1 and 0 <= m["cpu"]["usage"] <= 100
    assert set(m["memory"]) == {"used", "total", "percent"} and 0 < m["memory"]["used"] < m["memory"]["total"]
    assert m["gpu"] is None  # no NVML here
    assert m["models"]["loaded"] == 1 and m["models"]["total"] == 1
    a = m["models"]["items"][0]
    assert a["id"] == "a" and a["state"] == "loaded"
    assert (a["requests"], a["errors"], a["loads"], a["evictions"]) == (4, 0, 1, 0)  # the 400 named no model
    assert a["promptTokens"] == totals["prompt"] and a["completionTokens"] == totals["completion"]
    assert (a["slots"], a["activeSlots"], a["queued"], a["inFlight"]) == (1, 0, 0, 0)
    assert 0 < a["ttft"]["p50"] <= a["ttft"]["p95"]
    assert a["promptTokensPerSecond"] > 0 and a["generationTokensPerSecond"] > 0
    cache = a["memory"]["promptCache"]  # reserved beside the model, filled as slots change hands
    assert cache["limitBytes"] > 0 and cache["bytes"] > 0 and cache["entries"] >= 1
    model_ram = a["memory"]["estimate"]["ramBytes"] - cache["limitBytes"]
    assert a["memory"]["measured"]["ramBytes"] == pytest.approx(model_ram, rel=0.1)
    assert a["lastUsed"].endswith("Z") and a["loadSeconds"] > 0
    assert m["pool"]["ram"]["used"] == a["memory"]["estimate"]["ramBytes"] <= m["pool"]["ram"]["budget"]


def test_prometheus_text_parses_and_counts_what_was_sent(served: tuple[str, dict[str, int]]) -> None:
    url, totals = served
    found = samples(url)
    chat = "POST /v1/chat/completions"
    assert value(found, "claracore_requests_total", route=chat, model="a", status="200") == 3
    assert (
        value(found, "claracore_requests_total", route="POST /v1/completions", model="a", status="200") == 1
    )
    assert value(found, "claracore_requests_total", route=chat, model="", status="404") == 1
    assert value(found, "claracore_requests_total", route=chat, model="", status="400") == 1
    assert value(found, "claracore_requests_total", route="POST <unmatched>", model="", status="404") == 2
    model_route = "/v1/models/{model_id:path}"  # the route's template, not each path asked for
    assert value(found, "claracore_http_requests_total", method="GET", route=model_route, status="200") == 1
    assert value(found, "claracore_prompt_tokens_total", model="a") == totals["prompt"]
    assert value(found, "claracore_completion_tokens_total", model="a") == totals["completion"]
    assert value(found, "claracore_time_to_first_token_seconds_count", model="a") == 4
    assert value(found, "claracore_request_duration_seconds_count", route=chat, model="a") == 3
    assert (
        value(
            found, "claracore_http_requests_total", method="POST", route="/v1/chat/completions", status="200"
        )
        == 3
    )
    assert value(found, "claracore_model_loads_total", model="a", outcome="loaded") == 1
    assert value(found, "claracore_models_loaded") == 1
    assert value(found, "claracore_model_slots", model="a") == 1
    assert value(found, "claracore_model_queue_depth", model="a") == 0
    assert value(found, "claracore_pool_memory_used_bytes", device="ram") > 0
    assert value(found, "claracore_pool_memory_budget_bytes", device="ram") > 0
    items = httpx.get(url + "/api/metrics").json()["models"]["items"]
    cache = next(m for m in items if m["id"] == "a")["memory"]["promptCache"]
    assert value(found, "claracore_prompt_cache_limit_bytes", model="a") == cache["limitBytes"] > 0
    assert value(found, "claracore_prompt_cache_bytes", model="a") == cache["bytes"]
    assert value(found, "claracore_prompt_cache_entries", model="a") == cache["entries"]
    assert value(found, "claracore_prompt_cache_hits_total", model="a") == cache["hits"]
    assert value(found, "claracore_prompt_cache_lookups_total", model="a") == 4  # one per generation
    again = samples(url)  # the scrape itself is counted, by its route template
    assert value(again, "claracore_http_requests_total", method="GET", route="/metrics", status="200") >= 1


def test_activity_pages_and_filters_the_stored_requests(served: tuple[str, dict[str, int]]) -> None:
    url, totals = served

    def page(**params: Any) -> dict[str, Any]:
        r = httpx.get(url + "/api/activity", params=params)
        assert r.status_code == 200, r.text
        return r.json()

    every = page()
    assert every["total"] == 8 and every["page"] == 1 and every["pages"] == 1
    rows = every["items"]
    assert [r["time"] for r in rows] == sorted((r["time"] for r in rows), reverse=True)  # newest first
    bad, unknown = rows[0], rows[1]
    assert (bad["status"], bad["errorCode"], bad["model"]) == (400, "INVALID_REQUEST", "")
    assert (unknown["status"], unknown["errorCode"], unknown["model"]) == (404, "MODEL_NOT_FOUND", "nope")
    streamed = next(r for r in rows if r["stream"])
    assert streamed["model"] == "a" and streamed["completionTokens"] == 4  # asked for by its alias
    assert streamed["ttft"] is not None and streamed["ttft"] <= streamed["duration"]
    assert streamed["client"] == "127.0.0.1" and streamed["route"] == "POST /v1/chat/completions"
    ok = [r for r in rows if r["status"] == 200]
    assert sum(r["completionTokens"] for r in ok) == totals["completion"]
    assert sum(r["promptTokens"] for r in ok) == totals["prompt"]
    halves = [page(pageSize=4, page=1), page(pageSize=4, page=2)]
    assert [r["id"] for h in halves for r in h["items"]] == [r["id"] for r in rows]
    assert halves[0]["pages"] == 2
    assert page(pageSize=4, page=3)["items"] == []  # past the end: an empty page, not an error
    assert page(model="a")["total"] == 4 and page(status="error")["total"] == 4
    assert [(r["route"], r["model"]) for r in page(status="404")["items"]] == [
        ("POST /v1/chat/completions", "nope"),
        ("POST <unmatched>", ""),
        ("POST <unmatched>", ""),
    ]
    assert page(route="POST /v1/completions")["total"] == 1
    assert page(since=rows[1]["time"])["total"] == 2 and page(since="2999-01-01T00:00:00Z")["total"] == 0
    for params, field in (
        ({"pageSize": 0}, "pageSize"),
        ({"status": "bogus"}, "status"),
        ({"since": "soon"}, "since"),
    ):
        r = httpx.get(url + "/api/activity", params=params)
        assert (
            r.status_code == 400
            and r.json()["code"] == "INVALID_REQUEST"
            and r.json()["error"].startswith(f"{field}: ")
        ), r.text


def test_logs_filter_by_level_source_and_text_and_follow_new_lines(tiny_llama: Path) -> None:
    with running_server({"models": [], "monitoring": {"heartbeat": 0.2}}) as (url, _engine):
        logging.getLogger("claracore.test").warning("ours, a warning")
        logging.getLogger("claracore.test").error("ours, an error")
        forward_log(3, "from llama.cpp: a warning\n")  # as llama.cpp's log callback delivers it

        def lines(**params: Any) -> list[tuple[str, str, str]]:
            r = httpx.get(url + "/api/logs", params=params)
            assert r.status_code == 200, r.text
            return [(x["source"], x["level"], x["message"]) for x in r.json()["items"]]

        assert ("llama.cpp", "warning", "from llama.cpp: a warning") in lines()
        assert lines(source="llama.cpp") == [("llama.cpp", "warning", "from llama.cpp: a warning")]
        assert lines(level="error") == [("claracore", "error", "ours, an error")]
        assert lines(q="OURS", limit=1) == [("claracore", "error", "ours, an error")]  # the newest one
        assert httpx.get(url + "/api/logs", params={"level": "loud"}).status_code == 400
        with SseReader(url + "/api/logs", params={"follow": 1, "source": "claracore", "q": "ours"}) as follow:
            follow.wait(lambda f: f.event == "log" and f.payload["message"] == "ours, an error")
            forward_log(3, "ours too, but llama.cpp's\n")
            logging.getLogger("claracore.test").warning("ours, later")
            follow.wait(lambda f: f.event == "log" and f.payload["message"] == "ours, later")
            assert [f.payload["message"] for f in follow.events("log")] == [
                "ours, a warning",
                "ours, an error",
                "ours, later",
            ]


def test_config_writes_restarts_and_setup_runs_are_published(
    tmp_path: Path, tiny_llama: Path, tiny_bert: Path, tiny_rerank: Path
) -> None:
    tree = build_model_tree(tmp_path / "models", tiny_llama, tiny_bert, tiny_rerank)
    a = {"name": "a", "model": str(tiny_llama), "context_length": 128}
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"models:\n  - name: a\n    model: {tiny_llama}\n    context_length: 128\n")
    with running_server({"models": [a]}, config_path=cfg, data_dir=tmp_path / "data") as (url, _engine):
        with SseReader(url + "/api/events", params={"types": "config,setup"}) as events:
            events.wait(lambda f: f.event == "snapshot")
            assert httpx.post(url + "/api/config/model/a", json={"temperature": 0.5}).status_code == 200
            saved = events.wait(lambda f: f.event == "config").payload
            assert saved["action"] == "saved" and saved["path"] == str(cfg) and saved["needsRestart"] is True
            assert httpx.post(url + "/api/server/restart", timeout=60).status_code == 200
            applied = events.wait(lambda f: f.event == "config" and f.payload["action"] == "applied").payload
            assert applied["models"]["changed"] == ["a"]
            assert (
                httpx.post(url + "/api/config/folders", json={"folderPaths": [str(tree)]}).status_code == 200
            )
            assert httpx.post(url + "/api/config/generate-all", json=OPTIONS).status_code == 200
            done = events.wait(
                lambda f: f.event == "setup" and f.payload["status"] == "completed", timeout=60
            )
            steps = [f.payload for f in events.events("setup")]
        assert [s["progress"] for s in steps] == sorted(s["progress"] for s in steps)
        assert {"detecting", "scanning", "planning", "writing"} <= {s["status"] for s in steps}
        assert done.payload["progress"] == 100 and done.payload["result"]["configPath"] == str(cfg)
        saves = [f.payload["what"] for f in events.events("config") if f.payload["action"] == "saved"]
        assert saves == ["model a updated", "setup"]


def test_a_stream_the_client_drops_is_kept_as_cancelled_with_its_tokens(tiny_llama_4k: Path) -> None:
    a = {"name": "a", "model": str(tiny_llama_4k), "context_length": 4096}
    with running_server({"models": [a], "monitoring": {"metrics_interval": 0}}) as (url, _engine):
        body = {"model": "a", "messages": USER, "max_tokens": 3000, "logit_bias": NO_EOS, "stream": True}
        with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=60) as r:
            chunks = [line for _, line in zip(range(8), r.iter_lines(), strict=False) if line]
        assert len(chunks) == 4  # role, then three tokens (blank lines between); then the client left

        def row() -> dict[str, Any] | None:
            items = httpx.get(url + "/api/activity").json()["items"]
            return items[0] if items else None

        wait_for(lambda: row() is not None, timeout=30, what="the dropped request's row")
        dropped = row()
    assert dropped is not None and (dropped["status"], dropped["errorCode"]) == (200, "CANCELLED")
    assert 3 <= dropped["completionTokens"] < 3000 and dropped["stream"] is True
