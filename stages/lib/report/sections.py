"""The report's sections, rendered as console text or Markdown, in either language.

Each section is one function of (report, Ctx) -> lines, so each can be tested on a fixed report.
A new section is one such function and one entry in SECTIONS (its heading in i18n.MESSAGES as
`sec.TAG`); the cells and tables it needs are in blocks.py.
"""
from __future__ import annotations

from ..documents.compare import Case, CosineStats
from ..documents.report import DiagnosisEndedSummary, DiagnosisSummary, MachineUse, ModelEntry, Report
from ..documents.speedup import States
from ..machine_words import load_cell
from ..metrics import MIN_GROUP_QUERIES
from ..status import BAD, GOOD, LOOK, Status
from .advice import candidates, recommendations, ship_line
from .blocks import (
    Ctx,
    advice_lines,
    delta_cell,
    fitted_table,
    group_cell,
    id_cell,
    interval,
    is_related,
    mb,
    noise_floor,
    num,
    p_cell,
    para,
    picture,
    quality_cell,
    recipe_cell,
    repeat_cell,
    rerun_cell,
    short_names,
    size_cell,
    speed_cell,
    table,
    tail,
    text_cell,
)
from .pictures import PLOTS


def _states_note(ctx: Ctx, states: States) -> list[str]:
    """When the reference's own speed split into two states during timing, say so with numbers."""
    if states.threshold_ms is None:
        return []
    note = ctx.t("note.states", fast=states.state_ms["fast"], slow=states.state_ms["slow"],
                 threshold=states.threshold_ms, n=len(states.processes), slow_n=states.processes.count("slow"))
    return para(ctx, f"{LOOK} {note}", bullet=True)


def _machine_lines(ctx: Ctx, kind: dict[str, MachineUse], one: str, many: str) -> list[str]:
    """'Timed on: ...' for one machine; a tagged list when the numbers come from several."""
    if len(kind) == 1:
        (entry,) = kind.values()
        return para(ctx, ctx.t(one, machine=entry.description_code.text(ctx.lang)), bullet=True)
    lines = para(ctx, f"{LOOK} " + ctx.t(many, n=len(kind)), bullet=True)
    for tag, entry in kind.items():
        used = ", ".join(f"{ctx.n(u.rsplit(' ', 1)[0])} {ctx.t('role.' + u.rsplit(' ', 1)[1])}"
                         for u in entry.used_by)
        machine = entry.description_code.text(ctx.lang)
        lines += para(ctx, ctx.t("note.machine_tag", tag=tag, machine=machine, used=used),
                      bullet=True, indent=1)
    return lines


def section_header(report: Report, ctx: Ctx) -> list[str]:
    title = ctx.t("title")
    out = [f"# {title}", ""] if ctx.fmt == "md" else ["=" * 78, title, "=" * 78]
    out += para(ctx, ctx.t("head.reference", ref=report.reference, corpus=report.corpus))
    sample = report.sample
    if sample:  # a quick look: said first, as every quality number below is the sample's
        out += para(ctx, f"{LOOK} " + ctx.t("head.sample", queries=sample.queries, of_queries=sample.of_queries,
                                            documents=sample.documents, of_documents=sample.of_documents),
                    bullet=True)
    shortened = [f"{short} = {name}" for name, short in ctx.names.items() if short != name]
    if shortened:
        out += para(ctx, ctx.t("head.short_names", pairs="; ".join(shortened)))
    for warning in report.machines.warning_codes:
        out += para(ctx, f"{LOOK} " + warning.text(ctx.lang), bullet=True)
    return out


