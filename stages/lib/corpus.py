"""The labelled corpus, in one representation: queries, documents and graded qrels.

Two layouts on disk: the paired JSONL (one object per line with id, lang, query and code; query i's
only relevant document is code i), and a BEIR folder as BEIR and MTEB write it (corpus.jsonl,
queries.jsonl, qrels/test.tsv), where a query may have several graded relevant documents and
documents no query points to still compete in the ranking.

Every file is read through readers.py (UTF-8 line by line, a byte-order mark accepted): a bad
byte, bad JSON, a line that is not an object, a field of the wrong type or a malformed qrels row is
one UserError naming the file and line.

`corpus_sample: N` in params makes a quick look: embed and compare read a deterministic subset
(draw_sample) through the same readers, so every stage that measures quality sees the same texts.
"""
from __future__ import annotations

import csv
import hashlib
import heapq
import json
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .errors import UserError
from .hashing import file_sha256
from .readers import json_type, parse_json, text_lines

FIELDS = ("id", "lang", "query", "code")
UNKNOWN_LANG = "unknown"


@dataclass(frozen=True)
class Corpus:
    path: Path
    query_ids: list[str]
    queries: list[str] | None  # None when loaded without texts
    query_langs: list[str]
    doc_ids: list[str]
    codes: list[str] | None  # the documents (code, in this product's use)
    doc_langs: list[str]
    qrels: dict[int, dict[int, int]]  # query index -> document index -> relevance grade
    sample: Sample | None = None  # the subset these lists hold (draw_sample), None for the whole corpus

    @property
    def ids(self) -> list[str]:
        return self.query_ids

    @property
    def langs(self) -> list[str]:
        return self.query_langs

    def __len__(self) -> int:
        return len(self.query_ids)

    def sha256(self) -> str:
        return corpus_sha256(self.path)


def corpus_files(path: str | Path) -> list[Path]:
    """The files a corpus is read from: the paired JSONL, or a BEIR folder's three."""
    path = Path(path)
    if path.is_dir():
        return [path / "corpus.jsonl", path / "queries.jsonl", path / "qrels" / "test.tsv"]
    return [path]


def corpus_sha256(path: str | Path) -> str:
    """Identity of the texts and labels: the bytes of the corpus files, read in chunks, so the embed
    stage (which streams the texts) and compare (which loads them) compute the same value."""
    files = corpus_files(path)
    for f in files:
        if not f.is_file():
            raise UserError(f"{f}: corpus file not found")
    return file_sha256(files)


def _jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line, streamed."""
    for lineno, line in text_lines(path):
        if not line.strip():
            continue
        obj = parse_json(line, path, lineno)
        if not isinstance(obj, dict):
            raise UserError(f"{path}:{lineno}: expected one JSON object per line, got {json_type(obj)}")
        yield lineno, obj


def _text(path: Path, lineno: int, value, field: str) -> str | None:
    """A field's value as a string, None when absent or null; a number or a list is an error, not a text."""
    if value is not None and not isinstance(value, str):
        raise UserError(f"{path}:{lineno}: field '{field}' must be a string, got {json_type(value)}")
    return value


def _unique(path: Path, ids: list[str]) -> None:
    seen = set()
    for i in ids:
        if i in seen:
            raise UserError(f"{path}: duplicate id {i!r}")
        seen.add(i)


def _paired_rows(path: Path) -> Iterator[dict]:
    if not path.is_file():
        raise UserError(f"{path}: corpus file not found")
    empty = True
    for lineno, obj in _jsonl(path):
        missing = [k for k in FIELDS if not (_text(path, lineno, obj.get(k), k) or "").strip()]
        if missing:
            raise UserError(f"{path}:{lineno}: missing or empty field(s) {', '.join(missing)}")
        empty = False
        yield obj
    if empty:
        raise UserError(f"{path}: corpus is empty")


def iter_texts(path: str | Path, kind: str, sample: Sample | None = None) -> Iterator[str]:
    """The "queries" or "documents" load_corpus would hold, in the same order, one at a time: what
    the embed stage needs, in memory that does not grow with the corpus (labels and ids are
    compare's business; load_corpus checks them). A BEIR folder's queries are those its qrels name.
    `sample`: only the texts it holds (draw_sample), in corpus order."""
    path = Path(path)
    if not path.is_dir():
        field, keep = {"queries": ("query", sample and sample.has_query),
                       "documents": ("code", sample and sample.has_document)}[kind]
        yield from (row[field] for row in _paired_rows(path) if not keep or keep(row["id"]))
    elif kind == "documents":
        yield from (text for did, text, _ in _beir_rows(path / "corpus.jsonl", with_title=True)
                    if not sample or sample.has_document(did))
    else:
        judged = _qrels_query_ids(path / "qrels" / "test.tsv")
        yield from (text for qid, text, _ in _beir_rows(path / "queries.jsonl", with_title=False)
                    if qid in judged and (not sample or sample.has_query(qid)))


