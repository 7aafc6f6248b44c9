"""GET /api/events over real HTTP: what a subscriber sees while models load, chat, get evicted and
fail; the snapshot, ?types=, Last-Event-ID replay, heartbeats, the key rule, slow subscribers."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from claracore.config import ModelSpec
from claracore.pool import loaders
from claracore.units import GIB
from tests.e2e.downloads import download_server, start, wait_bytes
from tests.e2e.server import running_server
from tests.e2e.sse_reader import Frame, SseReader, parse_frames
from tests.e2e.test_downloads_api import FILE, REPO
from tests.hub_stub import HubStub
from tests.waiting import wait_for

USER = [{"role": "user", "content": "hello"}]


def chat(url: str, model: str, **extra: Any) -> httpx.Response:
    body = {"model": model, "messages": USER, "max_tokens": 3, "temperature": 0, **extra}
    return httpx.post(url + "/v1/chat/completions", json=body, timeout=60, headers=extra.pop("headers", None))


def is_event(kind: str, **fields: Any) -> Any:
    def match(f: Frame) -> bool:
        return f.event == kind and all(f.payload.get(k) == v for k, v in fields.items())

    return match


def model_story(frames: list[Frame]) -> list[tuple[str, str]]:
    """(model, state) of each "model" event, a load's progress events counted once."""
    story: list[tuple[str, str]] = []
    for f in frames:
        step = (f.payload["model"], f.payload["state"])
        if not (step[1] == "loading" and story and story[-1] == step):
            story.append(step)
    return story


def test_a_subscriber_sees_load_chat_eviction_and_failure_in_order(
    tiny_llama: Path, tiny_llama_gqa: Path, corrupt_gguf: Path
) -> None:
    a = {"name": "a", "model": str(tiny_llama), "context_length": 128}
    b = {"name": "b", "model": str(tiny_llama_gqa), "context_length": 128}
    bad = {"name": "bad", "model": str(corrupt_gguf), "type": "llm"}
    costs = [loaders.recipe(ModelSpec(**m), gpu_offload=False).estimate.ram_bytes for m in (a, b)]
    budget = {"ram_gb": max(costs) * 1.5 / GIB, "vram_gb": 0}  # room for one of a and b, not both
    with running_server({"models": [a, b, bad], "memory": budget}) as (url, _engine):
        with SseReader(url + "/api/events", params={"types": "model,request"}) as events:
            snapshot = events.wait(lambda f: f.event == "snapshot")
            assert {m["id"]: m["state"] for m in snapshot.payload["models"]} == {
                "a": "unloaded",
                "b": "unloaded",
                "bad": "unloaded",
            }
            assert chat(url, "a").status_code == 200
            assert chat(url, "b").status_code == 200
            assert chat(url, "bad").status_code == 503
            events.wait(is_event("request", model="bad"))
            frames = events.events()
    models = [f for f in frames if f.event == "model"]
    assert model_story(models) == [
        ("a", "loading"),
        ("a", "loaded"),
        ("b", "loading"),
        ("a", "evicted"),
        ("a", "unloaded"),
        ("b", "loading"),  # llama.cpp's progress, after the eviction made room
        ("b", "loaded"),
        ("bad", "loading"),
        ("bad", "failed"),
    ]
    kinds = [f.event for f in frames[1:]]  # requests come after the load they needed
    assert kinds.index("request") > [i for i, f in enumerate(frames[1:]) if f.event == "model"][1]
    a_progress = [
        f.payload["progress"] for f in models if f.payload["model"] == "a" and "progress" in f.payload
    ]
    assert a_progress == sorted(a_progress) and a_progress[0] == 0.0 and a_progress[-1] == 1.0
    evicted = next(f.payload for f in models if f.payload["state"] == "evicted")
    assert evicted["by"] == "b" and "b" in evicted["reason"]
    loaded = next(f.payload for f in models if f.payload["state"] == "loaded")
    estimate, measured = loaded["memory"]["estimate"], loaded["memory"]["measured"]
    model_ram = estimate["ramBytes"] - loaded["memory"]["promptCacheBytes"]  # the cache fills later
    assert measured["vramBytes"] == 0 and measured["ramBytes"] == pytest.approx(model_ram, rel=0.1)
    assert "truncated" in next(f.payload for f in models if f.payload["state"] == "failed")["error"]
    requests = [f.payload for f in frames if f.event == "request"]
    assert [(r["model"], r["status"], r["errorCode"]) for r in requests] == [
        ("a", 200, None),
        ("b", 200, None),
        ("bad", 503, "MODEL_LOAD_FAILED"),
    ]
    assert requests[0]["route"] == "POST /v1/chat/completions" and requests[0]["completionTokens"] == 3
    assert all(f.id is not None for f in frames[1:]) and [f.id for f in frames] == sorted(
        f.id for f in frames
    )


