"""Deciding what the report advises: the ranking, the ship line and the recommendations.

A new recommendation is one more `out.append((marker, [msg(...)]))` in `recommendations` (and its
sentence in i18n.MESSAGES, in both languages); the RECOMMENDATIONS section prints whatever is here.
"""
from __future__ import annotations

from ..documents.report import DiagnosisEndedSummary, DiagnosisSummary, ModelEntry, Report, ReportComparison
from ..documents.speedup import SpeedupSummary
from ..i18n import Message, msg
from ..machine import int8_family
from ..machine_words import int8_path, support_words
from ..status import BAD, GOOD, LOOK, Status

Advice = tuple[str, list[Message]]  # a marker (GOOD, BAD, LOOK) and the sentences of one recommendation


def speed_tiers(names: list[str], speed: dict[str, SpeedupSummary]) -> dict[str, int]:
    """Tier 0 for the fastest and every candidate whose interval overlaps its interval, tier 1 for
    the fastest of the rest and those overlapping it, and so on: inside a tier the speeds are not
    measurably different, so the order there must not come from their point estimates (a rerun
    moves those: docs/timing.md). A speed that could not be measured is a tier of its own, last."""
    rest = sorted(names, key=lambda n: (speed[n].speedup is None, -(speed[n].speedup or 0.0), n))
    tiers, tier = {}, 0
    while rest:
        lead = rest[0]
        same = [n for n in rest if n == lead or (speed[lead].speedup is not None and speed[n].speedup is not None
                                                 and _overlap(speed[lead], speed[n]))]
        for n in same:
            tiers[n] = tier
        rest = [n for n in rest if n not in same]
        tier += 1
    return tiers


def _overlap(a: SpeedupSummary, b: SpeedupSummary) -> bool:
    """Do two speedup intervals overlap (True when either is missing: no evidence of a difference)?"""
    if None in (a.ci_low, a.ci_high, b.ci_low, b.ci_high):
        return True
    return not (a.ci_high < b.ci_low or b.ci_high < a.ci_low)


def _group(c: ReportComparison) -> tuple[int, bool]:
    """(verdict rank, no measurable nDCG@10 loss): candidates compete on speed only inside a group."""
    hi = c.task_delta["ndcg@10"].relative_ci_high
    return Status(c.verdict.status).rank, hi is not None and hi >= 0


def ranking(models: dict[str, ModelEntry], reference: str) -> list[str]:
    """Candidates best first: by verdict; then quality, as "no measurable nDCG@10 loss" before "a
    measurable loss" (differences inside the interval are noise, not a ranking); then speed, by
    tiers of speeds that are not measurably different (speed_tiers); inside a tier, the smaller
    file first, then the name: a rule that does not depend on timing noise, so the answer does not
    change when nothing changed."""
    cands = [n for n in models if n != reference]
    out = []
    for g in sorted({_group(models[n].comparison) for n in cands}, reverse=True):
        members = [n for n in cands if _group(models[n].comparison) == g]
        tiers = speed_tiers(members, {n: models[n].comparison.speed.latency_b1 for n in members})
        out += sorted(members, key=lambda n: (tiers[n], -(models[n].comparison.size.ratio or 0.0), n))
    return out


def candidates(report: Report) -> list[str]:
    return [n for n in report.models if n != report.reference]


def size_message(ratio: float) -> Message:
    """'1.30x smaller' / 'same size' / '1.10x larger' as a message code (within 0.5 % is the same)."""
    if abs(ratio - 1) < 0.005:
        return msg("cell.same_size")
    return msg("cell.smaller", x=ratio) if ratio > 1 else msg("cell.larger", x=1 / ratio)


def from_sample(report: Report, key: str) -> list[Message]:
    """The sentence `key` saying the verdicts come from a quick look's corpus sample; none for the
    whole corpus."""
    s = report.sample
    return [msg(key, queries=s.queries, of_queries=s.of_queries)] if s else []


def ship_line(report: Report) -> Advice:
    """The answer to "which one should I ship?", said to come from a corpus sample when it does."""
    marker, sentences = _ship_line(report)
    return marker, sentences + from_sample(report, "ship.sample")


def _ship_line(report: Report) -> Advice:
    """The best-ranked PASS, or why none, and the knob the evidence points to. When other PASS
    candidates are tied with it (same quality group, speeds not measurably different), the line
    names them and the rule that picked it (ranking)."""
    models, order = report.models, report.ranking
    if not order:
        return LOOK, [msg("ship.none_to_rank")]
    best = order[0]
    c = models[best].comparison
    d, sp = c.task_delta["ndcg@10"], c.speed.latency_b1
    args = {"name": best, "ndcg": d.relative if d.relative is not None else float("nan"),
            "speedup": sp.speedup, "size": size_message(c.size.ratio)}
    scope = c.verdict.scope_code
    if c.verdict.status == Status.PASS:
        sentences = [msg("ship.pass_scope", path=scope.args["path"], **args) if scope else msg("ship.pass", **args)]
        slow = sp.by_state.get("slow")
        if slow is not None:  # the answer's speed is the fast state's: say what the slowed processes gave
            sentences.append(msg("ship.slowed", slow=slow.speedup, n=slow.entries,
                                 m=sum(x.entries for x in sp.by_state.values())))
        tied = [n for n in _tied_with_best(report) if n != best]
        if tied:
            sentences.append(msg("ship.tied", name=best, others=", ".join(
                f"{n} {models[n].comparison.speed.latency_b1.speedup:.2f}x" for n in tied)))
        return GOOD, sentences
    recipe = models[best].recipe or {}
    support = models[best].machines["embed"].int8_support or ""
    if recipe.get("method") in ("dynamic", "static") and not recipe.get("per_channel"):
        knob = "per_channel"
    elif int8_family(support) == "avx2" and recipe.get("method") == "dynamic" and not recipe.get("reduce_range"):
        knob = "reduce_range"
    else:
        knob = "nodes_to_exclude"
    return LOOK, [msg("ship.none", status=msg(f"status.{c.verdict.status}"), knob=msg(f"knob.{knob}"), **args)]


