"""`claracore logs` and `claracore top`: a running server's log and figures, in the terminal.

Both are clients of the HTTP API (`GET /api/logs`, `GET /api/metrics`), so they show what the UI
shows and work against any server they can reach. The server is the config's host and port
unless `--url` says otherwise, and the key is `--api-key`, else the config's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx

from claracore.cli.common import CliError, command_config, human_size, say

CLEAR = "\x1b[H\x1b[2J"  # cursor home, clear the screen: `top` redraws in place


def _server(args: argparse.Namespace) -> tuple[str, dict[str, str]]:
    """The base URL and the auth header to use."""
    config, _source = command_config(args)
    url = args.url
    if not url:
        host = "127.0.0.1" if config.host in ("0.0.0.0", "::", "") else config.host
        url = f"http://[{host}]:{config.port}" if ":" in host else f"http://{host}:{config.port}"
    key = args.api_key or config.api_key
    return url.rstrip("/"), {"Authorization": f"Bearer {key}"} if key else {}


def _check(r: httpx.Response, url: str) -> None:
    if r.status_code == 401:
        raise CliError(f"{url} needs an API key: pass --api-key KEY (or set api_key in the config)")
    if r.status_code != 200:
        try:
            message = r.json().get("error")
        except ValueError:
            message = r.text[:200]
        raise CliError(f"{url} answered {r.status_code}: {message}")


@contextlib.contextmanager
def _reaching(url: str) -> Iterator[None]:
    try:
        yield
    except httpx.TransportError as exc:
        raise CliError(f"cannot reach ClaraCore at {url} ({exc}); is `claracore serve` running?") from None


# ---------------------------------------------------------------- logs


def _line(item: dict[str, Any]) -> str:
    when = str(item.get("time", ""))[11:23]  # HH:MM:SS.mmm of the ISO time
    return (
        f"{when} {str(item.get('level', '')).upper():<8} {item.get('source', '')}: {item.get('message', '')}"
    )


def _frames(lines: Iterator[str]) -> Iterator[tuple[str, Any]]:
    """(event name, its data object) of each SSE frame; comments (heartbeats) are skipped."""
    event, data = "", ""
    for line in lines:
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data = line[5:].strip()
        elif not line and data:
            yield event, json.loads(data).get("data")
            event, data = "", ""


def cmd_logs(args: argparse.Namespace) -> int:
    """Print the server's last log lines; with -f, keep printing new ones until Ctrl+C."""
    url, headers = _server(args)
    params: dict[str, Any] = {"limit": args.lines}
    for name in ("level", "source", "grep"):
        if getattr(args, name):
            params["q" if name == "grep" else name] = getattr(args, name)
    with _reaching(url):
        if not args.follow:
            r = httpx.get(f"{url}/api/logs", params=params, headers=headers, timeout=30)
            _check(r, url)
            for item in r.json()["items"]:
                say(_line(item))
            return 0
        timeout = httpx.Timeout(30, read=None)
        with (
            contextlib.suppress(KeyboardInterrupt),
            httpx.stream(
                "GET", f"{url}/api/logs", params={**params, "follow": 1}, headers=headers, timeout=timeout
            ) as r,
        ):
            if r.status_code != 200:
                r.read()
                _check(r, url)
            for event, data in _frames(r.iter_lines()):
                if event == "log":
                    say(_line(data))
                elif event == "missed":
                    say(f"... {data['count']} lines missed (the terminal fell behind)", err=True)
    return 0


# ---------------------------------------------------------------- top


def _gb(used: float, total: float) -> str:
    return f"{used:.1f}/{total:.1f} GB"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _secs(ttft: dict[str, float | None]) -> str:
    p50, p95 = ttft.get("p50"), ttft.get("p95")
    return "-" if p50 is None or p95 is None else f"{p50:.2f}/{p95:.2f}"


def render(metrics: dict[str, Any], url: str) -> str:
    """One screen of `top`: the machine, the pool, then a row per model."""
    cpu, memory, gpu, pool = metrics["cpu"], metrics["memory"], metrics.get("gpu"), metrics["pool"]
    head = (
        f"ClaraCore at {url}   cpu {cpu['usage']:.1f}% of {cpu['cores']} cores   "
        f"ram {_gb(memory['used'], memory['total'])} ({memory['percent']:.0f}%)"
    )
    if gpu:
        head += f"   gpu {gpu['usage']:.0f}% {_gb(gpu['memoryUsed'], gpu['memoryTotal'])}"
    models = metrics["models"]
    budget = "   ".join(
        f"{device} {human_size(pool[device]['used'])} of {human_size(pool[device]['budget'])}"
        for device in ("vram", "ram")
        if pool[device]["budget"]
    )
    lines = [head, f"models {models['loaded']} loaded of {models['total']}   pool {budget}", ""]
    rows = [
        [
            "MODEL",
            "TYPE",
            "STATE",
            "SLOTS",
            "QUEUE",
            "REQS",
            "ERRS",
            "GEN TOK/S",
            "PROMPT TOK/S",
            "TTFT p50/p95 s",
        ]
    ]
    for m in models["items"]:
        slots = "-" if m["slots"] is None else f"{m['activeSlots']}/{m['slots']}"
        rows.append(
            [
                m["id"],
                m["type"],
                m["state"],
                slots,
                "-" if m["queued"] is None else str(m["queued"]),
                str(m["requests"]),
                str(m["errors"]),
                _rate(m["generationTokensPerSecond"]),
                _rate(m["promptTokensPerSecond"]),
                _secs(m["ttft"]),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


def cmd_top(args: argparse.Namespace) -> int:
    """Models, slots and tokens/s of a running server, redrawn every --interval seconds."""
    url, headers = _server(args)
    in_place = sys.stdout.isatty() and not args.once
    with (
        _reaching(url),
        httpx.Client(headers=headers, timeout=30) as client,
        contextlib.suppress(KeyboardInterrupt),
    ):
        while True:
            r = client.get(f"{url}/api/metrics")
            _check(r, url)
            say((CLEAR if in_place else "") + render(r.json(), url))
            if args.once:
                break
            time.sleep(args.interval)
            if not in_place:
                say()  # a blank line between frames when the output is not a terminal
    return 0