def test_the_snapshot_carries_states_log_lines_and_setup_and_types_filter_it(tiny_llama: Path) -> None:
    a = {"name": "a", "model": str(tiny_llama), "context_length": 128}
    with running_server({"models": [a]}) as (url, _engine):
        assert chat(url, "a").status_code == 200
        logging.getLogger("claracore.test").warning("a line for the snapshot")
        with SseReader(url + "/api/events") as every:
            snap = every.wait(lambda f: f.event == "snapshot").payload
        assert set(snap) == {"models", "logs", "downloads", "setup", "metrics"}
        assert snap["models"][0]["id"] == "a" and snap["models"][0]["state"] == "loaded"
        assert any(line["message"] == "a line for the snapshot" for line in snap["logs"])
        assert snap["setup"]["status"] == "idle" and snap["downloads"] == []
        assert snap["metrics"]["models"]["loaded"] == 1
        with SseReader(url + "/api/events", params={"types": ["log", "setup"]}) as some:
            assert set(some.wait(lambda f: f.event == "snapshot").payload) == {"logs", "setup"}
            logging.getLogger("claracore.test").warning("only logs come through")
            chat(url, "a")
            some.wait(is_event("log", message="only logs come through"))
            assert {f.event for f in some.events()} == {"snapshot", "log"}


def test_an_unknown_type_is_a_400_listing_the_valid_ones(tiny_llama: Path) -> None:
    with running_server({"models": []}) as (url, _engine):
        r = httpx.get(url + "/api/events", params={"types": "model,nope"})
        assert r.status_code == 400
        body = r.json()
        assert body["code"] == "INVALID_REQUEST" and "nope" in body["error"]
        assert body["details"]["validTypes"] == [
            "model",
            "log",
            "request",
            "metrics",
            "download",
            "setup",
            "config",
        ]
        assert httpx.get(url + "/api/events", headers={"Last-Event-ID": "x1"}).status_code == 400


def test_last_event_id_replays_what_the_ring_still_holds(tiny_llama: Path) -> None:
    a = {"name": "a", "model": str(tiny_llama), "context_length": 128}
    with running_server({"models": [a]}) as (url, engine):
        with SseReader(url + "/api/events", params={"types": "model"}) as first:
            mark = first.wait(lambda f: f.event == "snapshot").id
        assert chat(url, "a").status_code == 200  # while nobody listens: loading..., loaded
        engine.events.publish("log", {"message": "not a model event"})
        with SseReader(
            url + "/api/events", params={"types": "model"}, headers={"Last-Event-ID": str(mark)}
        ) as again:
            loaded = again.wait(is_event("model", state="loaded"))
            replayed = again.events()
        assert replayed[0].event == "model" and replayed[0].payload["state"] == "loading"  # no snapshot
        assert all(f.event == "model" for f in replayed) and replayed[-1] is loaded
        assert replayed[0].id > mark
        # an id the ring no longer reaches back to (or from an earlier run) gets a snapshot
        for stale in ("0", str(engine.events.last_id + 100)):
            for i in range(1100):
                engine.events.publish("log", {"n": i})  # push the ring past id 1
            with SseReader(url + "/api/events", headers={"Last-Event-ID": stale}) as late:
                assert late.wait(lambda f: f.event is not None).event == "snapshot"


def test_the_key_is_taken_from_the_authorization_header_only(tiny_llama: Path) -> None:
    with running_server({"models": [], "api_key": "sekrit-key-123"}) as (url, _engine):
        assert httpx.get(url + "/api/events").status_code == 401
        assert httpx.get(url + "/api/events", params={"api_key": "sekrit-key-123"}).status_code == 401
        assert httpx.get(url + "/api/metrics").status_code == 401
        assert httpx.get(url + "/metrics").status_code == 401
        with SseReader(url + "/api/events", headers={"Authorization": "Bearer sekrit-key-123"}) as ok:
            assert ok.wait_status() == 200
            ok.wait(lambda f: f.event == "snapshot")