def section_info(report: Report, ctx: Ctx) -> list[str]:
    ref = report.reference
    rows, rows2 = [], []
    for n, m in report.models.items():
        s = m.size
        label = ctx.t("cell.reference", name=ctx.n(n)) if n == ref else ctx.n(n)
        vs = ctx.t("cell.baseline") if n == ref else size_cell(ctx, m.comparison.size.ratio)
        rows.append([label, ctx.value(m.quantization), mb(s.total_bytes),
                     f"{mb(s.graph_bytes)} + {mb(s.external_data_bytes)}", f"{m.parameters:,}", vs])
        emb, pooling = m.embedding, m.embedding.pooling
        rows2.append([ctx.n(n), emb.dim, f"{pooling.mode}:{pooling.output} ({ctx.value(pooling.source)})",
                      ctx.t("cell.yes") if emb.normalize else ctx.t("cell.no"), emb.max_length,
                      ", ".join(f"{k} {v}" for k, v in m.opset.items())])
    rows3 = [[ctx.n(n), recipe_cell(ctx, m.recipe), ctx.t(f"act.{m.activations or 'unknown'}"),
              ctx.t("cell.calibration", n=m.calibration["texts"], overlap=m.calibration["overlap_with_evaluation"])
              if m.calibration else "-"] for n, m in report.models.items()]
    return (table(ctx, rows, [ctx.t(k) for k in ("col.model", "col.format", "col.size_mb", "col.graph_ext",
                                                 "col.parameters", "col.vs_ref_size")])
            + table(ctx, rows2, [ctx.t(k) for k in ("col.model", "col.dim", "col.pooling", "col.l2", "col.max_len",
                                                    "col.opset")])
            + table(ctx, rows3, [ctx.t(k) for k in ("col.model", "col.recipe", "col.activations",
                                                    "col.calibration")]))


def section_perf(report: Report, ctx: Ctx) -> list[str]:
    models, ref = report.models, report.reference
    out = _machine_lines(ctx, report.machines.timing, "note.timed_on", "note.timed_on_many")
    env = models[ref].environment
    threads = env.intra_op_threads  # a number, or "onnxruntime default"
    out += para(ctx, ctx.t("note.provider", provider=env.provider,
                           threads=ctx.value(threads) if isinstance(threads, str) else threads), bullet=True)
    out.append("")
    lat_rows, tput_rows, speed_rows = [], [], []
    control = report.speed_control
    noise = noise_floor(control)
    for n, m in models.items():
        b = m.benchmark
        lat = b.latency_b1
        lat_rows.append([ctx.n(n), f"{lat.p50_ms:.2f}", f"{lat.p90_ms:.2f}", f"{lat.p99_ms:.2f}",
                         f"{lat.mean_ms:.2f} +- {lat.std_ms:.2f}", lat.count, repeat_cell(ctx, lat.repeatability),
                         " / ".join(load_cell(m.load[part], ctx.lang) for part in ("benchmark", "speedup"))])
        tput = {row.batch_size: row for row in b.throughput}
        bs = report.batch_size if report.batch_size in tput else max(tput)
        tput_rows.append([ctx.n(n), f"{b.session_create_s:.2f}", f"{tput[bs].sorted.texts_per_s:.1f}",
                          f"{tput[bs].sort_speedup:.2f}x", mb(b.memory.peak_rss_bytes)])
        if n != ref:
            sp = m.comparison.speed.latency_b1
            slow = sp.by_state.get("slow")
            speed_rows.append([ctx.n(n), interval(sp), rerun_cell(sp),
                               noise, f"{slow.speedup:.2f}x ({slow.entries})" if slow else "-",
                               f"{sp.mix.speedup:.2f}x"])
    out += table(ctx, lat_rows, [ctx.t(k) for k in ("col.model", "col.p50", "col.p90", "col.p99", "col.mean_std",
                                                    "col.n", "col.run_to_run", "col.other_load")])
    out += table(ctx, tput_rows, [ctx.t("col.model"), ctx.t("col.session_s"), ctx.t("col.texts_s", bs=bs),
                                  ctx.t("col.sorted_gain"), ctx.t("col.peak_rss")])
    out += table(ctx, speed_rows, [ctx.t("col.candidate"), ctx.t("col.speedup_pr", conf=ctx.conf),
                                   ctx.t("col.rerun", conf=ctx.conf), ctx.t("col.noise_floor"), ctx.t("col.state_slow"),
                                   ctx.t("col.mix")])
    blocks = control.blocks if control else 0
    out += para(ctx, ctx.t("note.latency_method", conf=ctx.conf, blocks=blocks), bullet=True)
    if control:
        line = ctx.t("note.control", x=control.speedup, lo=control.ci_low, hi=control.ci_high)
        out += para(ctx, line + (f" {LOOK} {ctx.t('note.control_bad')}" if control.measurable else ""), bullet=True)
        out += _states_note(ctx, control.states)
    out.append("")
    out += picture(ctx, ctx.t("fig.latency"), "latency.png") + picture(ctx, ctx.t("fig.throughput"), "throughput.png")
    if ctx.fmt == "text":
        out += para(ctx, ctx.t("note.pictures", files=", ".join(f"results/plots/{p}" for p in PICTURES)))
    return out


