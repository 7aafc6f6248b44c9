"""The one set of rules for what text, paths and token ids ClaraCore accepts from outside.

Every way in uses these: the HTTP guard on each JSON body, `protocol.validation.parse` for the
Python API, the config schema for config.yaml and every edit of it, the folder routes for paths,
and the runtimes before any token id reaches llama.cpp. Each check answers with what is wrong
and where, so the caller raises its own error type (a 400 naming the field, or a ConfigError
naming the key) instead of a crash deep inside a library:

- a lone surrogate (`"\\ud800"` in JSON) is not Unicode text: it cannot be encoded as UTF-8, so
  tokenizers, file systems, sockets and the JSON encoder of the answer all fail on it;
- data nested deeper than `MAX_DEPTH` is refused before Python's recursion limit is reached;
- a path must be free of NUL bytes and fit the file system's limits (`PATH_MAX`, `NAME_MAX`);
- a token id outside the vocabulary aborts the process inside llama.cpp (`std::out_of_range`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from claracore.errors import InvalidRequestError

#: Deepest nesting of lists and objects accepted in a request body or a config file. Real
#: requests (tool schemas included) stay far below; Python's parsers recurse per level.
MAX_DEPTH = 64
#: Linux's PATH_MAX and NAME_MAX, in bytes of the UTF-8 encoding.
MAX_PATH_BYTES = 4096
MAX_NAME_BYTES = 255


def text_problem(text: str) -> str | None:
    """What makes `text` unusable as Unicode text (a lone surrogate), or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"holds a lone surrogate (\\u{ord(text[exc.start]):04x}), which is not valid Unicode"
    return None


def find_problem(value: object, path: Sequence[str | int] = ()) -> tuple[str, str] | None:
    """The first (dotted field path, problem) in JSON-like data: a bad string or too deep; or None.

    Walks without recursion, so a value nested far past `MAX_DEPTH` is reported, not crashed on.
    Object keys are checked as well as values.
    """
    stack: list[tuple[object, tuple[str | int, ...]]] = [(value, tuple(path))]
    while stack:
        item, where = stack.pop()
        if len(where) - len(path) > MAX_DEPTH:
            return dotted(where[: len(path) + MAX_DEPTH]), f"is nested more than {MAX_DEPTH} levels deep"
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                return dotted(where), problem
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and (problem := text_problem(key)):
                    return dotted(where), f"has a key that {problem}"
                stack.append((child, (*where, str(key))))
        elif isinstance(item, (list, tuple)):
            stack.extend((child, (*where, i)) for i, child in enumerate(item))
    return None


def dotted(path: Iterable[str | int]) -> str:
    """`("messages", 0, "content")` -> `"messages.0.content"`."""
    return ".".join(str(p) for p in path)


def check_data(value: object, what: str = "the request body") -> None:
    """Raise InvalidRequestError naming the field when `find_problem` finds one."""
    found = find_problem(value)
    if found is not None:
        field, problem = found
        raise InvalidRequestError(f"{field or what}: {problem}", param=field or None)


def path_problem(path: str) -> str | None:
    """What makes `path` unusable as a file system path (NUL, bad text, too long), or None."""
    if "\x00" in path:
        return "holds a NUL byte"
    if problem := text_problem(path):
        return problem
    encoded = path.encode("utf-8")
    if len(encoded) >= MAX_PATH_BYTES:
        return f"is longer than {MAX_PATH_BYTES - 1} bytes"
    if any(len(part) > MAX_NAME_BYTES for part in encoded.split(b"/")):
        return f"has a file or folder name longer than {MAX_NAME_BYTES} bytes"
    return None


def check_path(path: str, param: str) -> str:
    """`path` when usable as a path; else InvalidRequestError naming `param`."""
    problem = path_problem(path)
    if problem:
        raise InvalidRequestError(f"{param}: the path {problem}", param=param)
    return path


def check_token_ids(tokens: Sequence[int], n_vocab: int, param: str = "prompt") -> None:
    """Raise InvalidRequestError naming `param` unless every id is in 0..n_vocab-1.

    Call before llama.cpp sees the ids in any way (decode, detokenize, echo): it aborts the
    whole process on an id outside its vocabulary.
    """
    bad = next((t for t in tokens if not 0 <= t < n_vocab), None)
    if bad is not None:
        raise InvalidRequestError(
            f"{param}: token id {bad} is outside the vocabulary (0..{n_vocab - 1})",
            param=param,
            details={"token": bad, "vocab_size": n_vocab},
        )