def test_a_quiet_stream_sends_heartbeats_and_a_closed_one_is_dropped_at_once(tiny_llama: Path) -> None:
    with running_server({"models": [], "monitoring": {"heartbeat": 0.1, "metrics_interval": 0}}) as (
        url,
        engine,
    ):
        before = engine.events.subscribers  # the activity log's own subscription
        with SseReader(url + "/api/events", params={"types": "download"}) as quiet:
            quiet.wait(lambda f: f.comment == "heartbeat")
            assert engine.events.subscribers == before + 1
        wait_for(lambda: engine.events.subscribers == before, timeout=10, what="the subscription to go")


def test_a_subscriber_that_never_reads_is_told_how_many_it_missed(tiny_llama: Path) -> None:
    a = {"name": "a", "model": str(tiny_llama), "context_length": 128}
    with running_server({"models": [a], "monitoring": {"metrics_interval": 0}}) as (url, engine):
        with httpx.Client(timeout=60) as client, client.stream("GET", url + "/api/events") as stalled:
            assert stalled.status_code == 200
            # far more than the socket buffers and the 1000-event queue hold, while it reads nothing
            line = "x" * 4000
            for i in range(8000):
                engine.events.publish("log", {"n": i, "message": line})
            assert chat(url, "a").status_code == 200  # the server is not held up by it
            missed, logged, pending = 0, [], []
            for text in stalled.iter_lines():  # read now, to the newest event published
                if text:
                    pending.append(text)
                    continue
                frame, pending = parse_frames(pending), []
                if frame.event == "missed":
                    missed += frame.payload["count"]
                elif frame.event == "log" and "n" in frame.payload:
                    logged.append(frame.payload["n"])
                    if logged[-1] == 7999:
                        break
    assert missed > 0 and logged == sorted(logged)  # the oldest were dropped, the order kept
    assert len(logged) + missed >= 8000  # each one delivered or counted, none lost silently


def test_a_download_under_way_is_in_the_snapshot_and_its_bytes_are_counted(
    tiny_llama: Path, tmp_path: Path
) -> None:
    model_bytes = tiny_llama.read_bytes()
    with HubStub() as hub:
        _download_while_subscribed(hub, model_bytes, tmp_path)


def test_bytes_that_arrive_and_then_stall_are_published(tiny_llama: Path, tmp_path: Path) -> None:
    """Progress events are throttled to four a second; the last bytes of a burst still go out
    (a transfer that stalls must not leave a progress bar on the count from before the burst)."""
    with HubStub() as hub:
        hub.add(REPO, {FILE: tiny_llama.read_bytes()})
        hub.hold_after = 100_000
        with (
            download_server(hub, tmp_path) as (url, _engine, _home),
            SseReader(url + "/api/events", params={"types": "download"}) as events,
        ):
            events.wait(lambda f: f.event == "snapshot")
            d = start(url, {"repo": REPO, "filename": FILE, "autoConfigure": False})
            held = events.wait(
                lambda f: f.event == "download" and f.payload["bytesDone"] >= 100_000, timeout=10
            )
            assert held.payload["state"] == "downloading" and held.payload["event"] == "progress"
            hub.release()
            events.wait(is_event("download", id=d["id"], state="completed"))


def _download_while_subscribed(hub: HubStub, model_bytes: bytes, tmp_path: Path) -> None:
    hub.add(REPO, {FILE: model_bytes})
    hub.hold_after = 100_000
    with download_server(hub, tmp_path) as (url, _engine, _home):
        d = start(url, {"repo": REPO, "filename": FILE, "autoConfigure": False})
        wait_bytes(url, d["id"], 100_000)
        with SseReader(url + "/api/events", params={"types": "download"}) as events:
            (listed,) = events.wait(lambda f: f.event == "snapshot").payload["downloads"]
            assert (listed["id"], listed["state"], listed["bytesDone"]) == (d["id"], "downloading", 100_000)
            hub.release()
            events.wait(is_event("download", id=d["id"], state="completed"))
        with SseReader(url + "/api/events", params={"types": "download"}) as later:
            assert later.wait(lambda f: f.event == "snapshot").payload["downloads"] == []  # over: not listed
        found = {
            s.name: s.value
            for fam in text_string_to_metric_families(httpx.get(url + "/metrics").text)
            for s in fam.samples
        }
    assert found["claracore_download_bytes_total"] == len(model_bytes)