def _cosine_groups(m: ModelEntry, key: str) -> dict[str, CosineStats]:
    cosine = m.comparison.agreement.cosine
    return getattr(cosine, key) if cosine else {}


def _cosine_breakdown(report: Report, ctx: Ctx, cands: list[str]) -> list[list[str]]:
    """Rows 'lang python (n=...)', 'tokens 0-32', ... with one 'mean/min' cell per candidate."""
    rows = []
    for key, label in (("by_lang", "cell.lang_group"), ("by_length", "cell.tokens_group")):
        groups: dict[str, int] = {}
        for n in cands:
            for g, d in _cosine_groups(report.models[n], key).items():
                groups.setdefault(g, d.count)
        for g, count in groups.items():
            cells = []
            for n in cands:
                d = _cosine_groups(report.models[n], key).get(g)
                cells.append(f"{d.mean:.4f}/{d.min:.4f}" if d else ctx.t("cell.na"))
            rows.append([f"{ctx.t(label, g=g)} (n={count})"] + cells)
    return rows


def section_quality(report: Report, ctx: Ctx) -> list[str]:
    models = report.models
    out = _machine_lines(ctx, report.machines.embed, "note.embedded_on", "note.embedded_on_many") + [""]
    rows = []
    for n, m in models.items():
        d = m.comparison.task_delta["ndcg@10"] if m.comparison else None
        rows.append([ctx.n(n), *(num(m.task[k], ctx) for k in ("ndcg@10", "mrr@10", "recall@1", "recall@10")),
                     ctx.t("cell.baseline") if d is None else delta_cell(ctx, d),
                     "" if d is None else f"{p_cell(d.wilcoxon_p)} / {p_cell(d.randomization_p)}"])
    out += table(ctx, rows, [ctx.t("col.model"), ctx.t("col.ndcg"), ctx.t("col.mrr"), ctx.t("col.r1"),
                             ctx.t("col.r10"), ctx.t("col.ndcg_change", conf=ctx.conf), ctx.t("col.p_tests")])
    out += para(ctx, ctx.t("note.task_tests"), bullet=True) + [""]
    cands = candidates(report)
    if not cands:
        return out
    related = [n for n in cands if is_related(models[n])]
    cos_rows, nb_rows = [], []
    for n in cands:
        a, inv = models[n].comparison.agreement, models[n].embedding.batch_invariance
        if n in related:
            cos = a.cosine
            cos_rows.append([ctx.n(n), num(cos and cos.mean, ctx=ctx), num(cos and cos.p1, ctx=ctx),
                             num(cos and cos.min, ctx=ctx), num(inv.min, ctx, ".6f")])
        else:
            cos_rows.append([ctx.n(n)] + [ctx.t("cell.na_other_model")] * 3 + [num(inv.min, ctx, ".6f")])
        sim = a.similarity
        nb_rows.append([ctx.n(n), num(sim.pearson, ctx=ctx), num(sim.spearman, ctx=ctx),
                        num(sim.overlap.get("overlap@10"), ctx=ctx), num(sim.top1_agreement, ctx=ctx),
                        num(sim.rbo.get("rbo@10"), ctx=ctx), num(a.cka_linear, ctx=ctx)])
    out += table(ctx, cos_rows, [ctx.t(k) for k in ("col.candidate", "col.cos_mean", "col.cos_p1", "col.cos_min",
                                                    "col.inv_min")])
    out += table(ctx, nb_rows, [ctx.t(k) for k in ("col.candidate", "col.pearson", "col.spearman", "col.overlap",
                                                   "col.top1", "col.rbo", "col.cka")])
    out += para(ctx, ctx.t("note.agreement"), bullet=True) + [""]
    breakdown = _cosine_breakdown(report, ctx, related)
    if breakdown:
        out += para(ctx, ctx.t("note.breakdown")) + [""]
        out += table(ctx, breakdown, [ctx.t("col.group")] + [ctx.n(n) for n in related])
    out += _task_groups(report, ctx, cands)
    out += _snippets(report, ctx, cands)
    out += picture(ctx, ctx.t("fig.cosine"), "cosine.png")
    return out


