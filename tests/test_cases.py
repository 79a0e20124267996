"""Where the candidate loses (stages/lib/cases.py), group deltas and the randomization test
(stages/lib/metrics.py), against independent computations: full score rows sorted by a stable
argsort, sklearn's ndcg_score per group, and brute-force enumeration of sign patterns."""
from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import ndcg_score
from sklearn.metrics.pairwise import cosine_similarity

from stages.lib import metrics
from stages.lib.cases import TargetRanks, case_rows, hits_at, missed_by_all, relevant_pairs, top_cases
from stages.lib.metrics import (
    group_deltas,
    length_buckets,
    paired_delta,
    randomization_test,
    ranks_of,
    retrieval_per_query,
    similarity_agreement,
    top_k,
)

# ---------------------------------------------------------------- independent helpers

def brute_rank(row: np.ndarray, doc: int) -> int:
    """1-based position of `doc` when the whole row is sorted by score, ties keeping the lower index."""
    return int(np.flatnonzero(np.argsort(-row, kind="stable") == doc)[0]) + 1


def scan(ref_q, ref_c, cand_q, cand_c, relevant, block=None):
    """The agreement pass with TargetRanks riding on it, as compare would run it."""
    ranks = TargetRanks(relevant, len(ref_q))
    _, ref_top, cand_top = similarity_agreement(ref_q, ref_c, cand_q, cand_c, k=10, max_pairs=10**6, seed=0,
                                                block=block, on_block=ranks)
    return ranks, ref_top, cand_top


def paired_corpus(n=40, dim=16, seed=0):
    """Documents, reference queries near their documents (some not at rank 1), labels."""
    rng = np.random.default_rng(seed)
    codes = rng.normal(size=(n, dim)).astype(np.float32)
    queries = (codes + 0.9 * rng.normal(size=codes.shape)).astype(np.float32)
    langs = ["python" if i % 3 else "go" for i in range(n)]
    return codes, queries, langs


LOSERS = (3, 17, 29)


def candidate_losing(codes, queries, losers=LOSERS, gainers=()):
    """A candidate equal to the reference except chosen queries: a loser's vector is moved onto
    another document (its own falls), a gainer's onto its own document (it rises to rank 1)."""
    cand = queries.copy()
    for i in losers:
        cand[i] = codes[(i + 1) % len(codes)] - 0.5 * codes[i]
    for i in gainers:
        cand[i] = codes[i]
    return cand


# ---------------------------------------------------------------- ranks_of

def test_ranks_of_equals_stable_sort_with_ties_and_agrees_with_top_k(monkeypatch):
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 6, size=(30, 50)).astype(np.float32)  # ~8 copies of each value per row
    scores[4] = 2.0  # a row where everything ties
    scores[7, 11] = np.nan  # a NaN ranks last, as top_k ranks it
    rows = np.repeat(np.arange(30), 50)
    cols = np.tile(np.arange(50), 30)
    clean = np.where(np.isnan(scores), -np.inf, scores)
    expected = [brute_rank(clean[r], c) for r, c in zip(rows, cols)]
    np.testing.assert_array_equal(ranks_of(scores, rows, cols), expected)
    monkeypatch.setattr(metrics, "BLOCK_ELEMENTS", 120)  # chunks of 2 pairs: memory does not grow with them
    np.testing.assert_array_equal(ranks_of(scores, rows, cols), expected)
    perm = rng.permutation(len(rows))  # rows out of order: the gathered path, not the slice
    np.testing.assert_array_equal(ranks_of(scores, rows[perm], cols[perm]), np.array(expected)[perm])
    got = ranks_of(scores, rows, cols)
    top = top_k(scores, 10)
    inside = got <= 10
    np.testing.assert_array_equal(top[rows[inside], got[inside] - 1], cols[inside])
    assert sorted(got[rows == 4]) == list(range(1, 51))


# ---------------------------------------------------------------- the cases on a built corpus

