"""Where a candidate loses and gains against the reference, query by query (issue 19).

metrics.py turns per-query scores into aggregates; this module keeps the queries: for each one,
where its best relevant document ranks under each model (over ALL documents, not only the top 10),
which document each model put first, and whether any relevant document reached either top 10.

The best relevant document of a query is the relevant one (grade >= 1, whatever the grade) that
the REFERENCE ranks highest: the answer a user of the reference meets first, behind the
reference's reciprocal rank and its largest nDCG term. The candidate is ranked on that same
document, so the two ranks are comparable. (Taking the highest grade first would follow, for a
query the reference answers at rank 1 with a grade-1 document, a grade-2 document at rank 300
whose movements change no metric.)

The loss measure is the change in that document's reciprocal rank, 1/candidate - 1/reference
(negative: a loss). It puts "fell from 1 to 40" (-0.975) far above "fell from 300 to 900"
(-0.002), as a reader's attention and the @10 metrics do, is bounded in [-1, 1], and is the
per-query term of MRR over the full ranking.

Ranks come from the agreement pass's own score blocks (TargetRanks rides on
metrics.similarity_agreement's `on_block`): no second pass over queries x documents, and each
rank agrees with that pass's top-10 lists to the tie.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .metrics import as_qrels, ranks_of

TEXT_WIDTH = 160  # characters of a text kept in results/cases/NAME.jsonl and the compare document


def short_text(text: str, width: int = TEXT_WIDTH) -> str:
    """`text` on one line (whitespace runs folded: code keeps its tokens, not its layout), cut to
    `width` characters with "..." (ASCII: a Windows console prints it) where it was longer."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[:max(width - 3, 0)].rstrip() + "..."