def _task_groups(report: Report, ctx: Ctx, cands: list[str]) -> list[str]:
    """nDCG@10 by language and query length: the reference's value, then every candidate's change
    (all of them: a candidate that passes overall may still lose one language, which is what this
    table is for); the table splits over as many tables as the width needs, keeping the group and
    the reference's value in each."""
    rows = []
    for key, label in (("lang", "cell.lang_group"), ("length", "cell.tokens_group")):
        for g, d in getattr(report.models[cands[0]].comparison.task_by_group, key).items():
            rows.append([f"{ctx.t(label, g=g)} (n={d.queries})", num(d.reference, ctx)]
                        + [group_cell(ctx, getattr(report.models[n].comparison.task_by_group, key).get(g))
                           for n in cands])
    headers = [ctx.t("col.group"), ctx.t("col.ref_ndcg", ref=ctx.n(report.reference))] + [ctx.n(n) for n in cands]
    return ([""] + para(ctx, ctx.t("note.task_groups", conf=ctx.conf, min=MIN_GROUP_QUERIES)) + [""]
            + table(ctx, rows, headers, keep=2))


def _snippets(report: Report, ctx: Ctx, cands: list[str]) -> list[str]:
    models = report.models
    rows = []
    for i, s in enumerate(models[cands[0]].comparison.snippets):
        row = [s.id, s.lang, ctx.t("cell.hit") if s.reference_top1 else ctx.t("cell.miss")]
        for n in cands:
            sn = models[n].comparison.snippets[i]
            cos = num(sn.cosine_code, ctx=ctx) if is_related(models[n]) else ctx.t("cell.na")
            row.append(f"{cos} {ctx.t('cell.hit') if sn.candidate_top1 else ctx.t('cell.miss')}")
        rows.append(row)
    if not rows:
        return []
    return (para(ctx, ctx.t("note.snippets")) + [""]
            + table(ctx, rows, [ctx.t("col.snippet"), ctx.t("col.lang"),
                                ctx.t("col.ref_top1", ref=ctx.n(report.reference))] + [ctx.n(n) for n in cands]))


CASES_SHOWN = 3  # losses and gains per candidate in the report (10 each in report.json)
MISSED_SHOWN = 5  # queries every model misses (20 in report.json)


def _rank_move(c: Case) -> str:
    return f"{c.reference_rank:,} -> {c.candidate_rank:,}"


def section_cases(report: Report, ctx: Ctx) -> list[str]:
    """Where each candidate loses and gains, query by query, and the queries every model misses."""
    cands = candidates(report)
    if not cands:
        return para(ctx, ctx.t("note.no_candidates"))
    out = para(ctx, ctx.t("note.cases", n=CASES_SHOWN)) + [""]
    headers = ["", ctx.t("col.rank_move"), ctx.t("col.query"), ctx.t("col.first_instead")]
    for n in cands:
        cases = report.models[n].comparison.cases
        k = cases.counts
        out += para(ctx, ctx.t("note.cases_counts", name=n, n=k.lost + k.gained + k.same, lost=k.lost,
                               gained=k.gained, same=k.same)) + [""]
        shown = ([(BAD, c, c.candidate_first_text) for c in cases.losses[:CASES_SHOWN]]
                 + [(GOOD, c, c.reference_first_text) for c in cases.gains[:CASES_SHOWN]])
        out += fitted_table(ctx, lambda w, shown=shown: [  # shown bound now: this candidate's
            [marker, _rank_move(c), text_cell(ctx, c.query_text, w[0]), text_cell(ctx, first, w[1])]
            for marker, c, first in shown], headers, (0.5, 0.5))
    return out + _missed(report, ctx)


def _missed(report: Report, ctx: Ctx) -> list[str]:
    """The queries no model finds, apart: they point at the labels or the corpus."""
    m = report.missed_by_all
    if m is None:
        return []
    if not m.count:
        return para(ctx, ctx.t("note.missed_none", queries=m.queries), bullet=True)
    out = para(ctx, f"{LOOK} " + ctx.t("note.missed", count=m.count, queries=m.queries,
                                        n=min(MISSED_SHOWN, m.count)), bullet=True) + [""]
    headers = [ctx.t("col.query"), ctx.t("col.relevant_doc"), ctx.t("col.ref_rank", ref=ctx.n(report.reference)),
               ctx.t("col.best_rank")]
    return out + fitted_table(ctx, lambda w: [
        [text_cell(ctx, q.query_text, w[0]), id_cell(ctx, q.document_id, w[1]),
         f"{q.reference_rank:,}" if q.reference_rank else "-", f"{q.best_rank:,}" if q.best_rank else "-"]
        for q in m.first[:MISSED_SHOWN]], headers, (0.6, 0.4))


