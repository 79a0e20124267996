"""PASS / WARN / FAIL for one candidate, with every reason spelled out.

Agreement with the reference counts only when the two models are the same network in another
precision; between unrelated spaces cosine is meaningless, and the verdict rests on task metrics.
"""
from __future__ import annotations

import math

from .i18n import Message, msg
from .status import Status


def _bad(x) -> bool:
    """None or NaN of any float type (numpy's included)."""
    try:
        return x is None or math.isnan(float(x))
    except (TypeError, ValueError):
        return True


def decide(m: dict, t, related: bool) -> tuple[Status, list[Message]]:
    """The verdict and its reasons. m: flat metrics (cosine_mean, cosine_p1, spearman, overlap_at_10,
    ndcg_rel_ci_low, ndcg_rel_ci_high, finite). t: VerdictThresholds."""
    fails, warns = [], []
    if not m.get("finite", True):
        return Status.FAIL, [msg("reason.not_finite")]
    lo, hi = m.get("ndcg_rel_ci_low"), m.get("ndcg_rel_ci_high")
    if _bad(lo) or _bad(hi):
        warns.append(msg("reason.ndcg_unmeasurable"))
    else:
        lo, hi = float(lo), float(hi)
        if hi < t.fail_ndcg_delta:
            fails.append(msg("reason.ndcg_below", lo=lo, hi=hi, bound=t.fail_ndcg_delta))
        elif hi < t.pass_ndcg_delta:
            warns.append(msg("reason.ndcg_below", lo=lo, hi=hi, bound=t.pass_ndcg_delta))
    if related:
        checks = [("cosine_mean", t.pass_cosine_mean, t.fail_cosine_mean),
                  ("cosine_p1", t.pass_cosine_p1, None),
                  ("spearman", t.pass_spearman, None),
                  ("overlap_at_10", t.pass_overlap_at_10, t.fail_overlap_at_10)]
        for key, pass_min, fail_min in checks:
            value, metric = m.get(key), msg(f"metric.{key}")
            if _bad(value):
                fails.append(msg("reason.metric_nan", metric=metric))
            elif fail_min is not None and value < fail_min:
                fails.append(msg("reason.metric_below", metric=metric, value=float(value), bound=fail_min))
            elif value < pass_min:
                warns.append(msg("reason.metric_below", metric=metric, value=float(value), bound=pass_min))
    else:
        warns.append(msg("reason.unrelated"))
    if fails:
        return Status.FAIL, fails + warns
    if [w for w in warns if w.key != "reason.unrelated"]:
        return Status.WARN, warns
    return Status.PASS, warns or [msg("reason.all_pass")]