def test_loss_list_names_exactly_the_perturbed_queries_with_their_ranks():
    codes, queries, langs = paired_corpus()
    s_ref = cosine_similarity(queries, codes)
    n = len(codes)
    ref_rank = np.array([brute_rank(s_ref[i], i) for i in range(n)])
    gainers = tuple(i for i in np.flatnonzero(ref_rank > 1) if i not in LOSERS)[:2]
    assert len(gainers) == 2 and ref_rank[list(LOSERS)].max() <= 3  # the corpus has both kinds
    cand = candidate_losing(codes, queries, gainers=gainers)
    s_cand = cosine_similarity(cand, codes)
    cand_rank = np.array([brute_rank(s_cand[i], i) for i in range(n)])
    assert (cand_rank[list(LOSERS)] > ref_rank[list(LOSERS)] + 5).all()

    ranks, ref_top, cand_top = scan(queries, codes, cand, codes, np.arange(n), block=7)
    ids, doc_ids = [f"q{i}" for i in range(n)], [f"d{i}" for i in range(n)]
    lengths = np.arange(n) * 3
    rows = case_rows(ranks, ref_top[:, 0], cand_top[:, 0], hits_at(ref_top, np.arange(n)),
                     hits_at(cand_top, np.arange(n)), query_ids=ids, doc_ids=doc_ids, langs=langs, lengths=lengths)
    top = top_cases(rows, 10)

    assert [r["query"] for r in top["losses"]] == sorted(LOSERS, key=lambda i: (1 / cand_rank[i] - 1 / ref_rank[i], i))
    assert {r["query"] for r in top["gains"]} == set(gainers)
    assert top["counts"] == {"lost": 3, "gained": 2, "same": n - 5, "no_relevant": 0}
    for r in top["losses"] + top["gains"]:
        i = r["query"]
        assert (r["document"], r["reference_rank"], r["candidate_rank"]) == (i, ref_rank[i], cand_rank[i])
        assert r["rr_change"] == pytest.approx(1 / cand_rank[i] - 1 / ref_rank[i], abs=1e-15)
        assert r["reference_first"] == int(np.argmax(s_ref[i])) and r["candidate_first"] == int(np.argmax(s_cand[i]))
        assert r["reference_first_id"] == f"d{r['reference_first']}"
        assert r["candidate_first_id"] == f"d{r['candidate_first']}"
        assert (r["query_id"], r["lang"], r["length"], r["document_id"], r["grade"]) == (f"q{i}", langs[i], 3 * i,
                                                                                         f"d{i}", 1)
        assert r["reference_hit@10"] == (ref_rank[i] <= 10) and r["candidate_hit@10"] == (cand_rank[i] <= 10)
    assert all(r["rr_change"] > 0 and r["candidate_rank"] == 1 for r in top["gains"])
    assert all(r["candidate_rank"] > r["reference_rank"] for r in top["losses"])
    # the queries nobody touched keep their rank, and every row's ranks are the brute-force ones
    np.testing.assert_array_equal([r["reference_rank"] for r in rows], ref_rank)
    np.testing.assert_array_equal([r["candidate_rank"] for r in rows], cand_rank)
    assert top_cases(rows, 2)["losses"] == top["losses"][:2]


