"""The building blocks of the report's text: the rendering context, tables within the width,
wrapped paragraphs, and the cells several sections share.

Plain ASCII markers ([+] better, [-] worse, [!] look here: status.py) so a Windows console prints
the report as is; the console stays within 100 columns and report.md within 120: tables are split
by concern, models are rows, long model names are shortened the same way everywhere, prose wraps.
"""
from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, field

from tabulate import tabulate

from ..cases import short_text
from ..documents.benchmark import Repeatability
from ..documents.compare import Delta, GroupDelta
from ..documents.report import ModelEntry, SpeedControl
from ..documents.speedup import SpeedupSummary
from ..i18n import data_value, t
from ..status import BAD, GOOD, LOOK
from .advice import Advice, size_message


@dataclass
class Ctx:
    """How to render: 'text' (console, 100 columns) or 'md' (report.md, 120), language, short names."""

    fmt: str = "text"
    lang: str = "en"
    names: dict = field(default_factory=dict)  # model name -> the label tables use
    conf: str = "95%"

    @property
    def width(self) -> int:
        return 120 if self.fmt == "md" else 100

    def t(self, key: str, **args) -> str:
        return t(self.lang, key, **args)

    def n(self, name: str) -> str:
        return self.names.get(name, name)

    def value(self, data: str) -> str:
        """A value from the data (a quantization format, a pooling source) in the report's language."""
        return data_value(self.lang, data)


NAME_WIDTH = 14


def short_names(names: list[str], width: int = NAME_WIDTH) -> dict[str, str]:
    """name -> label of at most `width` characters, unique, the same in every table; names that fit stay."""
    out, used = {}, {n for n in names if len(n) <= width}
    for name in names:
        if len(name) <= width:
            out[name] = name
            continue
        i = 1
        while f"{name[:width - 1 - len(str(i))]}~{i}" in used:
            i += 1
        out[name] = f"{name[:width - 1 - len(str(i))]}~{i}"
        used.add(out[name])
    return out


def _tabulate(ctx: Ctx, rows, headers) -> list[str]:
    return tabulate(rows, headers=headers, tablefmt="github" if ctx.fmt == "md" else "simple",
                    disable_numparse=True).splitlines()


def table(ctx: Ctx, rows, headers, keep: int = 1) -> list[str]:
    """A table within the format's width: if it is wider, the columns after the first `keep` are
    split over several tables (each repeating the first `keep`), as many as fit side by side."""
    if not rows:
        return []
    groups, current = [], []
    for col in range(keep, len(headers)):
        trial = current + [col]
        cols = list(range(keep)) + trial
        width = max(map(len, _tabulate(ctx, [[r[c] for c in cols] for r in rows], [headers[c] for c in cols])))
        if current and width > ctx.width:
            groups.append(current)
            trial = [col]
        current = trial
    groups.append(current)
    out = []
    for group in groups:
        cols = list(range(keep)) + group
        out += _tabulate(ctx, [[r[c] for c in cols] for r in rows], [headers[c] for c in cols]) + [""]
    return out


def fitted_table(ctx: Ctx, build, headers, shares: tuple[float, ...]) -> list[str]:
    """A table whose text columns take the room the other columns leave: `build(widths)` makes the
    rows with each text column at most its width (one width per share of the room); the widths
    shrink by the overflow until the table fits the format's width."""
    widths = [int(ctx.width * share) for share in shares]
    rows = build(widths)
    for _ in range(4):
        over = max(map(len, _tabulate(ctx, rows, headers))) - ctx.width if rows else 0
        if over <= 0:
            break
        widths = [max(8, w - math.ceil(over * share)) for w, share in zip(widths, shares)]
        rows = build(widths)
    return table(ctx, rows, headers)


def para(ctx: Ctx, text: str, bullet: bool = False, indent: int = 0) -> list[str]:
    """Prose wrapped to the format's width; in Markdown a bullet keeps each note its own line."""
    lead = "  " * indent + ("- " if ctx.fmt == "md" and bullet else "")
    return textwrap.wrap(text, ctx.width, initial_indent=lead, subsequent_indent=" " * (len(lead) + (0 if lead else 4)),
                         break_long_words=False, break_on_hyphens=False) or [""]


def picture(ctx: Ctx, title: str, file: str) -> list[str]:
    return [f"![{title}](plots/{file})", ""] if ctx.fmt == "md" else []


def mb(n) -> str:
    return f"{n / 1e6:,.2f}"


def num(x, ctx: Ctx, spec=".4f") -> str:
    return ctx.t("cell.na") if x is None else format(x, spec)


def is_related(m: ModelEntry) -> bool:
    """Is this candidate the reference in another precision (so its agreement numbers mean something)?"""
    return m.comparison.relation.related


def size_cell(ctx: Ctx, ratio: float) -> str:
    """'[+] 1.30x smaller' / 'same size' / '[-] 1.10x larger'."""
    code = size_message(ratio)
    marker = "" if code.key == "cell.same_size" else (f"{GOOD} " if ratio > 1 else f"{BAD} ")
    return marker + code.text(ctx.lang)


def interval(x: SpeedupSummary, digits: int = 2) -> str:
    return f"{x.speedup:.{digits}f}x [{x.ci_low:.{digits}f}, {x.ci_high:.{digits}f}]"


