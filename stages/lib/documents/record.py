"""Typed documents: a dataclass is the shape of a JSON file a stage writes, in one place.

`to_dict()` writes the keys in field order (so a document keeps its bytes), `from_dict()` (and
`read_document` for a file) reads a stored one back and checks every key and type on the way (a
wrong file is one clear line, not a KeyError three functions later), and `json_schema()` derives
its JSON Schema from the same types (docs/schemas/, checked by tests/test_documents.py).

Types a field may have: str, int, bool, float (a number, or null where it could not be measured:
outputs.write_json stores NaN as null), X | None, list[X], dict[str, X], Literal[...], an Enum
(Status), another Record, Any (facts recorded as they are: machine, runtime, recipe), and any class
that stores itself the same way, with from_dict, to_dict and schema_def (i18n.Message: this module
does not import the catalog, so the documents of the timing stages do not depend on it).
Field options: `omitted()` for a key absent from the document when its value is None;
`flat(pattern)` for a dict whose entries sit in the document itself, under keys matching `pattern`
("overlap@1", "overlap@10", ...). Maps keyed by data (metric names, model names, roles) are dicts.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import re
import types
import typing
from collections.abc import Iterator
from enum import Enum
from typing import Any, ClassVar, Literal, TypeVar

from ..errors import DocumentError, UserError
from ..outputs import read_json
from ..readers import json_type, parse_json, text_lines


def omitted(**kwargs):
    """A field whose key is absent from the document when its value is None."""
    return dataclasses.field(default=None, metadata={"omit": True}, **kwargs)


def flat(pattern: str):
    """A dict field whose entries are keys of the document itself, matching `pattern`."""
    return dataclasses.field(default_factory=dict, metadata={"flat": pattern})


R = TypeVar("R", bound="Record")


class Record:
    """Base of every document type: a dataclass(kw_only=True), so fields keep the document's key
    order whatever their defaults."""

    SCHEMA_VERSION: ClassVar[int | None] = None  # set on the documents a stage writes as a file

    def to_dict(self) -> dict:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if "flat" in f.metadata:
                out.update({k: _plain(v) for k, v in value.items()})
            elif not (value is None and f.metadata.get("omit")):
                out[f.name] = _plain(value)
        return out

    @classmethod
    def from_dict(cls: type[R], data: Any, where: str = "") -> R:
        if not isinstance(data, dict):
            raise DocumentError(f"{where or 'the document'}: expected an object, got {json_type(data)}")
        hints, taken, kwargs = _hints(cls), set(), {}
        for f in dataclasses.fields(cls):
            if "flat" in f.metadata:
                names = [k for k in data if re.fullmatch(f.metadata["flat"], k)]
                kwargs[f.name] = {k: _read(typing.get_args(hints[f.name])[1], data[k], _at(where, k)) for k in names}
                taken.update(names)
                continue
            name = f.name
            if name in data:
                kwargs[f.name] = _read(hints[f.name], data[name], _at(where, name))
                taken.add(name)
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise DocumentError(f"{_at(where, name)}: missing")
        extra = [k for k in data if k not in taken]
        if extra:
            raise DocumentError(f"{_at(where, extra[0])}: not a key of this document")
        return cls(**kwargs)



def read(tp: Any, data: Any, where: str = "") -> Any:
    """A stored document (or part of one) as type `tp`: a Record, or a union of them."""
    return _read(tp, data, where)


OTHER_SHAPE = "(not the shape this version writes: rerun the stage that writes it, dvc repro)"


def read_document(path: str | os.PathLike, tp: Any) -> Any:
    """A stage's output file as its type: a file of another shape (an older version of the pipeline
    wrote it, or a hand edit) is one line naming the file and the key."""
    try:
        return _read(tp, read_json(path), "")
    except DocumentError as exc:
        raise UserError(f"{path}: {exc} {OTHER_SHAPE}") from None


def read_jsonl(path: str | os.PathLike, tp: Any) -> Iterator[Any]:
    """A stage's JSONL output, one line at a time as type `tp` (a file of 100k rows never sits in
    memory whole); a line of another shape is one line naming file:line and the key."""
    if not os.path.isfile(path):
        raise UserError(f"{path}: file not found (did the stage that writes it run?)")
    for lineno, line in text_lines(path):
        try:
            yield _read(tp, parse_json(line, path, lineno), "")
        except DocumentError as exc:
            raise UserError(f"{path}:{lineno}: {exc} {OTHER_SHAPE}") from None


def json_schema(tp: Any, title: str, version: int) -> dict:
    """The JSON Schema (draft 2020-12) of a document type (a Record or a union of them), nested
    records under $defs."""
    defs: dict[str, dict] = {}
    root = _schema(tp, defs)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": title,
            "description": f"schema version {version}; generated from stages/lib/documents/ by "
                           "python -m stages.lib.documents.schemas", **root, "$defs": dict(sorted(defs.items()))}


def _at(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


@functools.cache
def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _plain(value: Any) -> Any:
    if hasattr(value, "to_dict"):  # a Record, a Message
        return value.to_dict()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _read(tp: Any, value: Any, where: str) -> Any:
    """`value` read as type `tp`, or a DocumentError naming `where`."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):  # the first that reads it
            try:
                return _read(option, value, where)
            except DocumentError as exc:
                errors.append(str(exc))
        raise DocumentError(errors[0] if len(errors) == 1 else " or ".join(errors))
    if origin is Literal:
        if value not in args:
            raise DocumentError(f"{where}: expected one of {', '.join(map(str, args))}, got {value!r}")
        return value
    if origin is list:
        _expect(isinstance(value, list), "an array", value, where)
        return [_read(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        _expect(isinstance(value, dict), "an object", value, where)
        return {k: _read(args[1], v, _at(where, k)) for k, v in value.items()}
    if isinstance(tp, type) and hasattr(tp, "from_dict"):  # a Record, a Message
        return tp.from_dict(value, where)
    if isinstance(tp, type) and issubclass(tp, Enum):
        _expect(value in {m.value for m in tp}, f"one of {', '.join(m.value for m in tp)}", value, where)
        return tp(value)
    if tp is float:  # a number, or null: not measurable
        _expect(value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)), "a number",
                value, where)
        return value
    if tp is int:
        _expect(isinstance(value, int) and not isinstance(value, bool), "an integer", value, where)
        return value
    _expect(isinstance(value, tp), {str: "a string", bool: "true/false"}.get(tp, tp.__name__), value, where)
    return value