def test_target_is_the_relevant_document_the_reference_ranks_first_under_graded_qrels():
    rng = np.random.default_rng(5)
    nq, nd, dim = 25, 60, 12
    codes = rng.normal(size=(nd, dim)).astype(np.float32)
    queries = rng.normal(size=(nq, dim)).astype(np.float32)
    cand = (queries + 0.6 * rng.normal(size=queries.shape)).astype(np.float32)
    qrels = {q: {int(d): int(rng.integers(0, 4)) for d in rng.choice(nd, size=rng.integers(1, 5), replace=False)}
             for q in range(nq)}
    qrels[2] = {7: 0, 9: 0}  # judged, nothing relevant
    qrels[3] = {int(np.argmax(cosine_similarity(queries, codes)[3])): 1, 5: 3}  # grade 1 ranks first
    s_ref, s_cand = cosine_similarity(queries, codes), cosine_similarity(cand, codes)
    expected = {}
    for q, docs in qrels.items():
        relevant = [d for d, g in docs.items() if g >= 1]
        if relevant:
            best = min(relevant, key=lambda d: brute_rank(s_ref[q], d))
            expected[q] = (best, docs[best], brute_rank(s_ref[q], best), brute_rank(s_cand[q], best))
    assert 2 not in expected and expected[3][1] == 1  # grade does not pick the document: the reference does

    results = [scan(queries, codes, cand, codes, qrels, block=b)[0] for b in (1, 4, None)]
    for ranks in results:
        for q in range(nq):
            got = (int(ranks.target[q]), int(ranks.grade[q]), int(ranks.reference[q]), int(ranks.candidate[q]))
            assert got == expected.get(q, (-1, 0, 0, 0)), q
    ranks, ref_top, cand_top = scan(queries, codes, cand, codes, qrels)
    rows = case_rows(ranks, ref_top[:, 0], cand_top[:, 0], hits_at(ref_top, qrels), hits_at(cand_top, qrels))
    assert rows[2]["document"] is None and rows[2]["rr_change"] is None and rows[2]["reference_hit@10"] is False
    assert top_cases(rows, 5)["counts"]["no_relevant"] == nq - len(expected) >= 1
    # pairs: grade >= 1 only, sorted by query then document
    q, d, g = relevant_pairs(qrels, nq)
    assert list(zip(q.tolist(), d.tolist(), g.tolist())) == sorted(
        (q, d, g) for q, docs in qrels.items() for d, g in docs.items() if g >= 1)


def test_riding_on_the_pass_changes_nothing_and_an_incomplete_pass_is_refused():
    codes, queries, _ = paired_corpus(seed=2)
    cand = candidate_losing(codes, queries)
    plain = similarity_agreement(queries, codes, cand, codes, k=10, max_pairs=10**6, seed=0, block=6)
    ranks = TargetRanks(np.arange(len(codes)), len(codes))
    hooked = similarity_agreement(queries, codes, cand, codes, k=10, max_pairs=10**6, seed=0, block=6, on_block=ranks)
    assert plain[0] == hooked[0]
    np.testing.assert_array_equal(plain[1], hooked[1])
    partial = TargetRanks(np.arange(len(codes)), len(codes))
    partial(0, queries[:6] @ codes.T, cand[:6] @ codes.T)
    with pytest.raises(ValueError, match="saw 6 of 40"):
        case_rows(partial, plain[1][:, 0], plain[2][:, 0], np.ones(40, bool), np.ones(40, bool))


def test_a_fall_from_1_to_40_outranks_a_fall_from_300_to_900():
    ranks = TargetRanks(np.arange(4), 4)
    ranks.target[:] = [0, 1, 2, 3]
    ranks.grade[:] = 1
    ranks.reference[:] = [300, 1, 5, 20]
    ranks.candidate[:] = [900, 40, 5, 2]
    ranks.scored = 4
    rows = case_rows(ranks, [9, 9, 2, 9], [9, 9, 2, 3], [False, True, True, False], [False, False, True, True])
    top = top_cases(rows, 5)
    assert [r["query"] for r in top["losses"]] == [1, 0]
    assert top["losses"][0]["rr_change"] == pytest.approx(1 / 40 - 1)
    assert [r["query"] for r in top["gains"]] == [3]
    assert top["counts"] == {"lost": 2, "gained": 1, "same": 1, "no_relevant": 0}


# ---------------------------------------------------------------- hits and misses