def rerun_cell(x: SpeedupSummary) -> str:
    """Where another run's speedup should land (timing.rerun_interval); '-' with one block."""
    if x.rerun_low is None:
        return "-"
    return f"[{x.rerun_low:.2f}, {x.rerun_high:.2f}]"


def delta_cell(ctx: Ctx, d: Delta | GroupDelta) -> str:
    if d.relative is None or d.relative_ci_low is None or d.relative_ci_high is None:
        return ctx.t("cell.unmeasurable")
    return f"{d.relative:+.2%} [{d.relative_ci_low:+.2%}, {d.relative_ci_high:+.2%}]"


def p_cell(p: float | None) -> str:
    """A p-value to 3 decimals; below 0.001 as "<0.001", never as a "0.000" that reads as zero."""
    if p is None:
        return ""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def group_cell(ctx: Ctx, d: GroupDelta | None) -> str:
    """A group's relative change and interval, [-] when the interval lies below 0; the reason where
    the group is not measurable (too few queries, a reference at 0, an unbounded interval)."""
    if d is None:
        return ctx.t("cell.na")
    if not d.measurable:
        return ctx.t({"too_few_queries": "cell.too_few_queries", "reference_zero": "cell.reference_zero"}.get(
            d.reason, "cell.unmeasurable"))
    cell = delta_cell(ctx, d)
    return f"{BAD} {cell}" if d.relative_ci_high < 0 else cell


def text_cell(ctx: Ctx, text: str, width: int) -> str:
    """A corpus text in a table cell of at most `width` characters: on one line, shortened; in
    Markdown a code span (code keeps its `*` and `_`), its pipes escaped so the table holds."""
    if ctx.fmt != "md":
        return short_text(text, width)
    cut = width - 2
    while True:
        cell = "`" + short_text(text, cut).replace("`", "'").replace("|", "\\|") + "`"
        if len(cell) <= width or cut <= 4:
            return cell
        cut -= 1


def id_cell(ctx: Ctx, name: str | None, width: int) -> str:
    """A corpus id in at most `width` characters, its end kept (the part that tells ids apart); in
    Markdown a code span."""
    if name is None:
        return "-"
    return tail(name, width) if ctx.fmt != "md" else "`" + tail(name, width - 2).replace("`", "'") + "`"


def repeat_cell(ctx: Ctx, rep: Repeatability | None) -> str:
    if not rep:
        return ctx.t("cell.na")
    return f"{rep.relative_difference:.1%}" + (f" {LOOK} {ctx.t('cell.noisy')}" if rep.noisy else "")


def noise_floor(control: SpeedControl | None) -> str:
    """The A/A control's interval as a +-%: the smallest speed difference this machine can show."""
    if not control or control.ci_low is None:
        return "-"
    return f"+-{math.sqrt(control.ci_high / control.ci_low) - 1:.1%}"


def recipe_cell(ctx: Ctx, recipe: dict | None) -> str:
    """A recipe in a few words (the whole recipe is in report.json and the model's QUANTIZE.json):
    methods, calibrations and op types by their params names, the rest in the report's language."""
    if not recipe:
        return "-"
    parts = [recipe["method"]]
    if recipe["method"] in ("dynamic", "static"):
        parts.append("per-channel" if recipe["per_channel"] else "per-tensor")
        if recipe["method"] == "static":
            parts.append(recipe["calibration"])
        if recipe["reduce_range"]:
            parts.append("reduce_range")
        if "Gather" in recipe["op_types"]:
            parts.append("+Gather")
    if recipe["method"] == "int4":
        accuracy = f", {ctx.t('cell.recipe_accuracy', n=recipe['accuracy_level'])}" if recipe["accuracy_level"] else ""
        parts.append(ctx.t("cell.recipe_block", n=recipe["block_size"]) + accuracy)
    if recipe.get("nodes_to_exclude"):
        parts.append(ctx.t("cell.recipe_excluded", n=len(recipe["nodes_to_exclude"])))
    return " ".join(parts)


def speed_cell(ctx: Ctx, sp: SpeedupSummary) -> str:
    if sp.ci_low is not None and sp.ci_low > 1:
        return f"{GOOD} {ctx.t('cell.faster', x=sp.speedup)}"
    if sp.ci_high is not None and sp.ci_high < 1:
        return f"{BAD} {ctx.t('cell.slower', x=1 / sp.speedup)}"
    return f"{LOOK} {ctx.t('cell.no_difference', x=sp.speedup)}"


def quality_cell(ctx: Ctx, d: Delta) -> str:
    if d.relative is None or d.relative_ci_high is None:
        return f"{LOOK} {ctx.t('cell.unmeasurable')}"
    if d.relative_ci_high < 0:
        return f"{BAD} {d.relative:+.2%} ({ctx.t('cell.lower')})"
    return f"{GOOD} {d.relative:+.2%} ({ctx.t('cell.not_lower')})"


def tail(name: str, width: int) -> str:
    """A node name's end, which says which layer it is ('...layer.0/output/dense/MatMul')."""
    return name if len(name) <= width else "..." + name[-(width - 3):]


def advice_lines(ctx: Ctx, advice: list[Advice]) -> list[str]:
    """One bullet per piece of advice: its marker, then its sentences."""
    return [line for marker, codes in advice
            for line in para(ctx, f"{marker} " + " ".join(c.text(ctx.lang) for c in codes), bullet=True)]
