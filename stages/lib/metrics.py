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
    out["by_lang"] = {lang: describe(cos[sel]) for lang, sel in by_label(langs).items()}
    out["by_length"] = {name: describe(cos[sel]) for name, sel in length_buckets(lengths).items()}
    return out


def by_label(labels) -> dict[str, np.ndarray]:
    """One boolean mask per distinct label, labels sorted: the by-language breakdowns."""
    labels = np.asarray(labels)
    return {str(label): labels == label for label in sorted(set(labels.tolist()))}


def length_buckets(lengths) -> dict[str, np.ndarray]:
    """One boolean mask per LENGTH_BUCKETS bucket holding any text, in bucket order ("0-32" ... ">256")."""
    lengths = np.asarray(lengths)
    out = {}
    for lo, hi in LENGTH_BUCKETS:
        sel = (lengths >= lo) & (lengths <= hi)
        if sel.any():
            out[f"{lo}-{hi}" if hi < 10**9 else f">{lo - 1}"] = sel
    return out


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best scores per row, ties broken by lower index (deterministic).

    Exact, without sorting or partitioning whole rows: the row is cut into about n/w chunks of w;
    the k-th largest chunk maximum is a score that at least k scores reach, so every top-k score is
    at or above it, and only those few candidates are sorted (by score, then index)."""
    n_rows, n = scores.shape
    k = min(k, n)
    scores = _nan_last(scores)
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


def _nan_last(scores: np.ndarray) -> np.ndarray:
    """A NaN score (a NaN vector) ranks as -inf, last: it does not crash the ranking."""
    return np.where(np.isnan(scores), -np.inf, scores) if np.isnan(scores).any() else scores


def ranks_of(scores: np.ndarray, rows, cols) -> np.ndarray:
    """1-based rank of scores[rows[i], cols[i]] within its row over ALL columns, ties broken by lower
    column index exactly as top_k breaks them: a document ranked r <= k here is top_k's column r - 1.

    Counts the scores ahead (greater, or equal at a lower index) instead of sorting the row; pairs
    go in chunks of at most BLOCK_ELEMENTS compared scores, so memory does not grow with them."""
    scores = _nan_last(scores)
    rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
    n = scores.shape[1]
    out = np.empty(len(rows), dtype=np.int64)
    step = max(1, BLOCK_ELEMENTS // max(n, 1))
    for s in range(0, len(rows), step):
        r, c = rows[s:s + step], cols[s:s + step]
        block = scores[r[0]:r[-1] + 1] if np.all(np.diff(r) == 1) else scores[r]  # a view when paired
        own = block[np.arange(len(r)), c][:, None]
        ahead = np.count_nonzero(block > own, axis=1)
        tied = np.flatnonzero(np.count_nonzero(block == own, axis=1) > 1)  # rare: more than itself
        if len(tied):
            before = np.arange(n)[None, :] < c[tied, None]
            ahead[tied] += np.count_nonzero((block[tied] == own[tied]) & before, axis=1)
        out[s:s + len(r)] = ahead + 1
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


def scan_rankings(queries: np.ndarray, codes: np.ndarray, k: int, block: int | None = None,
                  on_block=None) -> np.ndarray:
    """Top-k code indices for every query, blockwise. `on_block(start, scores)`, if given, sees each
    block's scores (rows start.. of the queries) before they are ranked, as in similarity_agreement."""
    q, c = l2_normalize(queries.astype(np.float32)), l2_normalize(codes.astype(np.float32))
    block = block or query_block(len(c))
    out = []
    for start in range(0, len(q), block):
        scores = q[start:start + block] @ c.T
        if on_block is not None:
            on_block(start, scores)
        out.append(top_k(scores, k))
    return np.vstack(out)


def similarity_agreement(ref_q, ref_c, cand_q, cand_c, k: int, max_pairs: int, seed: int,
                         block: int | None = None, on_block=None) -> tuple[dict, np.ndarray, np.ndarray]:
    """Pearson (all pairs, streamed), Spearman (all pairs or a fixed sample), score drift, neighbours;
    and both models' top-max(k, 10) rankings, which the retrieval metrics read (one pass over
    the queries x documents scores serves both).

    Overlap is reported at 1, 10 (what the verdict reads) and k; RBO at depth k.
    `on_block(start, ref_scores, cand_scores)`, if given, sees each block's two score matrices (rows
    start.. of the queries), the very ones ranked here, before anything overwrites them: per-query
    work on the full rows (cases.TargetRanks) rides on this pass instead of scoring again."""
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
        if on_block is not None:
            on_block(start, sx, sy)
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


