"""stages/lib/verdict.decide at every threshold boundary, with the default VerdictThresholds."""
from __future__ import annotations

import numpy as np
import pytest

from stages.lib import verdict
from stages.lib.params import VerdictThresholds

T = VerdictThresholds()
EPS = 1e-6


def test_defaults_are_the_documented_ones():
    assert (T.pass_cosine_mean, T.fail_cosine_mean, T.pass_cosine_p1, T.pass_spearman) == (0.99, 0.97, 0.97, 0.98)
    assert (T.pass_overlap_at_10, T.fail_overlap_at_10) == (0.90, 0.80)
    assert (T.pass_ndcg_delta, T.fail_ndcg_delta) == (-0.01, -0.03)


def good(**over) -> dict:
    """Metrics comfortably inside every PASS bound; keyword arguments override."""
    m = {"finite": True, "cosine_mean": 0.999, "cosine_p1": 0.995, "spearman": 0.999, "overlap_at_10": 0.98,
         "ndcg_rel_ci_low": -0.004, "ndcg_rel_ci_high": 0.006}
    m.update(over)
    return m


def decide_en(m: dict, t, related: bool):
    """verdict.decide with its reasons in English, as the report prints them."""
    status, reasons = verdict.decide(m, t, related)
    return status, [r.text("en") for r in reasons]


def test_all_good_is_pass():
    status, reasons = decide_en(good(), T, related=True)
    assert status == "PASS"
    assert reasons == ["every PASS threshold met"]


# (metric, value, expected status, words the reason must contain)
BOUNDARIES = [
    # mean cosine: PASS >= 0.99, WARN in [0.97, 0.99), FAIL < 0.97
    ("cosine_mean", 0.99 + EPS, "PASS", None),
    ("cosine_mean", 0.99, "PASS", None),
    ("cosine_mean", 0.99 - EPS, "WARN", "mean cosine"),
    ("cosine_mean", 0.97 + EPS, "WARN", "mean cosine"),
    ("cosine_mean", 0.97, "WARN", "mean cosine"),
    ("cosine_mean", 0.97 - EPS, "FAIL", "mean cosine"),
    # 1st-percentile cosine: PASS >= 0.97, otherwise WARN (no FAIL bound)
    ("cosine_p1", 0.97 + EPS, "PASS", None),
    ("cosine_p1", 0.97, "PASS", None),
    ("cosine_p1", 0.97 - EPS, "WARN", "1st-percentile cosine"),
    ("cosine_p1", 0.10, "WARN", "1st-percentile cosine"),
    # Spearman: PASS >= 0.98, otherwise WARN
    ("spearman", 0.98 + EPS, "PASS", None),
    ("spearman", 0.98, "PASS", None),
    ("spearman", 0.98 - EPS, "WARN", "Spearman"),
    ("spearman", -0.5, "WARN", "Spearman"),
    # top-10 overlap: PASS >= 0.90, WARN in [0.80, 0.90), FAIL < 0.80
    ("overlap_at_10", 0.90 + EPS, "PASS", None),
    ("overlap_at_10", 0.90, "PASS", None),
    ("overlap_at_10", 0.90 - EPS, "WARN", "top-10 neighbour overlap"),
    ("overlap_at_10", 0.80 + EPS, "WARN", "top-10 neighbour overlap"),
    ("overlap_at_10", 0.80, "WARN", "top-10 neighbour overlap"),
    ("overlap_at_10", 0.80 - EPS, "FAIL", "top-10 neighbour overlap"),
    # nDCG@10 relative change: the interval's UPPER bound decides. PASS >= -1%, WARN in [-3%, -1%), FAIL < -3%
    ("ndcg_rel_ci_high", -0.01 + EPS, "PASS", None),
    ("ndcg_rel_ci_high", -0.01, "PASS", None),
    ("ndcg_rel_ci_high", -0.01 - EPS, "WARN", "nDCG@10"),
    ("ndcg_rel_ci_high", -0.03 + EPS, "WARN", "nDCG@10"),
    ("ndcg_rel_ci_high", -0.03, "WARN", "nDCG@10"),
    ("ndcg_rel_ci_high", -0.03 - EPS, "FAIL", "nDCG@10"),
]


@pytest.mark.parametrize("key,value,expected,words", BOUNDARIES,
                         ids=[f"{k}={v!r}" for k, v, _, _ in BOUNDARIES])
def test_boundaries(key, value, expected, words):
    m = good(**{key: value})
    if key == "ndcg_rel_ci_high":
        m["ndcg_rel_ci_low"] = value - 0.02  # a proper interval below the upper bound
    status, reasons = decide_en(m, T, related=True)
    assert status == expected, reasons
    assert reasons and all(isinstance(r, str) and "\n" not in r for r in reasons)
    if words is None:
        assert reasons == ["every PASS threshold met"]
    else:
        assert len(reasons) == 1
        assert words in reasons[0]


def test_ndcg_lower_bound_alone_does_not_fail():
    """A wide interval reaching far below -3% but whose upper bound is above -1%: no evidence of a drop."""
    status, _ = decide_en(good(ndcg_rel_ci_low=-0.20, ndcg_rel_ci_high=0.0), T, related=True)
    assert status == "PASS"


def test_reason_quotes_the_value_and_the_bound():
    status, reasons = decide_en(good(cosine_mean=0.95), T, related=True)
    assert status == "FAIL"
    assert "0.9500" in reasons[0] and "0.97" in reasons[0]
    status, reasons = decide_en(good(ndcg_rel_ci_low=-0.08, ndcg_rel_ci_high=-0.05), T, related=True)
    assert status == "FAIL"
    assert "-8.00%" in reasons[0] and "-5.00%" in reasons[0] and "-3%" in reasons[0]


