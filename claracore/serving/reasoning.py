"""A thinking model's reasoning split from its answer, as llama-server and DeepSeek's API do.

Thinking models write their reasoning before the answer, each family in its own markers:

- `<think>...</think>` (Qwen3, QwQ, DeepSeek-R1 and its distills, SmolLM3, Phi-4-reasoning);
- `[THINK]...[/THINK]` (Magistral);
- gpt-oss's harmony channels: `<|channel|>analysis<|message|>...<|end|>`, then
  `<|start|>assistant<|channel|>final<|message|>` before the answer.

Many templates open the reasoning block themselves (the generation prompt ends with `<think>`),
so the model's text starts inside it and only the closing marker appears: `opened_by(prompt)`
tells. Only a block at the start of the answer counts, so a model that talks *about* `<think>`
later in its answer keeps its text. The answer part is what tool-call parsing then reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from claracore.errors import InvalidRequestError
from claracore.runtime.chat_template import RESERVED
from claracore.runtime.jobs import scan_stops


@dataclass(frozen=True)
class Markers:
    """One family's reasoning block: how it opens, how it closes, and any header before the answer."""

    open: str
    close: str
    answer_header: str = ""


THINK = Markers("<think>", "</think>")
MISTRAL = Markers("[THINK]", "[/THINK]")
HARMONY = Markers(
    "<|channel|>analysis<|message|>", "<|end|>", "<|start|>assistant<|channel|>final<|message|>"
)
FAMILIES = (THINK, MISTRAL, HARMONY)

#: Values of `reasoning_format`: `none` keeps the reasoning inline in `content`.
FORMATS = ("none", "auto", "deepseek")


def template_variables(
    configured: dict[str, Any], requested: dict[str, Any] | None, reasoning_effort: str | None
) -> dict[str, Any]:
    """The chat template's extra variables: the model's `chat_template_kwargs`, then the request's
    (which win), and `reasoning_effort`, which gpt-oss's template reads."""
    variables = {**configured, **(requested or {})}
    if reasoning_effort is not None:
        variables.setdefault("reasoning_effort", reasoning_effort)
    clash = sorted(k for k in variables if k in RESERVED or not k.isidentifier())
    if clash:
        raise InvalidRequestError(
            f"chat_template_kwargs cannot set {', '.join(map(repr, clash))}: "
            "the server sets those itself or they are not variable names",
            param="chat_template_kwargs",
        )
    return variables


def opened_by(prompt: str) -> Markers | None:
    """The family whose block the rendered prompt leaves open (the template forced thinking on)."""
    tail = prompt.rstrip()
    for markers in FAMILIES:
        if tail.endswith(markers.open):
            return markers
    return None


class ReasoningSplit:
    """One choice's text, fed as it streams, split into (reasoning, answer) pieces.

    Text that may be the start of a marker is held back until it is decided, so no marker leaks
    into either part, however the tokens cut it.
    """

    def __init__(self, opened: Markers | None = None) -> None:
        self.markers = opened
        # "start": before any text (a block may open); "thinking"; "header": after the block, where
        # whitespace and the answer header are dropped; "answer": the rest.
        self.state = "thinking" if opened else "start"
        self.buf = ""

    def feed(self, text: str) -> tuple[str, str]:
        """(reasoning, answer) that can be sent now."""
        self.buf += text
        reasoning, answer = "", ""
        while True:
            if self.state == "start":
                head = self.buf.lstrip()
                found = next((m for m in FAMILIES if head.startswith(m.open)), None)
                if found is not None:
                    self.markers, self.state, self.buf = found, "thinking", head[len(found.open) :]
                    continue
                if not head or any(m.open.startswith(head) for m in FAMILIES):
                    return reasoning, answer  # undecided: hold it all
                self.state = "answer"
                continue
            if self.state == "thinking":
                assert self.markers is not None
                at, hold = scan_stops(self.buf, (self.markers.close,))
                if at < 0:
                    cut = len(self.buf) - hold
                    reasoning += self.buf[:cut]
                    self.buf = self.buf[cut:]
                    return reasoning, answer
                reasoning += self.buf[:at]
                self.buf = self.buf[at + len(self.markers.close) :]
                self.state = "header"
                continue
            if self.state == "header":
                assert self.markers is not None
                head, header = self.buf.lstrip(), self.markers.answer_header
                if header and head.startswith(header):
                    head = head[len(header) :].lstrip()
                elif not head or (header and header.startswith(head)):
                    return reasoning, answer
                self.buf, self.state = head, "answer"
                continue
            answer += self.buf
            self.buf = ""
            return reasoning, answer

    def finish(self) -> tuple[str, str]:
        """What is still held, once the choice is done: an unclosed block's tail is reasoning."""
        rest, self.buf = self.buf, ""
        if self.state == "thinking":
            return rest, ""
        if self.state == "header":
            return "", rest.lstrip()
        return "", rest


def split(text: str, opened: Markers | None = None) -> tuple[str | None, str]:
    """(reasoning or None when there was no block, answer) of a whole text."""
    splitter = ReasoningSplit(opened)
    reasoning, answer = splitter.feed(text)
    more_reasoning, more_answer = splitter.finish()
    had_block = splitter.markers is not None
    return (reasoning + more_reasoning if had_block else None), answer + more_answer
