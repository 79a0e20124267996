"""Quality metrics: agreement of a candidate with the reference, and task (retrieval) quality.

Everything that would need an N x N similarity matrix is computed in query blocks sized so a block
holds at most BLOCK_ELEMENTS scores, so 100k texts never materialise a 100k x 100k matrix and the
memory per block stays the same however many documents there are. Scores are cosine similarities
(vectors normalised here, whatever the model's own normalisation), ranked with ties broken by
corpus order.
"""
from __future__ import annotations

import numpy as np
from scipy import stats

from .pooling import l2_normalize

HIST_EDGES = [-1.0, 0.0, 0.5, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.999, 1.0 + 1e-6]
LENGTH_BUCKETS = [(0, 32), (33, 64), (65, 128), (129, 256), (257, 10**9)]
BLOCK_ELEMENTS = 4_000_000  # scores per query block: 32 MB as float64, a few such arrays alive at once


def query_block(n_documents: int) -> int:
    """Queries per block: 1024 for small corpora, fewer as documents grow (at least one)."""
    return max(1, min(1024, BLOCK_ELEMENTS // max(n_documents, 1)))


def row_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(l2_normalize(a.astype(np.float64)) * l2_normalize(b.astype(np.float64)), axis=1)


def describe(values: np.ndarray) -> dict:
    v = np.asarray(values, dtype=np.float64)
    p1, p5 = np.percentile(v, [1, 5])
    return {"count": int(v.size), "mean": float(v.mean()), "min": float(v.min()), "p1": float(p1), "p5": float(p5)}


def cosine_agreement(ref: np.ndarray, cand: np.ndarray, langs: list[str], lengths: np.ndarray) -> dict:
    """Per-text cosine between the two models' vectors, overall, by language and by token length."""
    cos = row_cosine(ref, cand)
    counts, _ = np.histogram(cos, bins=HIST_EDGES)
    out = describe(cos)
    out["histogram"] = {"edges": HIST_EDGES, "counts": counts.tolist()}
    langs_arr = np.asarray(langs)
    out["by_lang"] = {lang: describe(cos[langs_arr == lang]) for lang in sorted(set(langs))}
    buckets = {}
    for lo, hi in LENGTH_BUCKETS:
        sel = (lengths >= lo) & (lengths <= hi)
        if sel.any():
            buckets[f"{lo}-{hi}" if hi < 10**9 else f">{lo - 1}"] = describe(cos[sel])
    out["by_length"] = buckets
    return out


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best scores per row, ties broken by lower index (deterministic).

    Exact, without sorting or partitioning whole rows: the row is cut into about n/w chunks of w;
    the k-th largest chunk maximum is a score that at least k scores reach, so every top-k score is
    at or above it, and only those few candidates are sorted (by score, then index)."""
    n_rows, n = scores.shape
    k = min(k, n)
    if np.isnan(scores).any():  # a NaN vector ranks last, it does not crash
        scores = np.where(np.isnan(scores), -np.inf, scores)
    width = max(1, int(np.sqrt(n / max(k, 1))))
    chunks = n // width
    if chunks >= k and width > 1:
        maxima = scores[:, :chunks * width].reshape(n_rows, chunks, width).max(axis=2)
        if chunks * width < n:
            maxima = np.hstack([maxima, scores[:, chunks * width:].max(axis=1, keepdims=True)])
        floor = np.partition(maxima, maxima.shape[1] - k, axis=1)[:, maxima.shape[1] - k]
    else:
        floor = np.partition(scores, n - k, axis=1)[:, n - k]
    rows, cols = np.nonzero(scores >= floor[:, None])
    order = np.lexsort((cols, -scores[rows, cols], rows))
    rows, cols = rows[order], cols[order]
    rank = np.arange(len(rows)) - np.searchsorted(rows, np.arange(n_rows))[rows]  # position within its row
    keep = rank < k
    out = np.empty((n_rows, k), dtype=np.int64)
    out[rows[keep], rank[keep]] = cols[keep]
    return out


def rbo(a, b, p: float = 0.9) -> float:
    """Extrapolated rank-biased overlap (Webber et al. 2010, eq. 32) of two equal-length rankings."""
    k = len(a)
    if k == 0:
        return float("nan")
    seen_a, seen_b, overlap, total = set(), set(), 0, 0.0
    for d in range(1, k + 1):
        x, y = a[d - 1], b[d - 1]
        if x == y:
            overlap += 1
        else:
            overlap += (x in seen_b) + (y in seen_a)
        seen_a.add(x)
        seen_b.add(y)
        total += p ** (d - 1) * overlap / d
    return float((1 - p) * total + p ** k * overlap / k)


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA (Kornblith et al. 2019) via d x d feature products: no n x n Gram matrix."""
    x = x.astype(np.float64) - x.mean(axis=0)
    y = y.astype(np.float64) - y.mean(axis=0)
    cross = np.linalg.norm(y.T @ x) ** 2
    return float(cross / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def scan_rankings(queries: np.ndarray, codes: np.ndarray, k: int, block: int | None = None) -> np.ndarray:
    """Top-k code indices for every query, blockwise."""
    q, c = l2_normalize(queries.astype(np.float32)), l2_normalize(codes.astype(np.float32))
    block = block or query_block(len(c))
    return np.vstack([top_k(q[i:i + block] @ c.T, k) for i in range(0, len(q), block)])


def similarity_agreement(ref_q, ref_c, cand_q, cand_c, k: int, max_pairs: int, seed: int,
                         block: int | None = None) -> tuple[dict, np.ndarray, np.ndarray]:
    """Pearson (all pairs, streamed), Spearman (all pairs or a fixed sample), score drift, neighbours;
    and both models' top-max(k, 10) rankings, which the retrieval metrics read (one pass over
    the queries x documents scores serves both).

    Overlap is reported at 1, 10 (what the verdict reads) and k; RBO at depth k."""
    rq, rc = l2_normalize(ref_q.astype(np.float32)), l2_normalize(ref_c.astype(np.float32))
    cq, cc = l2_normalize(cand_q.astype(np.float32)), l2_normalize(cand_c.astype(np.float32))
    nq, nc = len(rq), len(rc)
    block = block or query_block(nc)
    total = nq * nc
    rng = np.random.default_rng(seed)
    sample = None if total <= max_pairs else np.sort(rng.choice(total, size=max_pairs, replace=False))
    sums = np.zeros(6)  # sx, sy, sxx, syy, sxy, |x-y|, accumulated in float64
    size = min(block, nq) * nc
    x64, y64 = np.empty(size), np.empty(size)  # reused for every block: no fresh pages per block
    xs, ys = [], []
    ref_top, cand_top = [], []
    for start in range(0, nq, block):
        sx, sy = rq[start:start + block] @ rc.T, cq[start:start + block] @ cc.T
        ref_top.append(top_k(sx, max(k, 10)))
        cand_top.append(top_k(sy, max(k, 10)))
        x, y = x64[:sx.size], y64[:sx.size]
        np.copyto(x, sx.ravel())
        np.copyto(y, sy.ravel())
        if sample is None:
            xs.append(x.copy())
            ys.append(y.copy())
        else:
            lo, hi = start * nc, (start + len(sx)) * nc
            sel = sample[np.searchsorted(sample, lo):np.searchsorted(sample, hi)] - lo
            xs.append(x[sel])
            ys.append(y[sel])
        products = [x.sum(), y.sum(), x @ x, y @ y, x @ y]
        np.abs(np.subtract(x, y, out=x), out=x)  # x is not needed any more: |x - y| in its place
        sums += products + [x.sum()]
    mx, my = sums[0] / total, sums[1] / total
    cov = sums[4] / total - mx * my
    pearson = cov / np.sqrt((sums[2] / total - mx * mx) * (sums[3] / total - my * my))
    spearman = stats.spearmanr(np.concatenate(xs), np.concatenate(ys)).statistic
    ref_top, cand_top = np.vstack(ref_top), np.vstack(cand_top)
    overlap = {f"overlap@{kk}": float(np.mean([len(set(a[:kk]) & set(b[:kk])) / kk for a, b in zip(ref_top, cand_top)]))
               for kk in sorted({1, 10, k})}
    return {
        "pairs": int(total),
        "pearson": float(pearson),
        "spearman": float(spearman),
        "spearman_pairs": int(total if sample is None else max_pairs),
        "score_drift_mean_abs": float(sums[5] / total),
        **overlap,
        "top1_agreement": overlap["overlap@1"],  # the same quantity, under the name the report uses
        f"rbo@{k}": float(np.mean([rbo(a[:k].tolist(), b[:k].tolist()) for a, b in zip(ref_top, cand_top)])),
    }, ref_top, cand_top


RETRIEVAL_MEASURES = {"ndcg@10": "ndcg_cut_10", "mrr@10": "recip_rank", "recall@1": "recall_1",
                      "recall@10": "recall_10"}


def retrieval_per_query(rankings: np.ndarray, relevant) -> dict[str, np.ndarray]:
    """Per-query nDCG@10, MRR@10, recall@1/10 from pytrec_eval, given each query's top-10 document indices.

    `relevant`: qrels as {query index: {document index: grade}} (graded, several per query), or an
    array holding each query's one relevant document. pytrec_eval takes the qrels as they are.
    The run holds only the top 10, so reciprocal rank is MRR@10. Scores passed to trec_eval strictly
    decrease with rank, so its own tie-breaking never applies: ours (corpus order) does.
    """
    import pytrec_eval

    if rankings.shape[1] < 10:
        raise ValueError("retrieval metrics need at least 10 ranked documents per query")
    if not isinstance(relevant, dict):
        relevant = {i: {int(rel): 1} for i, rel in enumerate(relevant)}
    qrels = {f"q{q}": {f"d{d}": int(g) for d, g in docs.items()} for q, docs in relevant.items()}
    run = {f"q{i}": {f"d{int(doc)}": float(10 - r) for r, doc in enumerate(row[:10])} for i, row in enumerate(rankings)}
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, set(RETRIEVAL_MEASURES.values()))
    scores = evaluator.evaluate(run)
    return {name: np.array([scores[f"q{i}"][measure] for i in range(len(rankings))])
            for name, measure in RETRIEVAL_MEASURES.items()}


def paired_delta(cand: np.ndarray, ref: np.ndarray, n_boot: int, confidence: float, seed: int) -> dict:
    """Relative change of the mean (cand / ref - 1), its paired bootstrap interval, and a Wilcoxon test."""
    cand, ref = np.asarray(cand, float), np.asarray(ref, float)
    rng = np.random.default_rng(seed)
    rel = np.empty(n_boot)
    chunk = max(1, 2_000_000 // len(ref))  # resample in chunks: n_boot x n indices could be gigabytes
    for start in range(0, n_boot, chunk):
        idx = rng.integers(0, len(ref), size=(min(chunk, n_boot - start), len(ref)))
        with np.errstate(divide="ignore", invalid="ignore"):
            rel[start:start + len(idx)] = cand[idx].mean(axis=1) / ref[idx].mean(axis=1) - 1
    alpha = (1 - confidence) / 2
    lo, hi = np.nanpercentile(rel, [100 * alpha, 100 * (1 - alpha)])
    diff = cand - ref
    p = float(stats.wilcoxon(diff, zero_method="zsplit").pvalue) if np.any(diff != 0) else 1.0
    return {"reference": float(ref.mean()), "candidate": float(cand.mean()), "delta": float(diff.mean()),
            "relative": float(cand.mean() / ref.mean() - 1) if ref.mean() else None,
            "relative_ci_low": float(lo), "relative_ci_high": float(hi), "wilcoxon_p": p}


def norms(x: np.ndarray) -> dict:
    n = np.linalg.norm(x.astype(np.float64), axis=1)
    return {"mean": float(n.mean()), "min": float(n.min()), "max": float(n.max())}
