"""Two `claracore serve` processes behind HAProxy with the shipped deploy/haproxy.cfg.

They share one config file and one data directory (SQLite store), as docs/scaling.md describes:
the first is the leader, the second a follower. Through the proxy: chats spread over both
replicas and give the same greedy answer, a sticky hint (`X-Session-Id` or OpenAI's `user`)
keeps a conversation on one replica, concurrent config edits and store writes landing on both
processes all survive, and downloads go to the leader, while a follower refuses them by name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.e2e.downloads import wait_state
from tests.e2e.server import free_port
from tests.hub_stub import HubStub
from tests.processes import stop
from tests.tiny_models import make_tiny_llama
from tests.waiting import wait_for

HAPROXY_CFG = Path(__file__).parents[2] / "deploy" / "haproxy.cfg"
EDITS = 8

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes and signals"),
    pytest.mark.skipif(
        shutil.which("haproxy") is None, reason="haproxy is not installed (scripts/test.sh installs it)"
    ),
]


@dataclass
class Cluster:
    proxy: str
    leader: str
    follower: str
    root: Path
    hub: HubStub

    def chat(self, content: str, headers: dict[str, str] | None = None, **extra: Any) -> tuple[str, str]:
        """(the replica that answered, the answer) of a greedy chat through the proxy."""
        body = {"model": "tiny", "messages": [{"role": "user", "content": content}], "max_tokens": 8}
        body.update(temperature=0, **extra)
        r = httpx.post(self.proxy + "/v1/chat/completions", json=body, headers=headers, timeout=60)
        assert r.status_code == 200, r.text
        return r.headers["x-served-by"], r.json()["choices"][0]["message"]["content"]


def _up(url: str, proc: subprocess.Popen[bytes] | None = None) -> bool:
    if proc is not None:
        assert proc.poll() is None, f"{proc.args} exited with {proc.returncode}"
    try:
        return httpx.get(url + "/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("replicas")
    model = make_tiny_llama(root / "tiny.gguf")
    config = root / "config.yaml"
    config.write_text(f"models:\n  - name: tiny\n    model: {model}\n")
    ports = {"proxy": free_port(), "leader": free_port(), "follower": free_port()}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    procs: list[subprocess.Popen[bytes]] = []
    with HubStub() as hub, contextlib.ExitStack() as logs:
        env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_TOKEN": "", "CLARACORE_HOME": str(root / "home")}
        try:
            # Both start at once on a new data directory: they race through the store's migration.
            for name in ("leader", "follower"):
                role = ["--role", "follower"] if name == "follower" else []
                argv = [sys.executable, "-m", "claracore", "serve", "--config", str(config)]
                procs.append(
                    subprocess.Popen(
                        [*argv, "--port", str(ports[name]), "--log-level", "warning", *role],
                        env=env,
                        stdout=subprocess.DEVNULL,
                        stderr=logs.enter_context(open(root / f"{name}.log", "wb")),
                    )
                )
            for name, proc in zip(("leader", "follower"), procs, strict=True):
                wait_for(lambda u=urls[name], p=proc: _up(u, p), timeout=90, what=f"the {name} to start")
            proxy_env = {f"CLARACORE_{name.upper()}": f"127.0.0.1:{port}" for name, port in ports.items()}
            procs.append(
                subprocess.Popen(
                    ["haproxy", "-db", "-f", str(HAPROXY_CFG)],
                    env={**os.environ, **proxy_env},
                    stdout=subprocess.DEVNULL,
                    stderr=logs.enter_context(open(root / "haproxy.log", "wb")),
                )
            )
            wait_for(lambda: _up(urls["proxy"], procs[-1]), timeout=30, what="haproxy to start")
            yield Cluster(urls["proxy"], urls["leader"], urls["follower"], root, hub)
        finally:
            for proc in reversed(procs):
                stop(proc)


def test_chats_spread_over_both_replicas_with_the_same_greedy_answer(cluster: Cluster) -> None:
    answers = [cluster.chat("Tell me a story") for _ in range(6)]
    assert {served for served, _ in answers} == {"leader", "follower"}
    assert len({text for _, text in answers}) == 1 and answers[0][1]


def test_a_session_header_keeps_a_conversation_on_one_replica(cluster: Cluster) -> None:
    placed: dict[str, set[str]] = {}
    for session in ("alice", "bob", "carol", "dave", "erin", "frank"):
        placed[session] = {cluster.chat("Hi", {"X-Session-Id": session})[0] for _ in range(4)}
    assert all(len(servers) == 1 for servers in placed.values()), placed
    assert set().union(*placed.values()) == {"leader", "follower"}  # the hash spreads sessions


def test_the_openai_user_field_is_a_sticky_hint_too(cluster: Cluster) -> None:
    client = openai.OpenAI(base_url=cluster.proxy + "/v1", api_key="none", max_retries=0)
    placed: dict[str, set[str]] = {}
    for user in ("u-1", "u-2", "u-3", "u-4", "u-5", "u-6"):
        placed[user] = set()
        for _ in range(4):
            messages: Any = [{"role": "user", "content": "Hi"}]
            raw = client.chat.completions.with_raw_response.create(
                model="tiny", messages=messages, max_tokens=4, temperature=0, user=user
            )
            assert raw.parse().choices[0].message.content is not None
            placed[user].add(raw.headers["x-served-by"])
    assert all(len(servers) == 1 for servers in placed.values()), placed
    assert set().union(*placed.values()) == {"leader", "follower"}


def test_concurrent_config_edits_on_both_replicas_all_survive(cluster: Cluster) -> None:
    files = [make_tiny_llama(cluster.root / f"extra-{i}.gguf") for i in range(EDITS)]

    def add(i: int) -> httpx.Response:
        body = {"modelPath": str(files[i]), "modelName": f"extra-{i}"}
        return httpx.post(cluster.proxy + "/api/config/add-model", json=body, timeout=60)

    with ThreadPoolExecutor(EDITS) as pool:
        answers = list(pool.map(add, range(EDITS)))
    assert [r.status_code for r in answers] == [200] * EDITS, [r.text for r in answers]
    assert {r.headers["x-served-by"] for r in answers} == {"leader", "follower"}
    for replica in (cluster.leader, cluster.follower):  # both read the one file
        text = httpx.get(replica + "/api/config", timeout=10).text
        assert all(f"extra-{i}" in text for i in range(EDITS)), text


def test_concurrent_store_writes_on_both_replicas_all_survive(cluster: Cluster) -> None:
    folders = [cluster.root / f"folder-{i}" for i in range(EDITS)]
    for folder in folders:  # each scan writes the folder and its model file in one transaction
        folder.mkdir()
        make_tiny_llama(folder / "m.gguf")

    def track(folder: Path) -> httpx.Response:
        body = {"folderPaths": [str(folder)]}
        return httpx.post(cluster.proxy + "/api/config/folders", json=body, timeout=60)

    with ThreadPoolExecutor(EDITS) as pool:
        answers = list(pool.map(track, folders))
    assert [r.status_code for r in answers] == [200] * EDITS, [r.text for r in answers]
    assert {r.headers["x-served-by"] for r in answers} == {"leader", "follower"}
    for replica in (cluster.leader, cluster.follower):
        listed = httpx.get(replica + "/api/config/folders", timeout=10).json()["folders"]
        assert {f["path"]: f["modelCount"] for f in listed} == {str(f): 1 for f in folders}


def test_downloads_run_on_the_leader_and_a_follower_refuses_them(cluster: Cluster) -> None:
    data = make_tiny_llama(cluster.root / "hub.gguf").read_bytes()
    cluster.hub.add("org/replica-GGUF", {"replica-Q4_K_M.gguf": data})
    body = {"repo": "org/replica-GGUF", "filename": "replica-Q4_K_M.gguf", "modelId": "fetched"}
    r = httpx.post(cluster.proxy + "/api/models/download", json=body, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["x-served-by"] == "leader"
    done = wait_state(cluster.proxy, r.json()["id"], "completed")
    assert Path(done["destination"]).read_bytes() == data
    listed = [httpx.get(cluster.proxy + "/api/models/downloads", timeout=10) for _ in range(3)]
    assert all([d["id"] for d in x.json()["downloads"]] == [done["id"]] for x in listed)
    refused = httpx.get(cluster.follower + "/api/models/downloads", timeout=10)
    assert refused.status_code == 409 and refused.json()["code"] == "NOT_LEADER"
    assert "leader" in refused.json()["error"]
    # The leader registered the model in the shared config file; the follower reads the same file.
    assert "fetched" in httpx.get(cluster.follower + "/api/config", timeout=10).text
