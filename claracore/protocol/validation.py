"""Validate a request into its wire type, with pydantic's errors turned into the one field path a
client can act on."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from claracore.errors import InvalidRequestError
from claracore.inputs import check_data

M = TypeVar("M", bound=BaseModel)

# pydantic adds a step to the location for each union branch it tried ("str", "list[str]",
# a model's class name): not part of the field's path as the client wrote it.
_BRANCH = re.compile(
    r"^(str|int|float|bool|bytes|none|list\[.*\]|dict\[.*\]|literal\[.*\]|function-\w+\[.*\]|[A-Z]\w*)$"
)


def field_path(loc: Sequence[int | str]) -> str:
    """`("body", "messages", 0, "role")` → `"messages.0.role"`; `("query", "page")` → `"page"`."""
    if loc and loc[0] in ("body", "query"):  # where FastAPI found it, not part of the name
        loc = loc[1:]
    return ".".join(str(x) for x in loc if not (isinstance(x, str) and _BRANCH.match(x)))


def first_error(errors: Sequence[Any]) -> tuple[str, str]:
    """(field path, message) of the first error, which is the one a client should fix first."""
    if not errors:
        return "", "invalid request"
    err = errors[0]
    return field_path(err.get("loc", ())), str(err.get("msg", "invalid value")).removeprefix("Value error, ")


def describe(exc: ValidationError) -> tuple[str, str]:
    return first_error(exc.errors())


def parse(
    cls: type[M], request: M | Mapping[str, Any] | None = None, fields: Mapping[str, Any] | None = None
) -> M:
    """`request` (an instance, a mapping or None) with `fields` on top, validated as `cls`.

    Raises InvalidRequestError naming the first bad field (dotted path), so a caller of the
    Python API and the HTTP layer see the same 400.
    """
    extra = dict(fields or {})
    if isinstance(request, cls):
        return request.model_copy(update=extra) if extra else request
    data = {**(dict(request) if isinstance(request, Mapping) else {}), **extra}
    check_data(data)  # lone surrogates, absurd nesting: the rules every way in applies
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        field, msg = describe(exc)
        raise InvalidRequestError(f"{field or 'request'}: {msg}", param=field or None) from None
