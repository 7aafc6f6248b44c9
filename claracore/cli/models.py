"""`claracore models` and `claracore chat`: the configured models, listed or talked to in-process."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from pathlib import Path

from claracore.cli.common import command_config, human_size, say
from claracore.engine import AsyncEngine, Engine
from claracore.errors import ClaraCoreError
from claracore.protocol import openai as p


def _memory(info: p.ModelInfo) -> str:
    """The pool's figure: resident when loaded, else what a load would budget for."""
    if info.memory is None:
        return "-"
    vram, ram = info.memory.vram_bytes, info.memory.ram_bytes
    return human_size(vram + ram) + (f" ({human_size(vram)} VRAM)" if vram else "")


def cmd_models(args: argparse.Namespace) -> int:
    """Print a table of the configured models without loading any of them."""
    config, source = command_config(args)
    engine = AsyncEngine(config)  # not Engine: its start() would preload models
    try:
        listing = engine.models()
    finally:
        asyncio.run(engine.close())
    rows = [["NAME", "TYPE", "STATE", "MEMORY", "ALIASES", "FILE"]]
    for info, spec in zip(listing.data, config.models, strict=True):
        state = f"{info.state}: {info.error}" if info.error else info.state
        missing = "" if Path(spec.model).exists() else " (missing)"
        rows.append(
            [info.id, info.type, state, _memory(info), ", ".join(info.aliases) or "-",
             spec.model + missing]
        )  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        say("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1])
    say(f"{len(config.models)} model(s) from {source}", err=True)
    return 0


def _reply(engine: Engine, args: argparse.Namespace, history: list[dict[str, str]]) -> str:
    """Stream one answer to stdout as it is generated; Ctrl+C stops it (what came stays)."""
    sampling = {
        k: v for k, v in (("temperature", args.temperature), ("max_tokens", args.max_tokens)) if v is not None
    }
    stream = engine.chat(model=args.model, messages=history, stream=True, **sampling)
    if isinstance(stream, p.ChatCompletion):  # cannot happen with stream=True; narrows the type
        return stream.choices[0].message.content or ""
    parts: list[str] = []
    try:
        for chunk in stream:
            text = chunk.choices[0].delta.content if chunk.choices else None
            if text:
                parts.append(text)
                say(text, end="")
    except KeyboardInterrupt:
        say(" [stopped]", end="")
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()  # cancels the generation in the engine at once when it stopped early
    say()
    return "".join(parts)


def cmd_chat(args: argparse.Namespace) -> int:
    """A multi-turn terminal chat with one model, in-process; /reset, /exit, EOF."""
    config, _ = command_config(args)
    interactive = sys.stdin.isatty()
    if interactive:
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401  (line editing and history for input())
    system = [{"role": "system", "content": args.system}] if args.system else []
    with Engine(config) as engine:
        name = engine.aio.model(args.model).id  # ModelNotFoundError lists what exists
        say(f"loading {name}...", err=True)
        engine.load(name)
        say(f"chatting with {name}: /reset clears the conversation, /exit (or Ctrl+D) quits", err=True)
        history = list(system)
        while True:
            try:
                line = input(">>> " if interactive else "").strip()
            except (EOFError, KeyboardInterrupt):
                break
            if line in ("/exit", "/quit", "/bye"):
                break
            if line == "/reset":
                history = list(system)
                say("(conversation cleared)", err=True)
                continue
            if not line:
                continue
            history.append({"role": "user", "content": line})
            try:
                answer = _reply(engine, args, history)
            except ClaraCoreError as exc:  # e.g. the conversation outgrew the context
                history.pop()
                say(f"error: {exc.message} (/reset starts over)", err=True)
                continue
            history.append({"role": "assistant", "content": answer})
    return 0
