"""YAML written so that a person's file survives a program's edit: comments, order and layout.

People edit config.yaml by hand and the management API edits it too. Rewriting the file from
the parsed config would drop every comment (PyYAML cannot keep them), so edits go through
ruamel.yaml's round-trip document instead: `merge` changes only the keys whose value really
changed and leaves the rest as written (a relative path stays relative, a comment stays put).
This is the one YAML writer; reading alone may use PyYAML.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.util import load_yaml_guess_indent

_MISSING = object()


def _emitter(sequence: int = 2, offset: int = 0) -> YAML:
    """ruamel's round-trip emitter; `sequence`/`offset` as the file indents its lists."""
    yaml = YAML(typ="rt")
    yaml.width = 4096  # never fold a long path or template onto two lines
    yaml.allow_unicode = True
    yaml.indent(mapping=2, sequence=max(sequence, offset + 2), offset=offset)
    return yaml


def dump(data: Any) -> str:
    """YAML text of plain data (or a round-trip document), block style."""
    out = io.StringIO()
    _emitter().dump(data, out)
    return out.getvalue()


def edited(
    text: str, old: Mapping[str, Any], new: Mapping[str, Any], new_given: Mapping[str, Any]
) -> str | None:
    """`text` changed so that it reads as `new`, its comments and untouched keys kept as written.

    `old` is what `text` means (every key, defaults included), `new` what it must mean now, and
    `new_given` the part of `new` worth writing (defaults left out). Returns None when `text`
    is not a YAML mapping that can be edited in place; the caller then writes `new_given` whole.
    """
    try:
        doc, sequence, offset = load_yaml_guess_indent(text)
    except YAMLError:
        return None
    if not isinstance(doc, CommentedMap):
        return None
    merge(doc, old, new, new_given)
    out = io.StringIO()
    _emitter(sequence or 2, offset or 0).dump(doc, out)
    return out.getvalue()


def merge(
    doc: CommentedMap, old: Mapping[str, Any], new: Mapping[str, Any], given: Mapping[str, Any]
) -> None:
    """Change `doc` in place from meaning `old` to meaning `new` (see `edited`)."""
    for key in [*doc.keys(), *(k for k in given if k not in doc)]:
        before, after = old.get(key, _MISSING), new.get(key, _MISSING)
        if before == after and (key in doc or key not in given):
            continue  # unchanged: keep it as written (or as left out)
        if key not in given:
            doc.pop(key, None)  # now the default (or gone): say nothing
            continue
        value, current = given[key], doc.get(key)
        if isinstance(current, CommentedMap) and isinstance(value, Mapping):
            merge(current, _mapping(before), _mapping(after), value)
        elif isinstance(current, CommentedSeq) and _records(value) and _records(before):
            _merge_records(current, list(before), list(after), list(value))
        elif isinstance(current, CommentedSeq) and isinstance(value, list):
            flow = current.fa.flow_style()
            doc[key] = CommentedSeq(value)
            if flow:
                doc[key].fa.set_flow_style()  # `aliases: [a, b]` stays on one line
        else:
            doc[key] = value


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _records(value: object) -> bool:
    """A list of mappings with names (config's `models`)."""
    return isinstance(value, list) and all(isinstance(v, Mapping) for v in value)


def _merge_records(
    seq: CommentedSeq,
    old: Sequence[Mapping[str, Any]],
    new: Sequence[Mapping[str, Any]],
    given: Sequence[Any],
) -> None:
    """Entries matched by `name` (or, renamed, by position) are merged in place, so their
    comments stay; removed entries are deleted and new ones inserted where they belong."""
    if len(seq) != len(old):  # the document does not line up with its meaning: replace
        seq[:] = list(given)
        return
    by_name = {entry.get("name"): i for i, entry in enumerate(old)}
    new_names = {entry.get("name") for entry in new}
    matched: list[int | None] = []
    for j, entry in enumerate(new):
        i = by_name.get(entry.get("name"))
        if i is None and j < len(old) and old[j].get("name") not in new_names and j not in matched:
            i = j  # renamed in place
        matched.append(i)
    kept = [i for i in matched if i is not None]
    if kept != sorted(kept) or len(set(kept)) != len(kept):  # reordered: rebuild in the new order
        seq[:] = [seq[i] if i is not None else given[j] for j, i in enumerate(matched)]
        for j, i in enumerate(matched):
            if i is not None and isinstance(seq[j], CommentedMap):
                merge(seq[j], old[i], new[j], given[j])
        return
    for j, i in enumerate(matched):
        if i is not None and isinstance(seq[i], CommentedMap):
            merge(seq[i], old[i], new[j], given[j])
    for i in sorted(set(range(len(old))) - set(kept), reverse=True):
        del seq[i]
    for j, i in enumerate(matched):
        if i is None:
            seq.insert(j, CommentedMap(given[j]))
