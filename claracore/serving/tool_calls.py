"""Tool calls found in a model's text, turned into OpenAI's `tool_calls`.

Chat templates tell a model about `tools`, but the model answers in text, and each family writes
its calls its own way. The three shapes the common open models use are recognised:

- `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` (Hermes, Qwen 2.5/3, SmolLM3),
  one block per call, possibly after some prose;
- `[TOOL_CALLS]` followed by a JSON list of calls (Mistral);
- a bare JSON object or list of them, or one after `<|python_tag|>` (Llama 3.1+), with
  "parameters" or "arguments".

Only names the request declared count, so a plain JSON answer is never mistaken for a call.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from claracore.runtime.jobs import scan_stops

#: Where a call can begin; text before one streams as content, from one on it is held back.
MARKERS = ("<tool_call>", "[TOOL_CALLS]", "<|python_tag|>")

_BLOCK = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)


@dataclass(frozen=True)
class ToolCall:
    """One call: the function's name and its arguments as a JSON string, as OpenAI sends them."""

    id: str
    name: str
    arguments: str


def declared_names(tools: list[dict[str, Any]] | None) -> frozenset[str]:
    """The function names a request's `tools` declare."""
    names = set()
    for tool in tools or []:
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            names.add(function["name"])
    return frozenset(names)


def may_start_call(text: str) -> bool:
    """Whether `text` (an answer so far) could be a bare JSON call, so it must not stream yet."""
    return text.lstrip()[:1] in ("{", "[")


def parse(text: str, names: frozenset[str]) -> tuple[str | None, list[ToolCall]]:
    """(content left over, calls) for a whole answer; no calls leaves the text as it was."""
    if not names:
        return text, []
    if "<tool_call>" in text:
        head = text[: text.index("<tool_call>")]
        calls = _calls([_json(m.group(1)) for m in _BLOCK.finditer(text)], names)
        return (_content(head), calls) if calls else (text, [])
    for marker in ("[TOOL_CALLS]", "<|python_tag|>"):
        if marker in text:
            head, _, body = text.partition(marker)
            calls = _calls(_listed(_json(body)), names)
            return (_content(head), calls) if calls else (text, [])
    if may_start_call(text):
        calls = _calls(_listed(_json(text)), names)
        if calls:
            return None, calls
    return text, []


def _json(raw: str) -> Any:
    raw = raw.strip()
    try:
        return json.loads(raw)
    except ValueError:
        # Several objects one after another, as some models write parallel calls.
        decoder, found, i = json.JSONDecoder(), [], 0
        while i < len(raw):
            try:
                value, i = decoder.raw_decode(raw, i)
            except ValueError:
                return None
            found.append(value)
            while i < len(raw) and raw[i] in " \t\r\n,;":
                i += 1
        return found or None


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _calls(values: list[Any], names: frozenset[str]) -> list[ToolCall]:
    """Calls from decoded JSON values; any value that is not a call to a declared tool voids all."""
    calls = []
    for value in (v for item in values for v in _listed(item)):
        if not isinstance(value, dict) or value.get("name") not in names:
            return []
        args = value.get("arguments", value.get("parameters", {}))
        arguments = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
        calls.append(ToolCall(id=f"call_{uuid.uuid4().hex[:24]}", name=value["name"], arguments=arguments))
    return calls


def _content(head: str) -> str | None:
    return head.strip() or None


class CallWatch:
    """One streamed choice of a request with tools: text flows until a call may be starting.

    From a call marker on (or from the first character, when the answer opens like bare JSON)
    the text is held, and at the end it is either calls or, if it did not parse as any, content.
    """

    def __init__(self, names: frozenset[str]) -> None:
        self.names = names
        self.pending = ""  # text that may begin a marker, or the answer's leading whitespace
        self.held: str | None = None  # set once a call may have started
        self.started = False  # some content has gone out

    def feed(self, text: str) -> str:
        """What of `text` can be sent now."""
        if self.held is not None:
            self.held += text
            return ""
        buf = self.pending + text
        if not self.started:
            if not buf.strip():
                self.pending = buf
                return ""
            if may_start_call(buf):
                self.held, self.pending = buf, ""
                return ""
        at, hold = scan_stops(buf, MARKERS)
        if at >= 0:
            self.held, self.pending = buf[at:], ""
            out = buf[:at]
        else:
            out, self.pending = buf[: len(buf) - hold], buf[len(buf) - hold :]
        self.started = self.started or bool(out)
        return out

    def finish(self) -> tuple[str, list[ToolCall]]:
        """(content still to send, calls) once the choice is done."""
        if self.held is None:
            return self.pending, []
        content, calls = parse(self.held, self.names)
        return (content or "", calls) if calls else (self.held + self.pending, [])