def test_hits_at_10_equal_recall_and_missed_by_all_is_the_intersection():
    rng = np.random.default_rng(7)
    nq, nd, dim = 30, 80, 10
    codes = rng.normal(size=(nd, dim)).astype(np.float32)
    qrels = {q: {int(d): int(rng.integers(1, 3)) for d in rng.choice(nd, size=2, replace=False)} for q in range(nq)}
    queries = np.stack([codes[next(iter(qrels[q]))] for q in range(nq)]) + 1.2 * rng.normal(size=(nq, dim))
    queries[0] = -codes[list(qrels[0])].sum(axis=0)  # its relevant documents are the farthest: nobody finds them
    candidates = {"ref": queries, "a": queries + 0.8 * rng.normal(size=queries.shape),
                  "b": queries + 1.5 * rng.normal(size=queries.shape)}
    hits = {}
    for name, q in candidates.items():
        rankings = top_k(cosine_similarity(q, codes), 10)
        hits[name] = hits_at(rankings, qrels)
        np.testing.assert_array_equal(hits[name], retrieval_per_query(rankings, qrels)["recall@10"] > 0)
    brute = [q for q in range(nq) if not any(hits[m][q] for m in hits)]
    assert 0 in brute and 1 < len(brute) < nq / 2
    assert len(brute) < np.count_nonzero(~hits["ref"])  # missed by the reference is not missed by all
    np.testing.assert_array_equal(missed_by_all(hits), brute)
    np.testing.assert_array_equal(missed_by_all({"ref": hits["ref"]}), np.flatnonzero(~hits["ref"]))
    with pytest.raises(ValueError, match="different lengths"):
        missed_by_all({"ref": hits["ref"], "a": hits["a"][:-1]})
    with pytest.raises(ValueError):
        missed_by_all({})


# ---------------------------------------------------------------- task metrics by group

def test_group_deltas_equal_a_direct_computation_per_group():
    rng = np.random.default_rng(11)
    n, dim = 130, 16
    codes = rng.normal(size=(n, dim)).astype(np.float32)
    queries = (codes + 0.9 * rng.normal(size=codes.shape)).astype(np.float32)
    langs = np.array(["python"] * 70 + ["go"] * 54 + ["rust"] * 6)
    lengths = rng.integers(5, 300, size=n)
    cand = queries.copy()
    go = np.flatnonzero(langs == "go")
    cand[go] += 1.5 * rng.normal(size=(len(go), dim)).astype(np.float32)  # only Go queries get worse
    s_ref, s_cand = cosine_similarity(queries, codes), cosine_similarity(cand, codes)
    rel = np.arange(n)
    ref_ndcg = retrieval_per_query(top_k(s_ref, 10), rel)["ndcg@10"]
    cand_ndcg = retrieval_per_query(top_k(s_cand, 10), rel)["ndcg@10"]
    one_hot = np.eye(n)

    for groups in (metrics.by_label(langs), length_buckets(lengths)):
        got = group_deltas(cand_ndcg, ref_ndcg, groups, n_boot=400, confidence=0.95, seed=3, n_permutations=2000)
        assert list(got) == list(groups)
        assert sum(g["queries"] for g in got.values()) == n
        for name, sel in groups.items():
            g, idx = got[name], np.flatnonzero(sel)
            assert g["queries"] == len(idx)
            assert g["reference"] == pytest.approx(ndcg_score(one_hot[idx], s_ref[idx], k=10), abs=1e-6)
            assert g["candidate"] == pytest.approx(ndcg_score(one_hot[idx], s_cand[idx], k=10), abs=1e-6)
            if len(idx) < 10:
                assert g["measurable"] is False and g["reason"] == "too_few_queries"
                assert "relative_ci_low" not in g and "randomization_p" not in g
                continue
            assert g["measurable"] is True and "reason" not in g
            direct = paired_delta(cand_ndcg[idx], ref_ndcg[idx], 400, 0.95, 3)
            assert {k: g[k] for k in direct} == direct
            assert g["randomization_p"] == randomization_test(cand_ndcg[idx], ref_ndcg[idx], 2000, 3)["p"]
    by_lang = group_deltas(cand_ndcg, ref_ndcg, metrics.by_label(langs), 400, 0.95, 3, 2000)
    assert list(by_lang) == ["go", "python", "rust"]
    assert by_lang["go"]["relative_ci_high"] < 0 and by_lang["go"]["randomization_p"] < 0.01  # Go is hurt
    assert by_lang["python"]["delta"] == 0 and by_lang["python"]["randomization_p"] == 1.0  # Python is not


