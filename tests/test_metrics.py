"""stages/lib/metrics.py against independent computations (sklearn, scipy, brute-force loops)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import ndcg_score
from sklearn.metrics.pairwise import cosine_similarity

from stages.lib import metrics
from stages.lib.metrics import (
    cosine_agreement,
    describe,
    linear_cka,
    norms,
    paired_delta,
    rbo,
    retrieval_per_query,
    row_cosine,
    scan_rankings,
    similarity_agreement,
    top_k,
)

# ---------------------------------------------------------------- independent helpers

def percentile_linear(values, q: float) -> float:
    """Percentile with linear interpolation between order statistics (numpy's default), by hand."""
    v = sorted(float(x) for x in values)
    pos = (len(v) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def brute_top(scores: np.ndarray, k: int) -> np.ndarray:
    """Top-k per row by a stable sort of the negated scores: ties keep the lower index first."""
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def rbo_ext_reference(a, b, p: float = 0.9) -> float:
    """Webber et al. (2010) eq. 32, written from the definition with explicit prefix-set overlaps X_d."""
    k = len(a)
    x = [len(set(a[:d]) & set(b[:d])) for d in range(1, k + 1)]
    head = (1 - p) / p * sum(x[d - 1] / d * p ** d for d in range(1, k + 1))
    return head + x[k - 1] / k * p ** k


def cka_gram(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA through n x n Gram matrices and HSIC(K, L) = trace(K H L H)."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    kx, ky = x @ x.T, y @ y.T

    def hsic(a, b):
        return np.trace(a @ h @ b @ h)

    return float(hsic(kx, ky) / np.sqrt(hsic(kx, kx) * hsic(ky, ky)))


def make_spaces(seed: int, nq: int, nc: int, d: int, noise: float):
    """Reference query/code vectors and a candidate = reference + noise (noise=None: unrelated space)."""
    rng = np.random.default_rng(seed)
    rq, rc = rng.normal(size=(nq, d)), rng.normal(size=(nc, d))
    if noise is None:
        cq, cc = rng.normal(size=(nq, d)), rng.normal(size=(nc, d))
    else:
        cq, cc = rq + noise * rng.normal(size=rq.shape), rc + noise * rng.normal(size=rc.shape)
    return rq.astype(np.float32), rc.astype(np.float32), cq.astype(np.float32), cc.astype(np.float32)


# ---------------------------------------------------------------- row_cosine / describe / cosine_agreement

def test_row_cosine_matches_sklearn_diagonal():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(25, 12)) * rng.uniform(0.1, 10, size=(25, 1))  # norms far from 1
    b = a + rng.normal(size=a.shape)
    expected = np.diag(cosine_similarity(a, b))
    np.testing.assert_allclose(row_cosine(a, b), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(row_cosine(a.astype(np.float32), b.astype(np.float32)), expected, atol=1e-6)
    np.testing.assert_allclose(row_cosine(a, a), 1.0, atol=1e-12)
    np.testing.assert_allclose(row_cosine(a, -a), -1.0, atol=1e-12)


def test_describe_matches_hand_percentiles():
    rng = np.random.default_rng(2)
    v = rng.uniform(-1, 1, size=57)
    d = describe(v)
    assert d["count"] == 57
    assert d["mean"] == pytest.approx(sum(v) / len(v), abs=1e-12)
    assert d["min"] == min(v)
    assert d["p1"] == pytest.approx(percentile_linear(v, 1), abs=1e-12)
    assert d["p5"] == pytest.approx(percentile_linear(v, 5), abs=1e-12)
    assert d["p1"] == pytest.approx(np.percentile(v, 1), abs=1e-12)


def test_cosine_agreement_overall_by_lang_and_by_length():
    rng = np.random.default_rng(3)
    n, d = 120, 16
    ref = rng.normal(size=(n, d))
    cand = ref + rng.uniform(0.0, 1.5, size=(n, 1)) * rng.normal(size=(n, d))
    langs = list(rng.choice(["python", "go", "java"], size=n))
    lengths = rng.integers(1, 400, size=n)
    lengths[:5] = [32, 33, 64, 256, 257]  # bucket edges
    out = cosine_agreement(ref, cand, langs, lengths)

    cos = np.diag(cosine_similarity(ref, cand))
    assert out["count"] == n
    assert out["mean"] == pytest.approx(cos.mean(), abs=1e-12)
    assert out["min"] == pytest.approx(cos.min(), abs=1e-12)
    assert out["p1"] == pytest.approx(percentile_linear(cos, 1), abs=1e-12)
    assert out["p5"] == pytest.approx(percentile_linear(cos, 5), abs=1e-12)

    edges = out["histogram"]["edges"]
    manual = [sum(1 for c in cos if lo <= c < hi) for lo, hi in zip(edges[:-1], edges[1:])]
    assert out["histogram"]["counts"] == manual
    assert sum(out["histogram"]["counts"]) == n

    assert set(out["by_lang"]) == {"python", "go", "java"}
    for lang, got in out["by_lang"].items():
        sel = [c for c, text_lang in zip(cos, langs) if text_lang == lang]
        assert got["count"] == len(sel)
        assert got["mean"] == pytest.approx(np.mean(sel), abs=1e-12)
        assert got["min"] == pytest.approx(min(sel), abs=1e-12)
        assert got["p5"] == pytest.approx(percentile_linear(sel, 5), abs=1e-12)

    buckets = {"0-32": (0, 32), "33-64": (33, 64), "65-128": (65, 128), "129-256": (129, 256), ">256": (257, 10**9)}
    assert set(out["by_length"]) == set(buckets)
    total = 0
    for name, (lo, hi) in buckets.items():
        sel = [c for c, L in zip(cos, lengths) if lo <= L <= hi]
        got = out["by_length"][name]
        assert got["count"] == len(sel)
        assert got["mean"] == pytest.approx(np.mean(sel), abs=1e-12)
        assert got["min"] == pytest.approx(min(sel), abs=1e-12)
        total += got["count"]
    assert total == n  # buckets partition the texts


def test_cosine_agreement_omits_empty_length_buckets():
    rng = np.random.default_rng(4)
    ref = rng.normal(size=(6, 4))
    out = cosine_agreement(ref, ref, ["py"] * 6, np.array([3, 10, 20, 40, 50, 60]))
    assert set(out["by_length"]) == {"0-32", "33-64"}
    assert out["by_length"]["0-32"]["count"] == 3
    assert out["mean"] == pytest.approx(1.0, abs=1e-12)


def test_norms_match_numpy():
    rng = np.random.default_rng(5)
    x = (rng.normal(size=(30, 7)) * rng.uniform(0.5, 3, size=(30, 1))).astype(np.float32)
    n = np.sqrt(np.einsum("ij,ij->i", x.astype(np.float64), x.astype(np.float64)))
    got = norms(x)
    assert got == pytest.approx({"mean": n.mean(), "min": n.min(), "max": n.max()}, abs=1e-9)


# ---------------------------------------------------------------- top_k / scan_rankings

def test_top_k_ties_by_lower_index():
    scores = np.array([[1.0, 3.0, 3.0, 2.0, 3.0],
                       [0.0, 0.0, 0.0, 0.0, 0.0],
                       [5.0, 4.0, 4.0, 4.0, 1.0]])
    np.testing.assert_array_equal(top_k(scores, 2), [[1, 2], [0, 1], [0, 1]])
    np.testing.assert_array_equal(top_k(scores, 4), [[1, 2, 4, 3], [0, 1, 2, 3], [0, 1, 2, 3]])


def test_top_k_equals_stable_argsort_with_many_ties():
    rng = np.random.default_rng(6)
    scores = rng.integers(0, 5, size=(40, 30)).astype(np.float64)
    for k in (1, 3, 10, 30):
        np.testing.assert_array_equal(top_k(scores, k), brute_top(scores, k))


def test_top_k_on_wide_rows_equals_stable_argsort():
    """Rows wide enough for the chunk-maximum shortcut (with a ragged last chunk), with and without ties."""
    rng = np.random.default_rng(11)
    tied = rng.integers(0, 20, size=(30, 1003)).astype(np.float32)  # ~50 copies of each value per row
    smooth = rng.normal(size=(30, 1003)).astype(np.float32)
    smooth[3] = -np.inf  # a row where every score ties
    for scores in (tied, smooth):
        for k in (1, 10, 25):
            np.testing.assert_array_equal(top_k(scores, k), brute_top(scores, k))


def test_top_k_clamps_k_to_width():
    scores = np.random.default_rng(7).normal(size=(4, 6))
    np.testing.assert_array_equal(top_k(scores, 50), brute_top(scores, 6))


def test_top_k_independent_of_column_order():
    rng = np.random.default_rng(8)
    scores = rng.normal(size=(25, 40))  # continuous: no ties
    perm = rng.permutation(40)
    permuted = scores[:, perm]  # column j of permuted is original column perm[j]
    np.testing.assert_array_equal(perm[top_k(permuted, 10)], top_k(scores, 10))
    np.testing.assert_array_equal(top_k(scores, 10), brute_top(scores, 10))


def test_scan_rankings_blockwise_equals_full_cosine_ranking():
    rng = np.random.default_rng(9)
    q, c = rng.normal(size=(23, 8)) * 4, rng.normal(size=(31, 8)) * 0.1
    expected = brute_top(cosine_similarity(q, c), 10)
    np.testing.assert_array_equal(scan_rankings(q, c, 10, block=5), expected)
    np.testing.assert_array_equal(scan_rankings(q, c, 10), expected)


def test_top_k_survives_a_nan_row():
    scores = np.random.default_rng(10).normal(size=(3, 12))
    scores[1] = np.nan
    out = top_k(scores, 10)
    assert out.shape == (3, 10)
    np.testing.assert_array_equal(out[0], brute_top(scores[:1], 10)[0])


# ---------------------------------------------------------------- rbo

def test_rbo_hand_values():
    assert rbo([1, 2, 3], [1, 2, 3]) == pytest.approx(1.0, abs=1e-12)
    assert rbo(list(range(10)), list(range(10))) == pytest.approx(1.0, abs=1e-12)
    assert rbo([1, 2, 3], [4, 5, 6]) == 0.0
    # X_1 = 0, X_2 = 2, X_3 = 2; (1-p)/p * (0 + 2/2 p^2 + 2/3 p^3) + 2/3 p^3 with p = 0.9
    assert rbo([1, 2, 3], [2, 1, 4]) == pytest.approx(0.1 * 0.9 + 0.1 * (2 / 3) * 0.81 + (2 / 3) * 0.729, abs=1e-12)
    assert rbo([1, 2, 3], [2, 1, 4]) == pytest.approx(0.63, abs=1e-12)
    assert math.isnan(rbo([], []))


def test_rbo_matches_definition_on_random_rankings():
    rng = np.random.default_rng(11)
    for _ in range(50):
        k = int(rng.integers(1, 15))
        pool = rng.permutation(20)
        a = list(rng.permutation(pool[:14])[:k])
        b = list(rng.permutation(pool[4:18])[:k])
        for p in (0.5, 0.9, 0.98):
            assert rbo(a, b, p) == pytest.approx(rbo_ext_reference(a, b, p), abs=1e-12)
        assert rbo(a, b) == pytest.approx(rbo(b, a), abs=1e-12)


# ---------------------------------------------------------------- linear CKA

def test_linear_cka_matches_gram_hsic_formulation():
    rng = np.random.default_rng(12)
    x = rng.normal(size=(40, 6)) + 3.0  # non-zero mean: centring matters
    y = x @ rng.normal(size=(6, 9)) + 0.5 * rng.normal(size=(40, 9))
    assert linear_cka(x, y) == pytest.approx(cka_gram(x, y), rel=1e-10)
    z = rng.normal(size=(40, 5))
    assert linear_cka(x, z) == pytest.approx(cka_gram(x, z), rel=1e-10)
    assert linear_cka(x, x) == pytest.approx(1.0, rel=1e-12)


def test_linear_cka_invariant_to_rotation_and_isotropic_scaling():
    rng = np.random.default_rng(13)
    x = rng.normal(size=(50, 8))
    y = x + 0.7 * rng.normal(size=x.shape)
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    base = linear_cka(x, y)
    assert linear_cka(x, y @ q) == pytest.approx(base, rel=1e-10)
    assert linear_cka(x, 3.7 * y) == pytest.approx(base, rel=1e-10)
    assert linear_cka(x, 0.01 * (y @ q)) == pytest.approx(base, rel=1e-10)
    # but not to a non-isotropic scaling
    assert linear_cka(x, y * np.linspace(0.1, 10, 8)) != pytest.approx(base, rel=1e-3)


# ---------------------------------------------------------------- similarity_agreement

def reference_agreement(rq, rc, cq, cc, k):
    """Everything similarity_agreement reports, from full float64 cosine matrices and brute-force loops."""
    sx, sy = cosine_similarity(rq.astype(np.float64), rc.astype(np.float64)), \
        cosine_similarity(cq.astype(np.float64), cc.astype(np.float64))
    tx, ty = brute_top(sx, k), brute_top(sy, k)
    out = {"pairs": sx.size,
           "pearson": stats.pearsonr(sx.ravel(), sy.ravel()).statistic,
           "spearman": stats.spearmanr(sx.ravel(), sy.ravel()).statistic,
           "score_drift_mean_abs": np.abs(sx - sy).mean(),
           "top1_agreement": np.mean([tx[i, 0] == ty[i, 0] for i in range(len(tx))]),
           f"rbo@{k}": np.mean([rbo_ext_reference(list(a), list(b)) for a, b in zip(tx, ty)])}
    for kk in (1, k):
        out[f"overlap@{kk}"] = np.mean([len(set(a[:kk]) & set(b[:kk])) / kk for a, b in zip(tx, ty)])
    return out


@pytest.mark.parametrize("noise", [0.05, 0.6, None], ids=["perturbed", "moderate", "unrelated"])
def test_similarity_agreement_matches_independent_full_computation(noise):
    rq, rc, cq, cc = make_spaces(20, nq=37, nc=53, d=16, noise=noise)
    got = similarity_agreement(rq, rc, cq, cc, k=10, max_pairs=10**6, seed=0)[0]
    exp = reference_agreement(rq, rc, cq, cc, 10)
    _, ref_top, cand_top = similarity_agreement(rq, rc, cq, cc, k=10, max_pairs=10**6, seed=0)
    np.testing.assert_array_equal(ref_top, brute_top(cosine_similarity(rq, rc), 10))  # what task metrics read
    np.testing.assert_array_equal(cand_top, brute_top(cosine_similarity(cq, cc), 10))
    assert got["pairs"] == 37 * 53
    assert got["spearman_pairs"] == 37 * 53
    for key in ("pearson", "spearman", "score_drift_mean_abs"):
        assert got[key] == pytest.approx(exp[key], abs=2e-5), key
    for key in ("overlap@1", "overlap@10", "top1_agreement", "rbo@10"):
        assert got[key] == pytest.approx(exp[key], abs=1e-12), key
    assert set(got) == {"pairs", "pearson", "spearman", "spearman_pairs", "score_drift_mean_abs",
                        "overlap@1", "overlap@10", "top1_agreement", "rbo@10"}


def test_similarity_agreement_block_size_does_not_matter():
    rq, rc, cq, cc = make_spaces(21, nq=40, nc=45, d=12, noise=0.4)
    for max_pairs in (10**6, 700):  # full and sampled Spearman
        small = similarity_agreement(rq, rc, cq, cc, k=10, max_pairs=max_pairs, seed=3, block=7)[0]
        big = similarity_agreement(rq, rc, cq, cc, k=10, max_pairs=max_pairs, seed=3, block=1024)[0]
        assert small.keys() == big.keys()
        for key in big:
            # float32 products differ by block shape
            assert small[key] == pytest.approx(big[key], rel=1e-6, abs=1e-9), key


def test_similarity_agreement_sampled_spearman_is_close_to_full():
    rq, rc, cq, cc = make_spaces(22, nq=60, nc=80, d=16, noise=0.8)
    full = similarity_agreement(rq, rc, cq, cc, k=10, max_pairs=10**6, seed=0)[0]
    exact = stats.spearmanr(cosine_similarity(rq, rc).ravel(), cosine_similarity(cq, cc).ravel()).statistic
    assert full["spearman"] == pytest.approx(exact, abs=2e-5)
    assert 0.4 < exact < 0.9  # a correlation the sampling can get wrong
    for seed in (0, 1, 2):
        sampled = similarity_agreement(rq, rc, cq, cc, k=10, max_pairs=1500, seed=seed)[0]
        assert sampled["spearman_pairs"] == 1500
        assert sampled["pairs"] == 4800
        assert sampled["spearman"] == pytest.approx(exact, abs=0.04)
        # everything else is still over all pairs
        assert sampled["pearson"] == full["pearson"]
        assert sampled["overlap@10"] == full["overlap@10"]


def test_similarity_agreement_max_pairs_equal_to_total_is_full():
    rq, rc, cq, cc = make_spaces(23, nq=10, nc=12, d=6, noise=0.5)
    got = similarity_agreement(rq, rc, cq, cc, k=10, max_pairs=120, seed=0)[0]
    assert got["spearman_pairs"] == 120
    exact = stats.spearmanr(cosine_similarity(rq, rc).ravel(), cosine_similarity(cq, cc).ravel()).statistic
    assert got["spearman"] == pytest.approx(exact, abs=2e-5)


def test_metrics_separate_a_perturbed_copy_from_an_unrelated_space():
    same = make_spaces(24, nq=80, nc=120, d=16, noise=0.02)
    other = make_spaces(24, nq=80, nc=120, d=16, noise=None)

    def summary(rq, rc, cq, cc):
        cos = cosine_agreement(np.vstack([rq, rc]), np.vstack([cq, cc]), ["x"] * 200, np.full(200, 10))
        sim = similarity_agreement(rq, rc, cq, cc, k=10, max_pairs=10**6, seed=0)[0]
        return cos, sim, linear_cka(np.vstack([rq, rc]), np.vstack([cq, cc]))

    cos_s, sim_s, cka_s = summary(*same)
    cos_o, sim_o, cka_o = summary(*other)
    assert cos_s["mean"] > 0.99 and cos_s["p1"] > 0.99
    assert abs(cos_o["mean"]) < 0.1
    assert sim_s["spearman"] > 0.98 and sim_s["pearson"] > 0.98
    assert abs(sim_o["spearman"]) < 0.15 and abs(sim_o["pearson"]) < 0.15
    assert sim_s["overlap@10"] > 0.85 and sim_s["top1_agreement"] > 0.85 and sim_s["rbo@10"] > 0.8
    assert sim_o["overlap@10"] < 0.25 and sim_o["rbo@10"] < 0.25
    assert sim_s["score_drift_mean_abs"] < 0.02 < 0.1 < sim_o["score_drift_mean_abs"]
    assert cka_s > 0.99
    assert cka_o < 0.2
    # and the unrelated CKA is the independent one
    assert cka_o == pytest.approx(cka_gram(np.vstack(other[:2]), np.vstack(other[2:])), rel=1e-6)


# ---------------------------------------------------------------- retrieval_per_query

def hand_retrieval(rank: int) -> dict:
    """Single relevant document at 1-based `rank` of the full ranking."""
    return {"ndcg@10": 1 / math.log2(rank + 1) if rank <= 10 else 0.0,
            "mrr@10": 1 / rank if rank <= 10 else 0.0,
            "recall@1": float(rank <= 1),
            "recall@10": float(rank <= 10)}


def test_retrieval_per_query_matches_hand_computation_and_sklearn():
    rng = np.random.default_rng(30)
    nq, nd = 40, 30
    scores = rng.normal(size=(nq, nd))
    relevant = rng.integers(0, nd, size=nq)
    relevant[0] = int(np.argmax(scores[0]))   # rank 1
    relevant[1] = int(np.argmin(scores[1]))   # rank 30: nowhere near the top 10
    relevant[2] = int(np.argsort(-scores[2])[9])   # rank 10 exactly
    relevant[3] = int(np.argsort(-scores[3])[10])  # rank 11: just outside
    rankings = top_k(scores, 10)
    got = retrieval_per_query(rankings, relevant)

    ranks = [1 + sum(1 for j in range(nd) if scores[i, j] > scores[i, relevant[i]]) for i in range(nq)]
    assert ranks[:4] == [1, nd, 10, 11]
    assert any(1 < r <= 10 for r in ranks[4:]) and any(r > 10 for r in ranks[4:])
    for name in ("ndcg@10", "mrr@10", "recall@1", "recall@10"):
        assert got[name].shape == (nq,)
        expected = [hand_retrieval(r)[name] for r in ranks]
        np.testing.assert_allclose(got[name], expected, rtol=0, atol=1e-6, err_msg=name)
    for name in ("ndcg@10", "mrr@10", "recall@1", "recall@10"):
        assert got[name][1] == 0.0 and got[name][3] == 0.0

    one_hot = np.zeros((nq, nd))
    one_hot[np.arange(nq), relevant] = 1
    sk = [ndcg_score(one_hot[i:i + 1], scores[i:i + 1], k=10) for i in range(nq)]
    np.testing.assert_allclose(got["ndcg@10"], sk, atol=1e-6)
    assert got["ndcg@10"].mean() == pytest.approx(ndcg_score(one_hot, scores, k=10), abs=1e-6)


def test_retrieval_per_query_uses_only_the_top_10():
    """A relevant doc at position 11 of a longer ranking counts for nothing (the @10 cut-off)."""
    rankings = np.array([np.arange(20), np.arange(20)])
    got = retrieval_per_query(rankings, np.array([10, 4]))
    for name, value in hand_retrieval(11).items():
        assert got[name][0] == pytest.approx(value)
    for name, value in hand_retrieval(5).items():
        assert got[name][1] == pytest.approx(value, abs=1e-6)


def test_retrieval_per_query_needs_ten_documents():
    with pytest.raises(ValueError):
        retrieval_per_query(np.tile(np.arange(5), (2, 1)), np.array([0, 1]))


# ---------------------------------------------------------------- paired_delta

def test_paired_delta_exact_five_percent_drop():
    rng = np.random.default_rng(40)
    ref = rng.uniform(0.2, 1.0, size=200)
    cand = ref * (1 - 0.05)
    got = paired_delta(cand, ref, n_boot=500, confidence=0.95, seed=0)
    assert got["reference"] == pytest.approx(ref.mean(), abs=1e-12)
    assert got["candidate"] == pytest.approx(cand.mean(), abs=1e-12)
    assert got["delta"] == pytest.approx(-0.05 * ref.mean(), abs=1e-12)
    assert got["relative"] == pytest.approx(-0.05, abs=1e-12)
    assert got["relative_ci_low"] <= -0.05 + 1e-9 <= got["relative_ci_high"] + 2e-9
    assert got["relative_ci_low"] == pytest.approx(-0.05, abs=1e-9)
    assert got["relative_ci_high"] == pytest.approx(-0.05, abs=1e-9)
    assert got["wilcoxon_p"] < 1e-10  # every pair drops


def test_paired_delta_identical_inputs():
    ref = np.random.default_rng(41).uniform(0, 1, size=50)
    got = paired_delta(ref.copy(), ref, n_boot=300, confidence=0.95, seed=1)
    assert got["delta"] == 0.0
    assert got["relative"] == 0.0
    assert got["relative_ci_low"] == pytest.approx(0.0, abs=1e-12)
    assert got["relative_ci_high"] == pytest.approx(0.0, abs=1e-12)
    assert got["wilcoxon_p"] == 1.0


def test_paired_delta_large_drop_is_significant_and_noise_is_not():
    rng = np.random.default_rng(42)
    ref = rng.uniform(0.3, 1.0, size=120)
    drop = paired_delta(ref - rng.uniform(0.05, 0.3, size=120), ref, n_boot=500, confidence=0.95, seed=0)
    assert drop["wilcoxon_p"] < 0.01
    assert drop["relative_ci_high"] < 0
    same = paired_delta(ref + rng.normal(0, 0.05, size=120), ref, n_boot=500, confidence=0.95, seed=0)
    assert same["wilcoxon_p"] > 0.01
    assert same["relative_ci_low"] < 0 < same["relative_ci_high"] or abs(same["relative"]) < 0.02


def test_paired_delta_interval_width_matches_delta_method():
    """Bootstrap percentile interval vs a normal-theory interval for a ratio of paired means."""
    rng = np.random.default_rng(43)
    n = 400
    ref = rng.uniform(0.2, 1.0, size=n)
    cand = ref * 0.97 + rng.normal(0, 0.05, size=n)
    got = paired_delta(cand, ref, n_boot=2000, confidence=0.9, seed=5)
    r = cand.mean() / ref.mean()
    resid = cand - r * ref  # linearisation of mean(cand) / mean(ref)
    se = resid.std(ddof=1) / math.sqrt(n) / ref.mean()
    z = stats.norm.ppf(0.95)
    assert got["relative"] == pytest.approx(r - 1, abs=1e-12)
    assert got["relative_ci_high"] - got["relative_ci_low"] == pytest.approx(2 * z * se, rel=0.15)
    assert (got["relative_ci_low"] + got["relative_ci_high"]) / 2 == pytest.approx(r - 1, abs=0.3 * z * se)
    # the Wilcoxon p is scipy's signed-rank test of the paired differences
    assert got["wilcoxon_p"] == pytest.approx(stats.wilcoxon(cand - ref).pvalue, rel=1e-6)


def test_module_has_no_hidden_state():
    """Same seed, same answer (the bootstrap draws from its own generator)."""
    rng = np.random.default_rng(54)
    ref = rng.uniform(0.1, 1, 60)
    cand = ref + rng.normal(0, 0.1, 60)
    a = paired_delta(cand, ref, 200, 0.95, seed=9)
    np.random.seed(123)
    b = paired_delta(cand, ref, 200, 0.95, seed=9)
    assert a == b
    assert metrics.HIST_EDGES[0] == -1.0 and metrics.HIST_EDGES[-1] > 1.0


def test_query_blocks_shrink_as_documents_grow():
    from stages.lib.metrics import BLOCK_ELEMENTS, query_block

    assert query_block(698) == 1024 and query_block(0) == 1024
    assert query_block(100_000) * 100_000 <= BLOCK_ELEMENTS and query_block(100_000) == 40
    assert query_block(10**8) == 1  # never zero rows
