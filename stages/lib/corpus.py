"""The labelled corpus, in one representation: queries, documents and graded qrels.

Two layouts on disk: the paired JSONL (one object per line with id, lang, query and code; query i's
only relevant document is code i), and a BEIR folder as BEIR and MTEB write it (corpus.jsonl,
queries.jsonl, qrels/test.tsv), where a query may have several graded relevant documents and
documents no query points to still compete in the ranking.
"""
from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError

FIELDS = ("id", "lang", "query", "code")
UNKNOWN_LANG = "unknown"


@dataclass(frozen=True)
class Corpus:
    path: Path
    query_ids: list[str]
    queries: list[str]
    query_langs: list[str]
    doc_ids: list[str]
    codes: list[str]  # the documents (code, in this product's use)
    doc_langs: list[str]
    qrels: dict[int, dict[int, int]]  # query index -> document index -> relevance grade
    paired: bool = False

    @property
    def ids(self) -> list[str]:
        return self.query_ids

    @property
    def langs(self) -> list[str]:
        return self.query_langs

    def __len__(self) -> int:
        return len(self.query_ids)

    def text_count(self) -> int:
        return len(self.queries) + len(self.codes)

    def sha256(self) -> str:
        """Identity of the texts and labels; the paired layout keeps the hash it always had."""
        if self.paired:
            parts = [self.query_ids, self.query_langs, self.queries, self.codes]
        else:
            qrels = sorted((q, d, g) for q, docs in self.qrels.items() for d, g in docs.items())
            parts = [self.query_ids, self.query_langs, self.queries, self.doc_ids, self.doc_langs, self.codes, qrels]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def _jsonl(path: Path):
    """(line number, object) for each non-blank line; bad JSON is one line naming file:line."""
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None


def _unique(path: Path, ids: list[str]) -> None:
    seen = set()
    for i in ids:
        if i in seen:
            raise UserError(f"{path}: duplicate id {i!r}")
        seen.add(i)


def load_corpus(path: str | Path) -> Corpus:
    """A paired JSONL file or a BEIR-layout folder."""
    path = Path(path)
    if path.is_dir():
        return load_beir(path)
    if not path.is_file():
        raise UserError(f"{path}: corpus file not found")
    rows = []
    for lineno, obj in _jsonl(path):
        missing = [k for k in FIELDS if not isinstance(obj.get(k), str) or not obj[k].strip()]
        if missing:
            raise UserError(f"{path}:{lineno}: missing or empty field(s) {', '.join(missing)}")
        rows.append(obj)
    if not rows:
        raise UserError(f"{path}: corpus is empty")
    ids = [r["id"] for r in rows]
    _unique(path, ids)
    langs = [r["lang"] for r in rows]
    return Corpus(path, ids, [r["query"] for r in rows], langs, ids, [r["code"] for r in rows], langs,
                  {i: {i: 1} for i in range(len(rows))}, paired=True)


def _lang(obj: dict) -> str | None:
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    for value in (obj.get("lang"), obj.get("language"), meta.get("lang"), meta.get("language")):
        if isinstance(value, str) and value.strip():
            return value
    return None


def _beir_texts(path: Path, with_title: bool) -> tuple[list[str], list[str], list[str | None]]:
    if not path.is_file():
        raise UserError(f"{path}: file not found (a BEIR corpus folder holds corpus.jsonl, queries.jsonl, qrels/test.tsv)")
    ids, texts, langs = [], [], []
    for lineno, obj in _jsonl(path):
        text = obj.get("text")
        if not isinstance(obj.get("_id"), (str, int)) or not isinstance(text, str) or not text.strip():
            raise UserError(f"{path}:{lineno}: missing or empty field(s) _id or text")
        title = obj.get("title") if with_title else None
        ids.append(str(obj["_id"]))
        texts.append(f"{title} {text}" if isinstance(title, str) and title.strip() else text)  # as BEIR joins them
        langs.append(_lang(obj))
    if not ids:
        raise UserError(f"{path}: corpus is empty")
    _unique(path, ids)
    return ids, texts, langs


def _beir_qrels(path: Path, query_index: dict, doc_index: dict) -> dict[int, dict[int, int]]:
    if not path.is_file():
        raise UserError(f"{path}: file not found (a BEIR corpus folder holds qrels/test.tsv)")
    qrels: dict[int, dict[int, int]] = {}
    with open(path, encoding="utf-8", newline="") as fh:
        for lineno, row in enumerate(csv.reader(fh, delimiter="\t"), 1):
            if not row or (lineno == 1 and row[0] == "query-id"):
                continue
            if len(row) != 3:
                raise UserError(f"{path}:{lineno}: expected query-id, corpus-id, score separated by tabs")
            qid, did, score = row
            if qid not in query_index:
                raise UserError(f"{path}:{lineno}: query-id {qid!r} is not in queries.jsonl")
            if did not in doc_index:
                raise UserError(f"{path}:{lineno}: corpus-id {did!r} is not in corpus.jsonl")
            try:
                grade = int(score)
            except ValueError:
                raise UserError(f"{path}:{lineno}: score {score!r} is not an integer") from None
            qrels.setdefault(query_index[qid], {})[doc_index[did]] = grade
    if not any(g > 0 for docs in qrels.values() for g in docs.values()):
        raise UserError(f"{path}: no relevant (score > 0) pair: nothing to measure retrieval on")
    return qrels


def load_beir(folder: Path) -> Corpus:
    """A BEIR folder. Only queries named in the qrels are evaluated (as BEIR does); every document
    is ranked. A query without a language of its own takes its first relevant document's."""
    doc_ids, docs, doc_langs = _beir_texts(folder / "corpus.jsonl", with_title=True)
    all_qids, all_queries, all_qlangs = _beir_texts(folder / "queries.jsonl", with_title=False)
    qrels_all = _beir_qrels(folder / "qrels" / "test.tsv", {q: i for i, q in enumerate(all_qids)},
                            {d: i for i, d in enumerate(doc_ids)})
    keep = sorted(qrels_all)
    qrels = {new: qrels_all[old] for new, old in enumerate(keep)}
    qlangs = [all_qlangs[old] or doc_langs[next(iter(qrels[new]))] for new, old in enumerate(keep)]
    return Corpus(folder, [all_qids[i] for i in keep], [all_queries[i] for i in keep],
                  [lang or UNKNOWN_LANG for lang in qlangs], doc_ids, docs,
                  [lang or UNKNOWN_LANG for lang in doc_langs], qrels)