def _status(report: Report, ctx: Ctx, status: Status) -> str:
    """A verdict in words, marked when it comes from a corpus sample."""
    return ctx.t(f"status.{status}") + (" " + ctx.t("cell.from_sample") if report.sample else "")


def section_verdict(report: Report, ctx: Ctx) -> list[str]:
    out = []
    for n in candidates(report):
        v = report.models[n].comparison.verdict
        marker, status = Status(v.status).marker, _status(report, ctx, v.status)
        if v.scope_code:
            line = ctx.t("note.verdict_scope", marker=marker, name=n, status=status, scope=v.scope_code.text(ctx.lang))
        else:
            line = ctx.t("note.verdict", marker=marker, name=n, status=status)
        out += para(ctx, line, bullet=True)
        for reason in v.reason_codes:
            out += para(ctx, ("" if ctx.fmt == "md" else "    - ") + reason.text(ctx.lang), bullet=True, indent=1)
    for n in candidates(report):
        out += _diagnosis(ctx, n, report.models[n].diagnosis)
    return out or para(ctx, ctx.t("note.no_candidates"))


def _diagnosis(ctx: Ctx, name: str, d: DiagnosisSummary | DiagnosisEndedSummary | None) -> list[str]:
    """Under the verdicts: for a non-PASS candidate, the layers where its error jumps."""
    if not d or d.status == "skipped":
        return []
    out = [""]
    if isinstance(d, DiagnosisEndedSummary):
        return out + para(ctx, ctx.t("diag.not_done", name=name, reason=d.reason_code.text(ctx.lang)))
    counts = {"texts": d.texts, "factor": d.jump_factor, **vars(d.layers)}
    first = d.first_jump
    if not first:
        return out + para(ctx, ctx.t("diag.no_jump", name=name, **counts))
    out += para(ctx, ctx.t("diag.heading", name=name, node=first.node, op=first.op, rel=first.rel_error,
                           before=first.max_before, **counts)) + [""]
    rows = [[tail(r.node, 58 if ctx.fmt == "md" else 52), r.op, num(r.rel_error, ctx),
             num(r.max_before, ctx), num(r.sqnr_db, ctx, ".1f")] for r in d.top]
    return out + table(ctx, rows, [ctx.t(k) for k in ("col.layer", "col.op", "col.rel_error", "col.max_before",
                                                      "col.sqnr")])


def section_summary(report: Report, ctx: Ctx) -> list[str]:
    rows = []
    for rank, n in enumerate(report.ranking, 1):
        m = report.models[n]
        c = m.comparison
        cos = c.agreement.cosine
        rows.append([str(rank), ctx.n(n), _status(report, ctx, c.verdict.status),
                     quality_cell(ctx, c.task_delta["ndcg@10"]),
                     num(cos and cos.mean, ctx=ctx) if is_related(m) else ctx.t("cell.na_other_model"),
                     speed_cell(ctx, c.speed.latency_b1),
                     size_cell(ctx, c.size.ratio)])
    out = table(ctx, rows, ["#"] + [ctx.t(k) for k in ("col.candidate", "col.verdict", "col.quality", "col.cosine",
                                                       "col.speed_b1", "col.size_vs_ref")], keep=2)
    out += advice_lines(ctx, [ship_line(report)]) + [""]
    return out + picture(ctx, ctx.t("fig.tradeoff", conf=ctx.conf), "tradeoff.png")


def section_recommendations(report: Report, ctx: Ctx) -> list[str]:
    return advice_lines(ctx, recommendations(report))


SECTIONS = [("INFO", section_info), ("PERF", section_perf), ("QUALITY", section_quality), ("CASES", section_cases),
            ("VERDICT", section_verdict), ("SUMMARY", section_summary), ("RECOMMENDATIONS", section_recommendations)]


PICTURES = tuple(PLOTS)  # drawn by pictures.render_plots, embedded here


def render(report: Report, fmt: str = "text", lang: str | None = None) -> str:
    """fmt: 'text' for the console (100 columns), 'md' for results/report.md (120); lang: en | ru."""
    ctx = Ctx(fmt, lang or report.language, short_names(list(report.models)), f"{report.confidence:.0%}")
    out = section_header(report, ctx)
    for tag, section in SECTIONS:
        heading = f"[{tag}] {ctx.t('sec.' + tag)}"
        out += ["", f"## {heading}" if fmt == "md" else heading, ""]
        out += section(report, ctx)
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out) + "\n"