def test_fail_lists_every_problem_failures_first():
    m = good(cosine_mean=0.5, overlap_at_10=0.5, spearman=0.5, ndcg_rel_ci_low=-0.03, ndcg_rel_ci_high=-0.02)
    status, reasons = decide_en(m, T, related=True)
    assert status == "FAIL"
    assert len(reasons) == 4
    assert "mean cosine" in reasons[0] and "top-10 neighbour overlap" in reasons[1]
    assert any("Spearman" in r for r in reasons[2:]) and any("nDCG@10" in r for r in reasons[2:])


def test_several_warnings_are_all_listed():
    status, reasons = decide_en(good(cosine_mean=0.98, cosine_p1=0.9, spearman=0.97, overlap_at_10=0.85), T,
                                related=True)
    assert status == "WARN"
    assert len(reasons) == 4
    for words in ("mean cosine", "1st-percentile cosine", "Spearman", "top-10 neighbour overlap"):
        assert any(words in r for r in reasons), words


def test_not_finite_is_fail_whatever_else():
    status, reasons = decide_en(good(finite=False), T, related=True)
    assert status == "FAIL"
    assert any("NaN" in r or "Inf" in r for r in reasons)
    assert decide_en(good(finite=False), T, related=False)[0] == "FAIL"


@pytest.mark.parametrize("bad", [float("nan"), None], ids=["nan", "none"])
@pytest.mark.parametrize("key,words", [("cosine_mean", "mean cosine"), ("cosine_p1", "1st-percentile cosine"),
                                       ("spearman", "Spearman"), ("overlap_at_10", "top-10 neighbour overlap")])
def test_missing_agreement_metric_is_fail(key, words, bad):
    status, reasons = decide_en(good(**{key: bad}), T, related=True)
    assert status == "FAIL"
    assert any(words in r and "not a number" in r for r in reasons)


def test_absent_agreement_metric_is_fail():
    m = good()
    del m["spearman"]
    assert decide_en(m, T, related=True)[0] == "FAIL"


def test_unmeasurable_ndcg_is_a_warning():
    for lo, hi in ((None, None), (float("nan"), 0.0), (-0.01, float("nan"))):
        status, reasons = decide_en(good(ndcg_rel_ci_low=lo, ndcg_rel_ci_high=hi), T, related=True)
        assert status == "WARN"
        assert any("nDCG@10" in r and "could not be measured" in r for r in reasons)


TERRIBLE_AGREEMENT = {"cosine_mean": 0.01, "cosine_p1": float("nan"), "spearman": None, "overlap_at_10": 0.0}


def test_unrelated_ignores_agreement_metrics():
    status, reasons = decide_en(good(**TERRIBLE_AGREEMENT), T, related=False)
    assert status == "PASS"
    assert len(reasons) == 1 and "agreement metrics ignored" in reasons[0]
    # the same metrics for a related candidate would fail
    assert decide_en(good(**TERRIBLE_AGREEMENT), T, related=True)[0] == "FAIL"


@pytest.mark.parametrize("hi,expected", [(0.02, "PASS"), (-0.01, "PASS"), (-0.01 - EPS, "WARN"), (-0.03, "WARN"),
                                         (-0.03 - EPS, "FAIL")])
def test_unrelated_decides_on_task_metrics_only(hi, expected):
    status, reasons = decide_en(good(**TERRIBLE_AGREEMENT, ndcg_rel_ci_low=hi - 0.05, ndcg_rel_ci_high=hi), T,
                             related=False)
    assert status == expected
    assert any("agreement metrics ignored" in r for r in reasons)
    if expected != "PASS":
        assert any("nDCG@10" in r for r in reasons)
    assert not any(w in r for r in reasons for w in ("mean cosine", "Spearman", "overlap", "not a number"))


def test_unrelated_with_unmeasurable_ndcg_warns():
    status, reasons = decide_en(good(**TERRIBLE_AGREEMENT, ndcg_rel_ci_low=None, ndcg_rel_ci_high=None), T,
                                related=False)
    assert status == "WARN"
    assert any("could not be measured" in r for r in reasons)


def test_thresholds_come_from_the_argument():
    loose = VerdictThresholds(pass_cosine_mean=0.5, fail_cosine_mean=0.4, pass_cosine_p1=0.1, pass_spearman=0.1,
                              pass_overlap_at_10=0.1, fail_overlap_at_10=0.05, pass_ndcg_delta=-0.5,
                              fail_ndcg_delta=-0.9)
    m = good(cosine_mean=0.6, cosine_p1=0.2, spearman=0.2, overlap_at_10=0.2, ndcg_rel_ci_low=-0.5,
             ndcg_rel_ci_high=-0.4)
    assert decide_en(m, loose, related=True)[0] == "PASS"
    assert decide_en(m, T, related=True)[0] == "FAIL"
    status, reasons = decide_en(good(cosine_mean=0.45), loose, related=True)
    assert status == "WARN" and "0.5" in reasons[0]


def test_numpy_floats_are_handled():
    assert decide_en(good(cosine_mean=np.float64(0.96)), T, related=True)[0] == "FAIL"
    assert decide_en(good(spearman=np.float64("nan")), T, related=True)[0] == "FAIL"
    assert decide_en(good(spearman=float(np.float32(0.999))), T, related=True)[0] == "PASS"