def _rank(text_id: str) -> int:
    """A text's place in the sample order: a hash of its id, so the pick needs no seed and no file
    order, and a query stays in the sample when the corpus grows (only a new id that hashes lower
    can take its place)."""
    return int.from_bytes(hashlib.sha256(text_id.encode("utf-8")).digest()[:8], "big")


@dataclass(frozen=True)
class Sample:
    """Which queries and documents a quick look reads (draw_sample), and the facts it is recorded by."""

    query_ids: frozenset[str]
    judged: frozenset[str]  # every document the qrels name for those queries, whatever the grade
    cut: int | None  # a document no sampled query names is in when its _rank is at most this
    facts: dict  # counts and the subset's hash: embed manifests, compare and the report record them

    def has_query(self, query_id: str) -> bool:
        return query_id in self.query_ids

    def has_document(self, doc_id: str) -> bool:
        return doc_id in self.judged or (self.cut is not None and _rank(doc_id) <= self.cut)


def corpus_sample(params) -> Sample | None:
    """The subset embed and compare measure: params `corpus_sample` queries, 0 for the whole corpus.
    The one place it is decided, so every stage that measures quality reads the same texts."""
    return draw_sample(params.corpus, params.corpus_sample)


def draw_sample(path: str | Path, size: int) -> Sample | None:
    """`size` queries, every document judged for them, and distractors; None when `size` is 0 or
    covers every query (then it is the whole corpus, and nothing is marked as a sample).

    Queries: the `size` evaluated queries with the lowest _rank. Documents: those the qrels name for
    them (grade 0 too: judged non-relevant ones are the hardest negatives), then, among the rest,
    the lowest _rank ones up to the corpus's documents per query (a paired corpus has one document
    per query: no distractors). Ranking only the judged documents would inflate every retrieval
    metric; with the ratio kept, relevant documents are as rare in the pool as in the whole corpus,
    though a smaller pool still ranks more easily, so absolute scores run higher than on the whole
    corpus (both models rank the same subset). Streamed: memory is the sampled ids plus 8 bytes per
    document."""
    if size <= 0:
        return None
    path = Path(path)
    if not path.is_dir():  # query i's only document is code i, under the same id
        of_queries, queries = _lowest((row["id"] for row in _paired_rows(path)), size)
        return None if len(queries) >= of_queries else _sample(queries, queries, [], of_queries, of_queries)
    qrels = path / "qrels" / "test.tsv"
    of_queries, queries = _lowest(_qrels_query_ids(qrels), size)
    if len(queries) >= of_queries:
        return None
    judged = {did for _, qid, did, _ in _qrels_rows(qrels) if qid in queries}
    seen, ranks = set(), array("Q")
    for did, _, _ in _beir_rows(path / "corpus.jsonl", with_title=False):
        if did in judged:
            seen.add(did)
        else:
            ranks.append(_rank(did))
    if judged - seen:
        raise UserError(f"{qrels}: corpus-id {min(judged - seen)!r} is not in corpus.jsonl")
    of_documents = len(seen) + len(ranks)
    share = (len(queries) * of_documents + of_queries // 2) // of_queries  # documents per query kept
    wanted = max(0, min(len(ranks), share - len(judged)))
    lowest = np.sort(np.partition(np.frombuffer(ranks, dtype=np.uint64), wanted - 1)[:wanted]) if wanted else []
    return _sample(queries, judged, lowest, of_queries, of_documents)


def _lowest(ids, k: int) -> tuple[int, set[str]]:
    """How many ids there are, and the k of them with the lowest _rank (one pass, k kept)."""
    heap, total = [], 0
    for text_id in ids:
        total += 1
        item = (-_rank(text_id), text_id)
        if len(heap) < k:
            heapq.heappush(heap, item)
        elif item > heap[0]:
            heapq.heapreplace(heap, item)
    return total, {text_id for _, text_id in heap}


def _sample(queries: set[str], judged: set[str], distractors, of_queries: int, of_documents: int) -> Sample:
    """`distractors`: the sampled unjudged documents' ranks, ascending; the last is the cut."""
    digest = hashlib.sha256(json.dumps([sorted(queries), sorted(judged)]).encode())
    digest.update(np.asarray(distractors, dtype=">u8").tobytes())
    facts = {"queries": len(queries), "of_queries": of_queries, "documents": len(judged) + len(distractors),
             "of_documents": of_documents, "judged_documents": len(judged), "distractors": len(distractors),
             "sha256": digest.hexdigest()}
    cut = int(distractors[-1]) if len(distractors) else None
    return Sample(frozenset(queries), frozenset(judged), cut, facts)


def sample_label(facts: dict | None) -> str:
    """What a run measured, in words: 'the whole corpus' or 'a sample of N of M queries (...)'."""
    if not facts:
        return "the whole corpus"
    return (f"a sample of {facts['queries']} of {facts['of_queries']} queries ({facts['documents']} of "
            f"{facts['of_documents']} documents)")


def sample_texts(path: str | Path, kind: str, count: int) -> list[str]:
    """`count` texts spread evenly over the corpus, first to last (so every language and part of it
    is represented), deterministic. Two streamed passes: timing and diagnosing need a few hundred
    texts, not a million of them in memory and through the tokenizer."""
    total = sum(1 for _ in iter_texts(path, kind))
    wanted = set(np.unique(np.linspace(0, total - 1, min(count, total)).round().astype(int)).tolist())
    return [text for i, text in enumerate(iter_texts(path, kind)) if i in wanted]


def load_corpus(path: str | Path, with_texts: bool = True, sample: Sample | None = None) -> Corpus:
    """A paired JSONL file or a BEIR-layout folder. `with_texts=False`: ids, languages and qrels
    only (queries and codes are None), for compare, which reads vectors, not a million texts.
    `sample` (draw_sample): only what it holds, in corpus order, numbered from 0 (the whole corpus
    is checked all the same)."""
    path = Path(path)
    corpus = load_beir(path, with_texts) if path.is_dir() else _load_paired(path, with_texts)
    return corpus if sample is None else _restrict(corpus, sample)


def _load_paired(path: Path, with_texts: bool) -> Corpus:
    ids, langs, queries, codes = [], [], [], []
    for row in _paired_rows(path):
        ids.append(row["id"])
        langs.append(row["lang"])
        if with_texts:
            queries.append(row["query"])
            codes.append(row["code"])
    _unique(path, ids)
    return Corpus(path, ids, queries if with_texts else None, langs, ids, codes if with_texts else None, langs,
                  {i: {i: 1} for i in range(len(ids))})


def _restrict(c: Corpus, sample: Sample) -> Corpus:
    """The sampled queries and documents of a loaded corpus, qrels renumbered."""
    qs = [i for i, qid in enumerate(c.query_ids) if sample.has_query(qid)]
    ds = [j for j, did in enumerate(c.doc_ids) if sample.has_document(did)]
    doc_index = {old: new for new, old in enumerate(ds)}

    def pick(values, rows):
        return None if values is None else [values[i] for i in rows]

    return replace(c, query_ids=pick(c.query_ids, qs), queries=pick(c.queries, qs), query_langs=pick(c.query_langs, qs),
                   doc_ids=pick(c.doc_ids, ds), codes=pick(c.codes, ds), doc_langs=pick(c.doc_langs, ds),
                   qrels={new: {doc_index[d]: g for d, g in c.qrels[old].items()} for new, old in enumerate(qs)},
                   sample=sample)


def _lang(path: Path, lineno: int, obj: dict) -> str | None:
    """The first non-blank of lang, language, metadata.lang, metadata.language (all optional)."""
    meta = obj.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        raise UserError(f"{path}:{lineno}: field 'metadata' must be an object, got {json_type(meta)}")
    meta = meta or {}
    for value, field in ((obj.get("lang"), "lang"), (obj.get("language"), "language"),
                         (meta.get("lang"), "metadata.lang"), (meta.get("language"), "metadata.language")):
        if (_text(path, lineno, value, field) or "").strip():
            return value
    return None


def _beir_rows(path: Path, with_title: bool) -> Iterator[tuple[str, str, str | None]]:
    """(id, text, language or None) per line; the title joined to the text as BEIR joins them."""
    if not path.is_file():
        raise UserError(f"{path}: file not found "
                        "(a BEIR corpus folder holds corpus.jsonl, queries.jsonl, qrels/test.tsv)")
    empty = True
    for lineno, obj in _jsonl(path):
        _id, text = obj.get("_id"), _text(path, lineno, obj.get("text"), "text")
        if isinstance(_id, bool) or not isinstance(_id, (str, int, type(None))):
            raise UserError(f"{path}:{lineno}: field '_id' must be a string or an integer, got {json_type(_id)}")
        if _id is None or not text or not text.strip():
            raise UserError(f"{path}:{lineno}: missing or empty field(s) _id or text")
        title = _text(path, lineno, obj.get("title"), "title") if with_title else None
        empty = False
        yield str(_id), (f"{title} {text}" if title and title.strip() else text), _lang(path, lineno, obj)
    if empty:
        raise UserError(f"{path}: corpus is empty")


def _beir_texts(path: Path, with_title: bool, with_texts: bool) -> tuple[list[str], list[str] | None, list[str | None]]:
    ids, texts, langs = [], [], []
    for _id, text, lang in _beir_rows(path, with_title):
        ids.append(_id)
        langs.append(lang)
        if with_texts:
            texts.append(text)
    _unique(path, ids)
    return ids, texts if with_texts else None, langs


def _qrels_rows(path: Path) -> Iterator[tuple[int, str, str, int]]:
    """(line number, query-id, corpus-id, grade) per row of a qrels TSV, without blank lines and the
    header. Parsed by csv as BEIR parses it (quotes included); line numbers are the file's lines."""
    if not path.is_file():
        raise UserError(f"{path}: file not found (a BEIR corpus folder holds qrels/test.tsv)")
    rows = csv.reader((line for _, line in text_lines(path)), delimiter="\t")
    try:
        for row in rows:
            lineno = rows.line_num
            if not row or (lineno == 1 and row[0] == "query-id"):
                continue
            if len(row) != 3:
                raise UserError(f"{path}:{lineno}: expected query-id, corpus-id, score separated by tabs, "
                                f"got {len(row)} column(s)")
            try:
                grade = int(row[2])
            except ValueError:
                raise UserError(f"{path}:{lineno}: score {row[2]!r} is not an integer") from None
            yield lineno, row[0], row[1], grade
    except csv.Error as exc:
        raise UserError(f"{path}:{rows.line_num}: not a valid TSV row ({exc})") from None


def _qrels_query_ids(path: Path) -> set[str]:
    """The query ids a qrels file names (the queries BEIR evaluates); _beir_qrels checks they exist."""
    return {qid for _, qid, _, _ in _qrels_rows(path)}


def _beir_qrels(path: Path, query_index: dict, doc_index: dict) -> dict[int, dict[int, int]]:
    qrels: dict[int, dict[int, int]] = {}
    for lineno, qid, did, grade in _qrels_rows(path):
        if qid not in query_index:
            raise UserError(f"{path}:{lineno}: query-id {qid!r} is not in queries.jsonl")
        if did not in doc_index:
            raise UserError(f"{path}:{lineno}: corpus-id {did!r} is not in corpus.jsonl")
        qrels.setdefault(query_index[qid], {})[doc_index[did]] = grade
    if not any(g > 0 for docs in qrels.values() for g in docs.values()):
        raise UserError(f"{path}: no relevant (score > 0) pair: nothing to measure retrieval on")
    return qrels


def load_beir(folder: Path, with_texts: bool = True) -> Corpus:
    """A BEIR folder. Only queries named in the qrels are evaluated (as BEIR does); every document
    is ranked. A query without a language of its own takes its first relevant document's."""
    doc_ids, docs, doc_langs = _beir_texts(folder / "corpus.jsonl", True, with_texts)
    all_qids, all_queries, all_qlangs = _beir_texts(folder / "queries.jsonl", False, with_texts)
    qrels_all = _beir_qrels(folder / "qrels" / "test.tsv", {q: i for i, q in enumerate(all_qids)},
                            {d: i for i, d in enumerate(doc_ids)})
    keep = sorted(qrels_all)
    qrels = {new: qrels_all[old] for new, old in enumerate(keep)}
    qlangs = [all_qlangs[old] or doc_langs[next(iter(qrels[new]))] for new, old in enumerate(keep)]
    return Corpus(folder, [all_qids[i] for i in keep], [all_queries[i] for i in keep] if with_texts else None,
                  [lang or UNKNOWN_LANG for lang in qlangs], doc_ids, docs,
                  [lang or UNKNOWN_LANG for lang in doc_langs], qrels)
