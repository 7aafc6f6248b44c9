"""config.yaml's JSON schema with every key's meaning, for editors (`GET /api/config/schema`).

Types, defaults and valid ranges come from the pydantic models the server validates with
(`config.Config` and its sections), so an editor's hints can never drift from what a save
accepts. Meanings live here, one line per key, because they are for people reading a form, not
for the validator; `test_config_schema` fails when a key has none or a meaning names no key.
Keys that take several shapes validate through one plain function (`"auto"` or a number, say),
which pydantic cannot describe, so their shapes are written out here too.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from claracore.config import Config

_ORIGIN = {"type": "string", "minLength": 1}
_GB_OR_AUTO = {"anyOf": [{"type": "number", "minimum": 0, "maximum": 1 << 20}, {"const": "auto"}]}

#: The shapes pydantic leaves empty (fields with a PlainValidator), by section and key.
SHAPES: dict[str, dict[str, dict[str, Any]]] = {
    "Config": {"cors": {"anyOf": [{"type": "boolean"}, {"type": "array", "items": _ORIGIN}]}},
    "MemoryBudget": {"vram_gb": _GB_OR_AUTO, "ram_gb": _GB_OR_AUTO},
    "ModelSpec": {"flash_attn": {"anyOf": [{"type": "boolean"}, {"const": "auto"}]}},
}

#: What each key means, by section. Kept to a line: the schema already says type and range.
DESCRIPTIONS: dict[str, dict[str, str]] = {
    "Config": {
        "host": "The address the server listens on; 127.0.0.1 keeps it on this machine, 0.0.0.0 opens it "
        "to the network. Applies after a hard restart.",
        "port": "The TCP port the server listens on. Applies after a hard restart.",
        "cors": "Which web origins may call the API from a browser: false (none), true (any), or a list "
        "of origins. Applies after a hard restart.",
        "api_key": "The key every /v1 and /api request must carry when set (shown masked).",
        "models_dir": "A folder of models served as they are found, without listing each one here.",
        "max_upload_mb": "The largest audio file a transcription request may upload, in MB.",
        "max_body_mb": "The largest request body other than an upload (JSON, YAML), in MB; larger is a 413.",
        "loop_nice": "How many nice steps (Linux, 0-19) the HTTP server's event loop runs below the models' "
        "compute: a few percent more tokens/s with many streams on few cores, less for a single one; "
        "0: same priority. Applies after a hard restart.",
        "memory": "The memory budget the model pool loads models into.",
        "monitoring": "What the server keeps about itself: request history, log lines, metrics.",
        "media": "Images and audio in chat requests: whether image URLs are fetched; size and time limits.",
        "models": "The models this server serves.",
        "workers": "llama.cpp RPC workers (host:port, started with `claracore worker`) that every model "
        "without its own rpc list may split its offloaded layers over.",
    },
    "MemoryBudget": {
        "vram_gb": "GPU memory the pool may fill, in GB; auto: the detected total minus the margin.",
        "ram_gb": "System memory the pool may fill, in GB; auto: the detected total minus the margin.",
        "margin_gb": "GB left free for the rest of the machine when a budget is auto.",
    },
    "MediaLimits": {
        "remote_urls": "Fetch http(s) image URLs in chat requests; off: only data: URLs are accepted.",
        "max_mb": "The largest image or audio clip a chat request may bring, in MB.",
        "fetch_timeout": "Seconds a remote image fetch may take in all before the request is a 400.",
    },
    "LoraAdapter": {
        "path": "A LoRA adapter file (GGUF) made for this model; relative paths start at this file's folder.",
        "scale": "How strongly the adapter applies; requests may change it by the adapter's index.",
    },
    "Monitoring": {
        "activity_rows": "How many finished requests the activity history keeps.",
        "log_lines": "How many log lines the server keeps for the logs view.",
        "retention_days": "Days history and logs are kept; 0 keeps them until the row caps apply.",
        "metrics_interval": "Seconds between the metrics the live event stream sends; 0 sends none.",
        "heartbeat": "Seconds of quiet before an event stream sends a keep-alive comment.",
    },
    "ModelSpec": {
        "name": "The name requests use to pick this model (the `model` field of a request).",
        "backend": "Which llama.cpp backend runs it; auto picks the best one built in.",
        "model": "The model file (GGUF, a Piper .onnx) or folder (Whisper); relative paths start at "
        "this config file's folder.",
        "type": "What kind of model it is; empty: read from the file.",
        "embedding": "An older way to say type: embedding.",
        "aliases": "Other names that reach this model (each unique across all models).",
        "mmproj": "A projector file that lets a chat model read images (and audio, when it encodes it).",
        "context_length": "Tokens each sequence can hold, prompt and answer together; empty: the "
        "trained context, at most 4096. More costs memory for the KV cache.",
        "gpu_layers": "Layers offloaded to the GPU; -1 puts every layer there, 0 runs on the CPU.",
        "batch_size": "Prompt tokens processed per step; larger reads long prompts faster and costs "
        "compute memory.",
        "threads": "CPU threads for generation; empty: every core.",
        "parallel": "Sequences decoded together (continuous batching); each has its own context.",
        "cache_type_k": "Precision of the KV cache's keys; q8_0 halves its memory with little loss.",
        "cache_type_v": "Precision of the KV cache's values; quantised values need flash attention.",
        "flash_attn": "Flash attention: faster and leaner attention where the backend supports it.",
        "use_mmap": "Map the file into memory instead of reading it: faster loads, shared pages.",
        "chat_template": "A Jinja chat template that replaces the one stored in the GGUF.",
        "chat_template_kwargs": "Extra chat template variables, such as enable_thinking: false; a "
        "request's own chat_template_kwargs win.",
        "reasoning_format": "Where a thinking model's reasoning goes: auto puts it in reasoning_content, "
        "none leaves it inline in the answer.",
        "lora": "LoRA adapters loaded with the model, each a file and a scale.",
        "speculative": "ngram: draft tokens by looking up the sequence's own earlier text, which speeds "
        "up answers that repeat the prompt; the answers stay the same.",
        "draft_max": "Tokens drafted per sequence and step when speculating.",
        "draft_model": "A small model with the same vocabulary that drafts tokens for this one.",
        "max_tokens": "The answer length when a request gives none; empty: until the context is full "
        "(16 on /v1/completions, as OpenAI's).",
        "temperature": "Default randomness of sampling; 0 always picks the likeliest token.",
        "top_p": "Default nucleus sampling: keep the likeliest tokens up to this probability mass.",
        "top_k": "Default: sample from the k likeliest tokens only; 0 turns it off.",
        "min_p": "Default: drop tokens less likely than this share of the likeliest one.",
        "repeat_penalty": "Default penalty for repeating recent tokens; 1 turns it off.",
        "ttl": "Seconds idle before the model is unloaded; empty: it stays until evicted.",
        "pinned": "Never evicted to make room for another model.",
        "preload": "Loaded when the server starts, not on its first request.",
        "prompt_cache_mb": "Host memory (MB) for saved conversations' KV cache, so a returning one skips "
        "its prompt; empty: what the budget has free, up to 1024.",
        "rpc": "llama.cpp RPC workers (host:port) that take this model's offloaded layers beside the "
        "local GPUs; empty: the global workers, []: none.",
    },
}


def _describe(schema: dict[str, Any], section: str) -> None:
    shapes, meanings = SHAPES.get(section, {}), DESCRIPTIONS.get(section, {})
    for key, prop in schema["properties"].items():
        prop.update(shapes.get(key, {}))
        if key in meanings:  # a key added without one still validates; the test names it
            prop["description"] = meanings[key]


@functools.cache
def _built() -> dict[str, Any]:
    schema = Config.model_json_schema(mode="validation")
    _describe(schema, "Config")
    for section, definition in schema.get("$defs", {}).items():
        _describe(definition, section)
    return schema


def config_schema() -> dict[str, Any]:
    """The JSON schema (draft 2020-12) of config.yaml, each key with its `description`.

    Sections are under `$defs` (`ModelSpec` is one entry of `models`); a copy, so a caller may
    change it freely.
    """
    return copy.deepcopy(_built())


def undocumented() -> list[str]:
    """Keys without a meaning, or meanings and shapes of keys that do not exist (`section.key`),
    in every section the schema has (a section added to the config shows up here by itself)."""
    built = _built()
    sections = {"Config": built, **built.get("$defs", {})}
    problems = []
    for section, definition in sections.items():
        keys, meant = set(definition["properties"]), set(DESCRIPTIONS.get(section, {}))
        problems += [f"{section}.{k}: no description" for k in sorted(keys - meant)]
        problems += [f"{section}.{k}: no such key" for k in sorted(meant - keys)]
        shaped = set(SHAPES.get(section, {}))
        problems += [f"{section}.{k}: no such key (shape)" for k in sorted(shaped - keys)]
    problems += [f"{s}: no such section" for s in sorted(set(DESCRIPTIONS) - set(sections))]
    return problems
