"""Render chat prompts from the model's own Jinja template (GGUF `tokenizer.chat_template`).

Templates are written for Hugging Face's renderer, so the environment mirrors it: sandboxed,
`trim_blocks`/`lstrip_blocks`, `raise_exception`, `tojson`, `strftime_now`. A model without
a template gets ChatML, as llama.cpp's server does, rather than a refusal.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from claracore.errors import InvalidRequestError

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


#: Variables the renderer sets itself; `chat_template_kwargs` may not replace them.
RESERVED = frozenset({"messages", "add_generation_prompt", "bos_token", "eos_token", "tools"})


def _raise(message: str) -> None:
    raise InvalidRequestError(f"the chat template rejected the messages: {message}", param="messages")


def _tojson(value: Any, indent: int | None = None, ensure_ascii: bool = False, **_: Any) -> str:
    return json.dumps(value, indent=indent, ensure_ascii=ensure_ascii)


class ChatTemplate:
    """A compiled template; `render` is cheap and thread-safe."""

    def __init__(self, source: str | None, *, bos_token: str = "", eos_token: str = "") -> None:
        self.source = source or CHATML
        self.is_fallback = source is None
        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
        )
        env.globals["raise_exception"] = _raise
        env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        env.filters["tojson"] = _tojson
        try:
            self._template = env.from_string(self.source)
        except jinja2.TemplateSyntaxError as exc:
            raise ValueError(f"chat template does not compile: {exc}") from exc
        self.bos_token = bos_token
        self.eos_token = eos_token
        # Templates written for tool use read the `tools` variable; the others would drop it.
        self.knows_tools = "tools" in self.source

    def render(
        self,
        messages: list[dict[str, Any]],
        *,
        add_generation_prompt: bool = True,
        tools: list[dict[str, Any]] | None = None,
        variables: dict[str, Any] | None = None,
    ) -> str:
        """Render `messages` (OpenAI shape, content already flattened to text).

        `variables` are extra template variables (`chat_template_kwargs`, such as Qwen3's
        `enable_thinking`); they cannot replace the ones set here.

        A template that ignores `tools` gets them as a system message instead, asking for the
        bare-JSON call that `claracore.serving.tool_calls` reads, as llama-server's generic format does:
        otherwise the model would never hear of the tools it was given.
        """
        if tools and not self.knows_tools:
            messages = with_tool_instructions(messages, tools)
        try:
            return self._template.render(
                **(variables or {}),
                messages=messages,
                add_generation_prompt=add_generation_prompt,
                bos_token=self.bos_token,
                eos_token=self.eos_token,
                tools=tools,
            )
        except InvalidRequestError:
            raise
        except jinja2.TemplateError as exc:
            raise InvalidRequestError(
                f"the chat template failed on these messages: {exc}", param="messages"
            ) from exc


TOOL_INSTRUCTIONS = (
    "You can call these tools:\n{tools}\n\n"
    "To call a tool, answer with only a JSON object and nothing else: "
    '{{"name": <tool name>, "arguments": {{<argument name>: <value>, ...}}}}. '
    "Otherwise answer normally."
)


def with_tool_instructions(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """`messages` with the tools described in the system message, and earlier calls written out
    as the JSON the model is asked for, so the history reads the way it is asked to answer."""
    specs = [t.get("function", t) for t in tools if isinstance(t, dict)]
    text = TOOL_INSTRUCTIONS.format(tools=json.dumps(specs, ensure_ascii=False, indent=2))
    out = []
    for m in messages:
        calls = m.get("tool_calls")
        if calls and not m.get("content"):
            functions = [c.get("function") or {} for c in calls if isinstance(c, dict)]
            written = [{"name": f.get("name"), "arguments": f.get("arguments")} for f in functions]
            m = {**m, "content": json.dumps(written[0] if len(written) == 1 else written, ensure_ascii=False)}
        out.append(m)
    if out and out[0].get("role") == "system":
        return [{**out[0], "content": f"{out[0].get('content') or ''}\n\n{text}".strip()}, *out[1:]]
    return [{"role": "system", "content": text}, *out]