def relevant_pairs(relevant, n_queries: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(query, document, grade) arrays of every relevant pair (grade >= 1), sorted by query then
    document. `relevant` as retrieval_per_query takes it: qrels, or one relevant document per query."""
    qrels = as_qrels(relevant)
    pairs = sorted((q, d, g) for q, docs in qrels.items() if 0 <= q < n_queries for d, g in docs.items() if g >= 1)
    q, d, g = (np.array(col, dtype=np.int64) for col in zip(*pairs)) if pairs else (np.empty(0, np.int64),) * 3
    return q, d, g


class TargetRanks:
    """Each query's best relevant document and its rank under both models, filled block by block as
    `similarity_agreement(..., on_block=ranks)` scores them (memory: a few numbers per query).

    After the pass: `target[q]` the document (-1 when the query has no relevant document),
    `grade[q]` its grade, `reference[q]` and `candidate[q]` its 1-based ranks (0 when no target)."""

    def __init__(self, relevant, n_queries: int):
        self.pairs = relevant_pairs(relevant, n_queries)
        self.target = np.full(n_queries, -1, dtype=np.int64)
        self.grade = np.zeros(n_queries, dtype=np.int64)
        self.reference = np.zeros(n_queries, dtype=np.int64)
        self.candidate = np.zeros(n_queries, dtype=np.int64)
        self.scored = 0  # queries whose block was seen

    def __call__(self, start: int, ref_scores: np.ndarray, cand_scores: np.ndarray) -> None:
        q_all, d_all, g_all = self.pairs
        lo, hi = np.searchsorted(q_all, [start, start + len(ref_scores)])
        self.scored += len(ref_scores)
        if lo == hi:
            return
        q, d = q_all[lo:hi], d_all[lo:hi]
        ref_rank = ranks_of(ref_scores, q - start, d)
        order = np.lexsort((ref_rank, q))  # per query, its relevant documents best-ranked first
        first = order[np.r_[True, q[order][1:] != q[order][:-1]]]
        queries, docs = q[first], d[first]
        self.target[queries], self.grade[queries] = docs, g_all[lo:hi][first]
        self.reference[queries] = ref_rank[first]
        self.candidate[queries] = ranks_of(cand_scores, queries - start, docs)

    def check_complete(self) -> None:
        if self.scored != len(self.target):
            raise ValueError(f"TargetRanks saw {self.scored} of {len(self.target)} queries: not every block was passed")


def hits_at(rankings: np.ndarray, relevant, k: int = 10) -> np.ndarray:
    """Per query: does any relevant document (grade >= 1) stand in its first k ranked documents?"""
    q, d, _ = relevant_pairs(relevant, len(rankings))
    out = np.zeros(len(rankings), dtype=bool)
    out[q[(rankings[q, :k] == d[:, None]).any(axis=1)]] = True
    return out


def missed_by_all(hits: Mapping[str, Sequence[bool]]) -> np.ndarray:
    """Indices of the queries no model (the reference among them) has a relevant document for in
    its top 10: they point at the labels or the corpus, not at quantization. `hits`: model name ->
    per-query hit flags (hits_at, or the `*_hit@10` fields of each candidate's case rows)."""
    if not hits:
        raise ValueError("missed_by_all needs the hit flags of at least one model")
    arrays = {name: np.asarray(flags, dtype=bool) for name, flags in hits.items()}
    sizes = {len(a) for a in arrays.values()}
    if len(sizes) != 1:
        raise ValueError(f"hit flags of different lengths: {', '.join(f'{n} {len(a)}' for n, a in arrays.items())}")
    return np.flatnonzero(~np.logical_or.reduce(list(arrays.values())))


def case_rows(ranks: TargetRanks, ref_top1, cand_top1, ref_hit, cand_hit, *, query_ids=None, doc_ids=None,
              langs=None, lengths=None) -> list[dict]:
    """One row per query, ready for a JSONL file: its best relevant document, the rank each model
    gives it, the reciprocal-rank change, the document each model ranked first and both hit@10
    flags; labels (ids, language, query length in tokens) where given. A query without a relevant
    document keeps its row (its flags count for missed_by_all) with null document and ranks."""
    ranks.check_complete()
    rows = []
    for i, doc in enumerate(ranks.target.tolist()):
        has = doc >= 0
        r, c = int(ranks.reference[i]), int(ranks.candidate[i])
        row = {"query": i}
        if query_ids is not None:
            row["query_id"] = query_ids[i]
        if langs is not None:
            row["lang"] = langs[i]
        if lengths is not None:
            row["length"] = int(lengths[i])
        row.update({"document": doc if has else None, "grade": int(ranks.grade[i]) if has else None,
                    "reference_rank": r if has else None, "candidate_rank": c if has else None,
                    "rr_change": 1 / c - 1 / r if has else None,
                    "reference_first": int(ref_top1[i]), "candidate_first": int(cand_top1[i]),
                    "reference_hit@10": bool(ref_hit[i]), "candidate_hit@10": bool(cand_hit[i])})
        if doc_ids is not None:
            row.update({"document_id": doc_ids[doc] if has else None,
                        "reference_first_id": doc_ids[int(ref_top1[i])],
                        "candidate_first_id": doc_ids[int(cand_top1[i])]})
        rows.append(row)
    return rows


def top_cases(rows: list[dict], n: int) -> dict:
    """The n largest losses (most negative rr_change first) and the n largest gains, each ordered by
    size then query index, with how many queries lost, gained, kept their rank or had no relevant document."""
    ranked = [r for r in rows if r["rr_change"] is not None]
    losses = sorted((r for r in ranked if r["rr_change"] < 0), key=lambda r: (r["rr_change"], r["query"]))
    gains = sorted((r for r in ranked if r["rr_change"] > 0), key=lambda r: (-r["rr_change"], r["query"]))
    return {"losses": losses[:n], "gains": gains[:n],
            "counts": {"lost": len(losses), "gained": len(gains), "same": len(ranked) - len(losses) - len(gains),
                       "no_relevant": len(rows) - len(ranked)}}
