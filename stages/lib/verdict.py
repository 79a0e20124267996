"""PASS / WARN / FAIL for one candidate, with every reason spelled out.

Agreement with the reference counts only when the two models are the same network in another
precision; between unrelated spaces cosine is meaningless, and the verdict rests on task metrics.
"""
from __future__ import annotations

import math


def _bad(x) -> bool:
    """None or NaN of any float type (numpy's included)."""
    try:
        return x is None or math.isnan(float(x))
    except (TypeError, ValueError):
        return True


def decide(m: dict, t, related: bool) -> tuple[str, list[str]]:
    """m: flat metrics (cosine_mean, cosine_p1, spearman, overlap_at_10, ndcg_rel_ci_low,
    ndcg_rel_ci_high, finite). t: VerdictThresholds."""
    fails, warns = [], []
    if not m.get("finite", True):
        return "FAIL", ["embeddings contain NaN or Inf"]
    lo, hi = m.get("ndcg_rel_ci_low"), m.get("ndcg_rel_ci_high")
    if _bad(lo) or _bad(hi):
        warns.append("nDCG@10 change could not be measured")
    else:
        ci = f"[{lo:+.2%}, {hi:+.2%}]"
        if hi < t.fail_ndcg_delta:
            fails.append(f"nDCG@10 change interval {ci} lies below {t.fail_ndcg_delta:+.0%}")
        elif hi < t.pass_ndcg_delta:
            warns.append(f"nDCG@10 change interval {ci} lies below {t.pass_ndcg_delta:+.0%}")
    if related:
        checks = [("cosine_mean", "mean cosine to reference", t.pass_cosine_mean, t.fail_cosine_mean),
                  ("cosine_p1", "1st-percentile cosine", t.pass_cosine_p1, None),
                  ("spearman", "similarity-matrix Spearman", t.pass_spearman, None),
                  ("overlap_at_10", "top-10 neighbour overlap", t.pass_overlap_at_10, t.fail_overlap_at_10)]
        for key, label, pass_min, fail_min in checks:
            value = m.get(key)
            if _bad(value):
                fails.append(f"{label} is not a number")
            elif fail_min is not None and value < fail_min:
                fails.append(f"{label} {value:.4f} < {fail_min}")
            elif value < pass_min:
                warns.append(f"{label} {value:.4f} < {pass_min}")
    else:
        warns.append("candidate is not the reference in another precision: agreement metrics ignored, "
                     "verdict from task metrics only")
    if fails:
        return "FAIL", fails + warns
    if [w for w in warns if not w.startswith("candidate is not")]:
        return "WARN", warns
    return "PASS", warns or ["every PASS threshold met"]