def _expect(ok: bool, what: str, value: Any, where: str) -> None:
    if not ok:
        raise DocumentError(f"{where}: expected {what}, got {json_type(value)}")


def _schema(tp: Any, defs: dict) -> dict:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return {}
    if origin in (types.UnionType, typing.Union):
        return {"anyOf": [_schema(a, defs) for a in args]}
    if origin is Literal:
        return {"enum": list(args)}
    if origin is list:
        return {"type": "array", "items": _schema(args[0], defs)}
    if origin is dict:
        return {"type": "object", "additionalProperties": _schema(args[1], defs)}
    if tp is type(None):
        return {"type": "null"}
    if isinstance(tp, type) and issubclass(tp, Record):
        if tp.__name__ not in defs:
            defs[tp.__name__] = {}  # a placeholder first: a record may contain itself
            defs[tp.__name__] = _object_schema(tp, defs)
        return {"$ref": f"#/$defs/{tp.__name__}"}
    if isinstance(tp, type) and hasattr(tp, "schema_def"):  # a Message
        defs.setdefault(tp.__name__, tp.schema_def())
        return {"$ref": f"#/$defs/{tp.__name__}"}
    if isinstance(tp, type) and issubclass(tp, Enum):
        return {"enum": [m.value for m in tp]}
    return {float: {"type": ["number", "null"]}, int: {"type": "integer"}, str: {"type": "string"},
            bool: {"type": "boolean"}}[tp]


def _object_schema(cls, defs: dict) -> dict:
    hints, props, patterns, required = _hints(cls), {}, {}, []
    for f in dataclasses.fields(cls):
        if "flat" in f.metadata:
            patterns[f.metadata["flat"].join("^$")] = _schema(typing.get_args(hints[f.name])[1], defs)
            continue
        name = f.name
        props[name] = _schema(hints[f.name], defs)
        if not f.metadata.get("omit"):
            required.append(name)
    doc = cls.__doc__ or ""
    if doc.startswith(f"{cls.__name__}("):  # dataclass's own signature text: no docstring was written
        doc = cls.__name__
    out = {"type": "object", "description": " ".join(doc.split()), "properties": props,
           "required": required, "additionalProperties": False}
    if patterns:
        out["patternProperties"] = patterns
    return out
