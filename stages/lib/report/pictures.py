"""The report's pictures, drawn offline with matplotlib (Agg) into PNG bytes.

`dvc plots show` draws JSON series with a renderer fetched from a CDN, so on a machine without
internet it shows nothing; these PNGs need nothing. Same report, same bytes (no timestamps), so
an unchanged report leaves git clean.
"""
from __future__ import annotations

import io

from ..documents.report import Report
from ..i18n import t
from ..status import Status


def _figure(width: float = 8.0, height: float = 4.8):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, plt.subplots(figsize=(width, height), dpi=100)


def _label(ax, lang: str, x: str, y: str, title: str, log2: bool = False, legend: bool = True, **args) -> None:
    if log2:
        ax.set_xscale("log", base=2)
    ax.set_xlabel(t(lang, x))
    ax.set_ylabel(t(lang, y))
    ax.set_title(t(lang, title, **args))
    if legend:
        ax.legend(fontsize=8)


def _png(plt, fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def tradeoff(report: Report, lang: str) -> bytes:
    """One point per candidate: speedup interval across, nDCG@10 change interval up, coloured by
    verdict, the reference at (1, 0): the best trade-off is the green point furthest right."""
    plt, (fig, ax) = _figure()
    conf = f"{report.confidence:.0%}"
    offsets = [(6, 6), (6, -14), (-10, 16), (-10, -24), (6, 26), (6, -34)]  # points that coincide stay legible
    for i, (name, m) in enumerate(report.models.items()):
        c = m.comparison
        xytext = offsets[i % len(offsets)]
        if not c:
            ax.plot([1.0], [0.0], marker="s", color="black")
            ax.annotate(name, (1.0, 0.0), textcoords="offset points", xytext=xytext, fontsize=9)
            continue
        sp, d = c.speed.latency_b1, c.task_delta["ndcg@10"]
        if None in (sp.ci_low, sp.ci_high, d.relative, d.relative_ci_low, d.relative_ci_high):
            continue  # an interval that could not be measured is not drawn as if it were
        x, y = sp.speedup, 100 * d.relative
        ax.errorbar([x], [y], xerr=[[x - sp.ci_low], [sp.ci_high - x]],
                    yerr=[[y - 100 * d.relative_ci_low], [100 * d.relative_ci_high - y]],
                    fmt="o", color=Status(c.verdict.status).colour, capsize=4)
        ax.annotate(f"{name} ({t(lang, f'status.{c.verdict.status}')})", (x, y), textcoords="offset points",
                    xytext=xytext, fontsize=9)
    ax.axvline(1.0, color="grey", lw=0.8)
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.axhline(-1.0, color=Status.PASS.colour, lw=0.8, ls="--", label=t(lang, "fig.pass_line"))
    _label(ax, lang, "fig.speedup", "fig.ndcg_change", "fig.tradeoff", conf=conf)
    return _png(plt, fig)


def cosine(report: Report, lang: str) -> bytes:
    """Histogram of per-text cosine to the reference, one bar group per candidate (the bins are
    uneven, finer near 1, so they are drawn as categories). Unrelated models are left out."""
    plt, (fig, ax) = _figure()
    cands = [(n, m.comparison.agreement.cosine) for n, m in report.models.items()
             if m.comparison and m.comparison.relation.related and m.comparison.agreement.cosine]
    if cands:
        edges = cands[0][1].histogram.edges
        labels = [f"{lo:g}-{min(hi, 1):g}" for lo, hi in zip(edges[:-1], edges[1:])]
        width = 0.8 / len(cands)
        for i, (name, cos) in enumerate(cands):
            xs = [j + i * width for j in range(len(labels))]
            ax.bar(xs, cos.histogram.counts, width=width, label=name)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(labels))], labels, rotation=45, ha="right", fontsize=8)
    _label(ax, lang, "fig.cosine_x", "fig.texts", "fig.cosine", legend=bool(cands))
    return _png(plt, fig)


def latency(report: Report, lang: str) -> bytes:
    """p50 latency against sequence length on real tokens, one line per model and batch size."""
    plt, (fig, ax) = _figure()
    for i, (name, m) in enumerate(report.models.items()):  # one colour per model, line style per batch size
        by_bs: dict[int, list] = {}
        for p in m.benchmark.sweep:
            if p.skipped is None:
                by_bs.setdefault(p.batch_size, []).append((p.seq_len, p.p50_ms))
        for bs, points in sorted(by_bs.items()):
            xs, ys = zip(*sorted(points))
            ax.plot(xs, ys, marker="o", ls="-" if bs == 1 else "--", color=f"C{i % 10}",
                    label=f"{name}, {t(lang, 'fig.batch', bs=bs)}")
    _label(ax, lang, "fig.seq_len", "fig.ms", "fig.latency", log2=True)
    return _png(plt, fig)


def throughput(report: Report, lang: str) -> bytes:
    """Texts per second against batch size: length-sorted batches (solid) vs corpus order (dashed)."""
    plt, (fig, ax) = _figure()
    for name, m in report.models.items():
        rows = sorted(m.benchmark.throughput, key=lambda r: r.batch_size)
        xs = [r.batch_size for r in rows]
        line, = ax.plot(xs, [r.sorted.texts_per_s for r in rows], marker="o",
                        label=t(lang, "fig.sorted", name=name))
        ax.plot(xs, [r.unsorted.texts_per_s for r in rows], marker="x", ls="--", color=line.get_color(),
                label=t(lang, "fig.unsorted", name=name))
    _label(ax, lang, "fig.batch_size", "fig.texts_s", "fig.throughput", log2=True)
    return _png(plt, fig)


PLOTS = {"tradeoff.png": tradeoff, "cosine.png": cosine, "latency.png": latency, "throughput.png": throughput}


def render_plots(report: Report, lang: str) -> dict[str, bytes]:
    """file name -> PNG bytes, for results/plots/ (the names report.md embeds: sections.PICTURES)."""
    return {name: draw(report, lang) for name, draw in PLOTS.items()}