def _tied_with_best(report: Report) -> list[str]:
    """The candidates in the best one's verdict and quality group and in its speed tier."""
    models, order = report.models, report.ranking
    members = [n for n in order if _group(models[n].comparison) == _group(models[order[0]].comparison)]
    tiers = speed_tiers(members, {n: models[n].comparison.speed.latency_b1 for n in members})
    return [n for n in members if tiers[n] == tiers[order[0]]]


def recommendations(report: Report) -> list[Advice]:
    """What to do next, from the evidence: the ship line first, then one piece of advice per finding."""
    out = [ship_line(report)]
    models = report.models
    for entry in report.machines.timing.values():
        support = entry.int8_support or "unknown"
        if int8_family(support) == "avx2" or support == "none detected":
            out.append((LOOK, [msg("rec.avx2_speed", machine=entry.description_code, support=support_words(support))]))
    for n, m in models.items():
        rep = m.benchmark.latency_b1.repeatability
        if rep and rep.noisy:
            out.append((LOOK, [msg("rec.noisy", name=n, diff=rep.relative_difference, tol=rep.tolerance)]))
        busy = [role for role, load in m.load.items() if load and load.busy]
        if busy:
            out.append((LOOK, [msg("rec.busy", name=n, parts=[msg(f"role.{r}") for r in busy],
                                    tol=report.busy_tolerance,
                                    stage="speedup" if busy[0] == "speedup" else f"{busy[0]}@{n}")]))
    # a runtime that computed in another precision than the file stores (OpenVINO bf16): say it plainly
    out.extend((LOOK, [m.runtime.note_code]) for m in models.values() if m.runtime.note_code)
    for n in candidates(report):
        m = models[n]
        c, inv = m.comparison, m.embedding.batch_invariance
        if inv.min is not None and inv.min < report.batch_invariance_min:
            expected = m.activations == "dynamic"
            out.append((LOOK, [msg("rec.batch_mates" if expected else "rec.batch_mates_unexpected", name=n,
                                    min=inv.min, mean=inv.mean, activations=msg(f"act.{m.activations or 'unknown'}"))]))
        if not c.speed.latency_b1.measurable:
            out.append((LOOK, [msg("rec.within_noise", name=n)]))
        status, scope = c.verdict.status, c.verdict.scope_code
        if status == Status.FAIL and c.relation.related:
            out.append((BAD, [msg("rec.fail", name=n)] + from_sample(report, "rec.from_sample")))
        elif status == Status.PASS:
            out.append((GOOD, [msg("rec.pass_scope", name=n, path=scope.args["path"]) if scope
                               else msg("rec.pass", name=n)] + from_sample(report, "rec.from_sample")))
        if not c.relation.related:
            out.append((LOOK, [msg("rec.unrelated", name=n, reason=c.relation.reason_code)]))
        if scope:
            out.extend(int8_path_advice(n, m.machines["embed"].int8_support, m.recipe))
        out.extend(diagnosis_advice(n, m.diagnosis))
    return out


def int8_path_advice(name: str, support: str | None, recipe: dict | None) -> list[Advice]:
    """What changes for an INT8 candidate on the other instruction path (measured facts, README)."""
    reduce_range = bool(recipe and recipe.get("reduce_range"))
    if support is None:
        return [(LOOK, [msg("rec.int8_unknown", name=name)])]
    family = int8_family(support)
    if family == "avx2":
        return [(LOOK, [msg("rec.int8_avx2", name=name, path=int8_path(support)),
                        msg("rec.int8_avx2_rr_on" if reduce_range else "rec.int8_avx2_rr_off")])]
    if family == "vnni":
        return [(LOOK, [msg("rec.int8_vnni", name=name, path=int8_path(support)),
                        msg("rec.int8_vnni_rr_on" if reduce_range else "rec.int8_vnni_rr_off")])]
    return [(LOOK, [msg("rec.int8_other", name=name, path=int8_path(support))])]


def diagnosis_advice(name: str, d: DiagnosisSummary | DiagnosisEndedSummary | None) -> list[Advice]:
    """The ready nodes_to_exclude list of a diagnosed candidate, as a recommendation."""
    if not isinstance(d, DiagnosisSummary) or not d.nodes_to_exclude:
        return []
    nodes = "[" + ", ".join(f'"{n}"' for n in d.nodes_to_exclude) + "]"
    return [(LOOK, [msg("rec.exclude", name=name, count=len(d.nodes_to_exclude), nodes=nodes)])]
