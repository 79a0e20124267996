"""The labelled corpus: one JSON object per line with id, lang, query and code."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError

FIELDS = ("id", "lang", "query", "code")


@dataclass(frozen=True)
class Corpus:
    path: Path
    ids: list[str]
    langs: list[str]
    queries: list[str]
    codes: list[str]

    def __len__(self) -> int:
        return len(self.ids)

    def sha256(self) -> str:
        return hashlib.sha256(json.dumps([self.ids, self.langs, self.queries, self.codes]).encode()).hexdigest()


def load_corpus(path: str | Path) -> Corpus:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: corpus file not found")
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            missing = [k for k in FIELDS if not isinstance(obj.get(k), str) or not obj[k].strip()]
            if missing:
                raise UserError(f"{path}:{lineno}: missing or empty field(s) {', '.join(missing)}")
            rows.append(obj)
    if not rows:
        raise UserError(f"{path}: corpus is empty")
    ids = [r["id"] for r in rows]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise UserError(f"{path}: duplicate id {dup!r}")
    return Corpus(path, ids, [r["lang"] for r in rows], [r["query"] for r in rows], [r["code"] for r in rows])
