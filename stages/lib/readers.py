"""The one place that turns the bytes of a file the user supplies into text and JSON values.

Real files are messy (scraped code in Latin-1, a stray byte, an editor's byte-order mark), and a
traceback from deep inside a reader names neither the file nor the line. So every file is read in
binary and decoded line by line: a byte that is not UTF-8 becomes one UserError
"<file>:<line>: <cause>" with the offending bytes and their offset in the line, and a streamed
file (a corpus of a million lines) still never sits in memory whole.

Decided on purpose:
- A UTF-8 byte-order mark at the start is accepted and dropped: Notepad and Excel's "CSV UTF-8"
  write one, and it carries no text (json and the tokenizers library would otherwise reject it).
- Any other byte that is not UTF-8 is refused, never replaced or guessed: a silently altered text
  would be embedded and measured as if it were the user's. A UTF-16 file is named as such.
- JSON's `\\ud800`-style escapes of an unpaired surrogate decode to no character (no encoder, and
  so no tokenizer, accepts them): refused with the file and line, like a bad byte.
"""
from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import UserError

UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")  # \ud800-\udfff: half of a pair, or an unpaired one
JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "true/false", int: "a number",
              float: "a number", type(None): "null"}


def json_type(value: Any) -> str:
    """A parsed JSON value's type in JSON's own words, for "must be a string, got an array"."""
    return JSON_TYPES.get(type(value), type(value).__name__)


def _raw_lines(path: Path) -> Iterator[bytes]:
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except OSError as exc:  # a folder, no permission
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None
    with fh:
        yield from fh


def text_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """(line number, text with its line ending) for every line, streamed."""
    path = Path(path)
    for lineno, raw in enumerate(_raw_lines(path), 1):
        if lineno == 1:
            if raw.startswith(UTF16_BOMS):
                raise UserError(f"{path}:1: the file is UTF-16 (it starts with the byte-order mark "
                                f"{raw[:2].hex(' ')}), not UTF-8; save it as UTF-8")
            raw = raw.removeprefix(codecs.BOM_UTF8)
        try:
            yield lineno, raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad = raw[exc.start:exc.end]
            raise UserError(f"{path}:{lineno}: not UTF-8: byte{'s' if len(bad) > 1 else ''} {bad.hex(' ')} at byte "
                            f"offset {exc.start} of the line "
                            f"({exc.reason}); save the file as UTF-8") from None


def read_text(path: str | Path) -> str:
    """A small file whole (params.yaml, a JSON config), with the errors text_lines gives."""
    return "".join(text for _, text in text_lines(path))


def parse_json(text: str, path: str | Path, lineno: int = 1) -> Any:
    """`text` (a whole file, or line `lineno` of a JSONL file) parsed; an error names file:line."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        pos = min(exc.pos, len(text.rstrip()))  # a cut-off text ends on its last line, not past its newline
        line, column = lineno + text.count("\n", 0, pos), pos - text.rfind("\n", 0, pos)
        raise UserError(f"{path}:{line}: not valid JSON ({exc.msg} at column {column})") from None
    if SURROGATE_ESCAPE.search(text):  # only such an escape makes one: nearly every line skips the walk
        bad = _unpaired_surrogate(value)
        if bad:
            one_line = "\n" not in text.rstrip("\r\n")  # a JSONL line; in a whole file the line is not known
            where = f"{path}:{lineno}" if one_line else str(path)
            raise UserError(f"{where}: a \\u escape encodes {bad!r}, an unpaired surrogate, which is no "
                            f"character (no tokenizer takes it); fix the text")
    return value


def _unpaired_surrogate(value: Any) -> str | None:
    """The first unpaired surrogate in any string of a parsed JSON value (keys included), or None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            return value[exc.start:exc.end]
        return None
    if isinstance(value, dict):
        items = [*value.keys(), *value.values()]
    elif isinstance(value, list):
        items = value
    else:
        return None  # numbers, true/false, null
    return next(filter(None, map(_unpaired_surrogate, items)), None)


def read_json(path: str | Path) -> Any:
    """A whole JSON file, decoded and parsed with file:line errors; an empty file is named as such."""
    text = read_text(path)
    if not text.strip():
        raise UserError(f"{path}: file is empty, expected JSON")
    return parse_json(text, path)