def as_qrels(relevant) -> dict[int, dict[int, int]]:
    """Qrels {query index: {document index: grade}} as given, or built from an array holding each
    query's one relevant document (grade 1)."""
    if isinstance(relevant, dict):
        return relevant
    return {i: {int(rel): 1} for i, rel in enumerate(relevant)}


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
    qrels = {f"q{q}": {f"d{d}": int(g) for d, g in docs.items()} for q, docs in as_qrels(relevant).items()}
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


EXACT_MAX_DIFFERENCES = 16  # up to 2^16 = 65,536 sign patterns: enumerated, not sampled


def randomization_test(cand, ref, n_permutations: int = 10_000, seed: int = 0,
                       exact_max: int = EXACT_MAX_DIFFERENCES) -> dict:
    """Paired randomization test of per-query scores (Smucker, Allan and Carterette, CIKM 2007): under
    the null hypothesis each query's two scores are exchangeable, so every per-query difference may
    have either sign. Statistic: the mean difference; two-sided: p = share of sign patterns whose
    |mean| reaches the observed one (equal up to rounding counts).

    Queries whose difference is zero do not change the statistic under any flip, so only the m
    nonzero differences are flipped: the same p as flipping all n. With m <= exact_max, all 2^m
    patterns are enumerated and p is exact (the observed pattern is one of them). Otherwise
    n_permutations random patterns from a generator seeded with `seed`, and p = (1 + hits) /
    (1 + n_permutations) (the observed pattern counted as one draw: Phipson and Smyth 2010), so a
    Monte Carlo p is never 0 and never below what the number of draws can show."""
    d = np.asarray(cand, dtype=np.float64) - np.asarray(ref, dtype=np.float64)
    d = d[d != 0]
    m = len(d)
    if m == 0:
        return {"p": 1.0, "method": "exact", "permutations": 1}
    total = d.sum()
    observed = abs(total) - 1e-10 * np.abs(d).sum()  # tolerance: the same sum added in another order
    if m <= exact_max:
        flips = (np.arange(2 ** m)[:, None] >> np.arange(m)) & 1  # row j: the bits of j, 1 = flipped
        hits = np.count_nonzero(np.abs(total - 2 * (flips @ d)) >= observed)
        return {"p": float(hits / 2 ** m), "method": "exact", "permutations": 2 ** m}
    rng = np.random.default_rng(seed)
    hits, chunk = 0, max(1, 2_000_000 // m)  # chunks of flips: n_permutations x m could be gigabytes
    for start in range(0, n_permutations, chunk):
        rows = min(chunk, n_permutations - start)
        flips = np.unpackbits(rng.integers(0, 256, size=(rows, (m + 7) // 8), dtype=np.uint8), axis=1, count=m)
        hits += np.count_nonzero(np.abs(total - 2 * (flips @ d)) >= observed)
    return {"p": float((1 + hits) / (1 + n_permutations)), "method": "monte_carlo", "permutations": n_permutations}


MIN_GROUP_QUERIES = 10  # fewer: no interval or p-value, the group is marked not measurable


def group_deltas(cand, ref, groups: dict[str, np.ndarray], n_boot: int, confidence: float, seed: int,
                 n_permutations: int = 10_000, min_queries: int = MIN_GROUP_QUERIES) -> dict:
    """A per-query metric's change inside each group of queries (a language, a length bucket), in
    the groups' order: the group's size and means, and for a group of at least `min_queries` the
    same paired bootstrap interval and Wilcoxon p as the whole corpus gets (paired_delta, same seed)
    plus the randomization p. A smaller group, one whose reference mean is 0 (no relative change)
    or whose interval is unbounded (resamples with a reference mean of 0) is `measurable: false`
    with its `reason` and no interval: a 5-query group's interval would look like a finding."""
    cand, ref = np.asarray(cand, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    out = {}
    for name, sel in groups.items():
        c, r = cand[sel], ref[sel]
        row = {"queries": int(len(r)), "reference": float(r.mean()), "candidate": float(c.mean()),
               "delta": float((c - r).mean())}
        reason = "too_few_queries" if len(r) < min_queries else "reference_zero" if r.mean() == 0 else None
        if reason is None:
            with np.errstate(all="ignore"):  # a resample with reference mean 0 divides by zero
                delta = paired_delta(c, r, n_boot, confidence, seed)
            if not np.isfinite([delta["relative_ci_low"], delta["relative_ci_high"]]).all():
                reason = "interval_unbounded"
            else:
                row.update(delta)
                row["randomization_p"] = randomization_test(c, r, n_permutations, seed)["p"]
        out[name] = {**row, "measurable": reason is None, **({"reason": reason} if reason else {})}
    return out


def norms(x: np.ndarray) -> dict:
    n = np.linalg.norm(x.astype(np.float64), axis=1)
    return {"mean": float(n.mean()), "min": float(n.min()), "max": float(n.max())}