def test_group_deltas_refuse_an_interval_they_cannot_give():
    ref = np.zeros(12)
    cand = np.full(12, 0.5)
    assert group_deltas(cand, ref, {"all": np.ones(12, bool)}, 200, 0.95, 0)["all"] == {
        "queries": 12, "reference": 0.0, "candidate": 0.5, "delta": 0.5, "measurable": False,
        "reason": "reference_zero"}
    ref[0] = 1.0  # 12 resamples in 100 draw no query 0: a relative change without bound
    got = group_deltas(cand, ref, {"all": np.ones(12, bool)}, 2000, 0.95, 0)["all"]
    assert got["measurable"] is False and got["reason"] == "interval_unbounded"


# ---------------------------------------------------------------- the randomization test

def brute_force_p(cand, ref) -> float:
    """Two-sided sign-flip p by enumerating every sign pattern of ALL n differences (zeros too), in
    exact rational arithmetic."""
    d = [Fraction(c) - Fraction(r) for c, r in zip(cand, ref)]
    observed = abs(sum(d))
    patterns = list(itertools.product((1, -1), repeat=len(d)))
    return sum(abs(sum(s * x for s, x in zip(signs, d))) >= observed for signs in patterns) / len(patterns)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_randomization_p_equals_brute_force_enumeration(seed):
    rng = np.random.default_rng(seed)
    ref = rng.integers(0, 33, size=13) / 32  # dyadic: exact in floating point, so ties are real ties
    cand = ref + rng.integers(-8, 9, size=13) / 32
    cand[:3] = ref[:3]  # zero differences: dropped by the test, enumerated by the brute force
    got = randomization_test(cand, ref)
    assert got["method"] == "exact" and got["permutations"] == 2 ** int(np.count_nonzero(cand != ref))
    assert got["p"] == brute_force_p(cand, ref)


def test_exact_randomization_p_equals_scipy_on_continuous_scores():
    rng = np.random.default_rng(4)
    ref = rng.uniform(0, 1, size=15)
    cand = ref + rng.normal(0.15, 0.3, size=15)
    got = randomization_test(cand, ref)
    sp = stats.permutation_test((cand, ref), lambda x, y, axis: np.mean(x - y, axis=axis), vectorized=True,
                                permutation_type="samples", n_resamples=np.inf, alternative="two-sided")
    assert 0.001 < got["p"] < 0.5
    assert got["p"] == pytest.approx(sp.pvalue, rel=1e-12)


def test_monte_carlo_randomization_p():
    rng = np.random.default_rng(6)
    ref = rng.uniform(0, 1, size=18)
    cand = ref + rng.normal(0.1, 0.4, size=18)
    exact = randomization_test(cand, ref, exact_max=18)
    assert exact["method"] == "exact" and 0.05 < exact["p"] < 0.95
    mc = randomization_test(cand, ref, n_permutations=20_000, seed=1)
    assert mc["method"] == "monte_carlo" and mc["permutations"] == 20_000
    assert abs(mc["p"] - exact["p"]) < 4 * np.sqrt(exact["p"] * (1 - exact["p"]) / 20_000)
    assert mc == randomization_test(cand, ref, n_permutations=20_000, seed=1)  # seeded
    # every difference positive: no random pattern reaches it, and p is 1 / (B + 1), never 0
    assert randomization_test(ref + 0.5, ref, n_permutations=999, exact_max=10)["p"] == pytest.approx(1 / 1000)
    # exact: both all-equal patterns
    assert randomization_test(ref + 0.5, ref, exact_max=18)["p"] == pytest.approx(2 / 2 ** 18)


def test_randomization_without_any_difference():
    ref = np.linspace(0, 1, 40)
    assert randomization_test(ref.copy(), ref) == {"p": 1.0, "method": "exact", "permutations": 1}
