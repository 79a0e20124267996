"""The report: one JSON document built from the stage outputs, rendered as console text or Markdown.

Plain ASCII markers ([+] better, [-] worse, [!] look here) so a Windows console prints it as is.
Each section is one function of (report, Ctx) -> lines, so each can be tested on a fixed report;
the console stays within 100 columns and report.md within 120: tables are split by concern,
models are rows, long model names are shortened the same way everywhere, prose is wrapped.
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass, field

from tabulate import tabulate

from .errors import UserError
from .i18n import msg, render as render_msg, t
from .layout import RESULTS, Results
from .machine import int8_family, label as machine_label, load_cell
from .outputs import read_json
from .plotting import PLOTS

SCHEMA_VERSION = 2


def build_report(params, results: Results = RESULTS) -> dict:
    """Gather every model's inspect, benchmark and compare output into one document (schema in README)."""
    models, control, samples = {}, None, {}
    for name in params.models:
        ins = read_json(results.inspect(name))
        bench = read_json(results.benchmark(name))
        comp = read_json(results.compare(name))
        samples[name] = comp.get("sample")  # corpus_sample: what its quality numbers were measured on
        lat = {k: v for k, v in bench["latency_b1"].items() if not k.startswith("samples_ms")}
        models[name] = {
            "path": params.models[name].path,
            "size": ins["size"], "parameters": ins["parameters"]["count"],
            "bytes_by_dtype": ins["parameters"]["bytes_by_dtype"], "quantization": ins["quantization"],
            "opset": ins["opset"], "producer": ins["producer"],
            "inputs": ins["inputs"], "outputs": ins["outputs"],
            "embedding": comp["embedding"],
            "benchmark": {"session_create_s": bench["session_create_s"], "memory": bench["memory"],
                          "latency_b1": lat, "throughput": bench["throughput"], "sweep": bench["sweep"]},
            "environment": bench["environment"],
            "machines": comp["machines"], "load": comp["load"],
            "task": comp["task"],
            "activations": ins.get("activations"),
            "recipe": (ins.get("recipe") or {}).get("recipe"),
            "calibration": (ins.get("recipe") or {}).get("calibration"),
            "runtime": comp.get("runtime"),
        }
        if comp["is_reference"]:
            control = comp.get("speed_control")
        else:
            models[name]["comparison"] = {k: comp[k] for k in ("verdict", "relation", "consistency", "agreement",
                                                               "task_delta", "speed", "size", "snippets")}
            models[name]["diagnosis"] = diagnosis_summary(read_json(results.diagnose(name)))
    here = read_json(results.machine("timing"))
    order = ranking(models, params.reference)
    return {"ranking": order, "recommended": order[0] if order and models[order[0]]["comparison"]["verdict"]["status"]
            == "PASS" else None,"schema_version": SCHEMA_VERSION, "reference": params.reference, "corpus": params.corpus,
            "sample": one_sample(samples, results),
            "confidence": params.compare.confidence, "batch_invariance_min": params.compare.batch_invariance_min,
            "busy_tolerance": params.benchmark.busy_tolerance, "language": params.report.language,
            "batch_size": params.embed.batch_size,
            "machines": machine_summary(models, machine_label(here)), "speed_control": control, "models": models}


def one_sample(samples: dict, results: Results) -> dict | None:
    """The corpus sample every model's quality numbers come from (None: the whole corpus); models
    compared on different subsets (a stage run alone) are not put side by side."""
    (first, facts), *rest = samples.items()
    for name, other in rest:
        if other != facts:
            raise UserError(f"{results.compare(name)}: measured on another corpus sample than {results.compare(first)} "
                            "(corpus_sample); run dvc repro")
    return facts


MACHINE_ROLES = {"embed": ("embed",), "timing": ("benchmark", "speedup")}
STATUS_RANK = {"PASS": 2, "WARN": 1, "FAIL": 0}


def ranking(models: dict, reference: str) -> list[str]:
    """Candidates best first: by verdict; then quality, as "no measurable nDCG@10 loss" before "a
    measurable loss" (differences inside the interval are noise, not a ranking); then speedup;
    then size. A measurement that could not be made ranks last within its group."""
    def key(name: str):
        c = models[name]["comparison"]
        d, speed = c["task_delta"]["ndcg@10"], c["speed"]["latency_b1"]["speedup"]
        kept = d["relative_ci_high"] is not None and d["relative_ci_high"] >= 0
        return (STATUS_RANK[c["verdict"]["status"]], kept, float("-inf") if speed is None else speed,
                c["size"]["ratio"] or 0.0)
    return sorted((n for n in models if n != reference), key=key, reverse=True)


def machine_summary(models: dict, here: dict) -> dict:
    """Which machines the numbers come from, per kind of number, and a warning per model wherever
    they are not all from one machine (a report must never lend one machine's numbers to another)."""
    out = {"current": here, "warning_codes": []}
    for kind, roles in MACHINE_ROLES.items():
        seen: dict[str | None, dict] = {}  # machine id (None: recorded without facts) -> its entry
        for name, m in models.items():
            for role in roles:
                label = m["machines"][role]
                entry = seen.setdefault(label["id"], {"description": label["description"],
                                                           "int8_support": label["int8_support"], "used_by": []})
                entry["used_by"].append(f"{name} {role}")
        tags = {mid: f"{kind[0].upper()}{i}" for i, mid in enumerate(seen, 1)}
        out[kind] = {tags[mid]: {"id": mid, **entry} for mid, entry in seen.items()}
        if len(seen) > 1:
            for name, m in models.items():
                roles_on = [[role, tags[m["machines"][role]["id"]]] for role in roles]
                out["warning_codes"].append(msg("warn.mixed", name=name, kind=kind, roles=roles_on, n=len(seen),
                                                tags=", ".join(tags.values())))
    timing_ids = {v["id"] for v in out["timing"].values()}
    if here["id"] not in timing_ids:
        out["warning_codes"].append(msg("warn.elsewhere", machine=here["description"]))
    out["warnings"] = [render_msg(code, "en") for code in out["warning_codes"]]
    return out


def plot_series(report: dict) -> dict[str, list[dict]]:
    """Rows for `dvc plots`: one file per chart, a `series` field per model (template .dvc/plots/by_model.json)."""
    latency, throughput = [], []
    for name, m in report["models"].items():
        for p in m["benchmark"]["sweep"]:
            if "skipped" not in p:
                latency.append({"series": f"{name} batch {p['batch_size']}", "seq_len": p["seq_len"],
                                "p50_ms": p["p50_ms"], "tokens_per_s": p["tokens_per_s"]})
        for row in m["benchmark"]["throughput"]:
            for order in ("sorted", "unsorted"):
                throughput.append({"series": f"{name} {order}", "batch_size": row["batch_size"],
                                   "texts_per_s": row[order]["texts_per_s"], "tokens_per_s": row[order]["tokens_per_s"]})
    return {"latency.json": latency, "throughput.json": throughput}


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


NAME_WIDTH = 14


def short_names(names: list[str], width: int = NAME_WIDTH) -> dict[str, str]:
    """name -> label of at most `width` characters, unique, the same in every table; names that fit stay."""
    out, used = {}, set(n for n in names if len(n) <= width)
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


def _table(ctx: Ctx, rows, headers, keep: int = 1) -> list[str]:
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


def _para(ctx: Ctx, text: str, bullet: bool = False, indent: int = 0) -> list[str]:
    """Prose wrapped to the format's width; in Markdown a bullet keeps each note its own line."""
    lead = "  " * indent + ("- " if ctx.fmt == "md" and bullet else "")
    return textwrap.wrap(text, ctx.width, initial_indent=lead, subsequent_indent=" " * (len(lead) + (0 if lead else 4)),
                         break_long_words=False, break_on_hyphens=False) or [""]


def _picture(ctx: Ctx, title: str, file: str) -> list[str]:
    return [f"![{title}](plots/{file})", ""] if ctx.fmt == "md" else []


def _mb(n) -> str:
    return f"{n / 1e6:,.2f}"


def _f(x, ctx: Ctx, spec=".4f") -> str:
    return ctx.t("cell.na") if x is None else format(x, spec)


def _cands(report: dict) -> list[str]:
    return [n for n in report["models"] if n != report["reference"]]


def _related(m: dict) -> bool:
    return m["comparison"]["relation"]["related"]


def _size_msg(ratio: float) -> dict:
    """'1.30x smaller' / 'same size' / '1.10x larger' as a message code (within 0.5 % is the same)."""
    if abs(ratio - 1) < 0.005:
        return msg("cell.same_size")
    return msg("cell.smaller", x=ratio) if ratio > 1 else msg("cell.larger", x=1 / ratio)


def _size_cell(ctx: Ctx, ratio: float) -> str:
    """'[+] 1.30x smaller' / 'same size' / '[-] 1.10x larger'."""
    code = _size_msg(ratio)
    marker = "" if code["key"] == "cell.same_size" else ("[+] " if ratio > 1 else "[-] ")
    return marker + render_msg(code, ctx.lang)


def _interval(x: dict, digits: int = 2) -> str:
    return f"{x['speedup']:.{digits}f}x [{x['ci_low']:.{digits}f}, {x['ci_high']:.{digits}f}]"


def _delta_cell(ctx: Ctx, d: dict) -> str:
    if d["relative"] is None or d["relative_ci_low"] is None or d["relative_ci_high"] is None:
        return ctx.t("cell.unmeasurable")
    return f"{d['relative']:+.2%} [{d['relative_ci_low']:+.2%}, {d['relative_ci_high']:+.2%}]"


def _repeat_cell(ctx: Ctx, rep) -> str:
    if not rep:
        return ctx.t("cell.na")
    return f"{rep['relative_difference']:.1%}" + (f" [!] {ctx.t('cell.noisy')}" if rep["noisy"] else "")


def _overlap(a: dict | None, b: dict | None) -> bool:
    """Do two speedup intervals overlap (True when either is missing: no evidence of a difference)?"""
    if not a or not b or None in (a["ci_low"], a["ci_high"], b["ci_low"], b["ci_high"]):
        return True
    return not (a["ci_high"] < b["ci_low"] or b["ci_high"] < a["ci_low"])


def estimates_disagree(speed: dict) -> bool:
    """Do the one-process and separate-process speedup intervals fail to overlap?"""
    return not _overlap(speed["latency_b1"], speed.get("latency_b1_separate_runs"))


def _machine_lines(ctx: Ctx, kind: dict, one: str, many: str) -> list[str]:
    """'Timed on: ...' for one machine; a tagged list when the numbers come from several."""
    if len(kind) == 1:
        (entry,) = kind.values()
        return _para(ctx, ctx.t(one, machine=entry["description"]), bullet=True)
    lines = _para(ctx, "[!] " + ctx.t(many, n=len(kind)), bullet=True)
    for tag, entry in kind.items():
        used = ", ".join(f"{ctx.n(u.rsplit(' ', 1)[0])} {ctx.t('role.' + u.rsplit(' ', 1)[1])}" for u in entry["used_by"])
        lines += _para(ctx, ctx.t("note.machine_tag", tag=tag, machine=entry["description"], used=used),
                       bullet=True, indent=1)
    return lines


# ---------------------------------------------------------------- sections

def section_header(report: dict, ctx: Ctx) -> list[str]:
    title = ctx.t("title")
    out = [f"# {title}", ""] if ctx.fmt == "md" else ["=" * 78, title, "=" * 78]
    out += _para(ctx, ctx.t("head.reference", ref=report["reference"], corpus=report["corpus"]))
    if report.get("sample"):  # a quick look: said first, as every number below is the sample's
        out += _para(ctx, "[!] " + ctx.t("head.sample", **report["sample"]), bullet=True)
    shortened = [f"{short} = {name}" for name, short in ctx.names.items() if short != name]
    if shortened:
        out += _para(ctx, ctx.t("head.short_names", pairs="; ".join(shortened)))
    for code in report["machines"]["warning_codes"]:
        out += _para(ctx, "[!] " + render_msg(code, ctx.lang), bullet=True)
    return out


def section_info(report: dict, ctx: Ctx) -> list[str]:
    ref = report["reference"]
    rows, rows2 = [], []
    for n, m in report["models"].items():
        s = m["size"]
        label = ctx.t("cell.reference", name=ctx.n(n)) if n == ref else ctx.n(n)
        vs = ctx.t("cell.baseline") if n == ref else _size_cell(ctx, m["comparison"]["size"]["ratio"])
        rows.append([label, m["quantization"], _mb(s["total_bytes"]),
                     f"{_mb(s['graph_bytes'])} + {_mb(s['external_data_bytes'])}", f"{m['parameters']:,}", vs])
        emb, pooling = m["embedding"], m["embedding"]["pooling"]
        rows2.append([ctx.n(n), emb["dim"], f"{pooling['mode']}:{pooling['output']} ({pooling['source']})",
                      ctx.t("cell.yes") if emb["normalize"] else ctx.t("cell.no"), emb["max_length"],
                      ", ".join(f"{k} {v}" for k, v in m["opset"].items())])
    rows3 = [[ctx.n(n), recipe_cell(m.get("recipe")), ctx.t(f"act.{m.get('activations') or 'unknown'}"),
              ctx.t("cell.calibration", n=m["calibration"]["texts"], overlap=m["calibration"]["overlap_with_evaluation"])
              if m.get("calibration") else "-"] for n, m in report["models"].items()]
    return (_table(ctx, rows, [ctx.t(k) for k in ("col.model", "col.format", "col.size_mb", "col.graph_ext",
                                                  "col.parameters", "col.vs_ref_size")])
            + _table(ctx, rows2, [ctx.t(k) for k in ("col.model", "col.dim", "col.pooling", "col.l2", "col.max_len",
                                                     "col.opset")])
            + _table(ctx, rows3, [ctx.t(k) for k in ("col.model", "col.recipe", "col.activations",
                                                     "col.calibration")]))


def recipe_cell(recipe: dict | None) -> str:
    """A recipe in a few words (the whole recipe is in report.json and the model's QUANTIZE.json)."""
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
        parts.append(f"block {recipe['block_size']}" + (f", acc {recipe['accuracy_level']}" if recipe["accuracy_level"] else ""))
    if recipe.get("nodes_to_exclude"):
        parts.append(f"-{len(recipe['nodes_to_exclude'])} nodes")
    return " ".join(parts)


def section_perf(report: dict, ctx: Ctx) -> list[str]:
    models, ref = report["models"], report["reference"]
    out = _machine_lines(ctx, report["machines"]["timing"], "note.timed_on", "note.timed_on_many")
    env = models[ref]["environment"]
    out += _para(ctx, ctx.t("note.provider", provider=env["provider"], threads=env["intra_op_threads"]), bullet=True)
    out.append("")
    lat_rows, tput_rows, speed_rows = [], [], []
    big = report.get("batch_size")
    for n, m in models.items():
        b = m["benchmark"]
        lat = b["latency_b1"]
        lat_rows.append([ctx.n(n), f"{lat['p50_ms']:.2f}", f"{lat['p90_ms']:.2f}", f"{lat['p99_ms']:.2f}",
                         f"{lat['mean_ms']:.2f} +- {lat['std_ms']:.2f}", lat["count"],
                         _repeat_cell(ctx, lat.get("repeatability")),
                         f"{load_cell(m['load']['benchmark'])} / {load_cell(m['load']['speedup'])}"])
        tput = {row["batch_size"]: row for row in b["throughput"]}
        bs = big if big in tput else max(tput)
        tput_rows.append([ctx.n(n), f"{b['session_create_s']:.2f}", f"{tput[bs]['sorted']['texts_per_s']:.1f}",
                          f"{tput[bs]['sort_speedup']:.2f}x", _mb(b["memory"]["peak_rss_bytes"])])
        if n != ref:
            speed = m["comparison"]["speed"]
            sep = speed.get("latency_b1_separate_runs")
            speed_rows.append([ctx.n(n), _interval(speed["latency_b1"]), _interval(sep) if sep else ctx.t("cell.na"),
                               f"[!] {ctx.t('cell.disagree')}" if estimates_disagree(speed) else ctx.t("cell.agree")])
    out += _table(ctx, lat_rows, [ctx.t(k) for k in ("col.model", "col.p50", "col.p90", "col.p99", "col.mean_std",
                                                     "col.n", "col.run_to_run", "col.other_load")])
    out += _table(ctx, tput_rows, [ctx.t("col.model"), ctx.t("col.session_s"), ctx.t("col.texts_s", bs=bs),
                                   ctx.t("col.sorted_gain"), ctx.t("col.peak_rss")])
    out += _table(ctx, speed_rows, [ctx.t("col.candidate"), ctx.t("col.speedup_il", conf=ctx.conf),
                                    ctx.t("col.speedup_sep", conf=ctx.conf), ctx.t("col.estimates")])
    out += _para(ctx, ctx.t("note.latency_method", conf=ctx.conf), bullet=True)
    control = report.get("speed_control")
    if control:
        line = ctx.t("note.control", x=control["speedup"], lo=control["ci_low"], hi=control["ci_high"])
        out += _para(ctx, line + (f" [!] {ctx.t('note.control_bad')}" if control["measurable"] else ""), bullet=True)
    for n in _cands(report):
        speed = models[n]["comparison"]["speed"]
        if estimates_disagree(speed):
            out += _para(ctx, "[!] " + ctx.t("note.disagree", name=n, il=_interval(speed["latency_b1"]),
                                             sep=_interval(speed["latency_b1_separate_runs"])), bullet=True)
    out.append("")
    out += _picture(ctx, ctx.t("fig.latency"), "latency.png") + _picture(ctx, ctx.t("fig.throughput"), "throughput.png")
    if ctx.fmt == "text":
        out += _para(ctx, ctx.t("note.pictures", files=", ".join(f"results/plots/{p}" for p in PICTURES)))
    return out


def _cosine_breakdown(report: dict, ctx: Ctx, cands: list[str]) -> list[list[str]]:
    """Rows 'lang python (n=...)', 'tokens 0-32', ... with one 'mean/min' cell per candidate."""
    rows = []
    for key, label in (("by_lang", "cell.lang_group"), ("by_length", "cell.tokens_group")):
        groups: dict[str, int] = {}
        for n in cands:
            for g, d in report["models"][n]["comparison"]["agreement"].get("cosine", {}).get(key, {}).items():
                groups.setdefault(g, d["count"])
        for g, count in groups.items():
            cells = []
            for n in cands:
                d = report["models"][n]["comparison"]["agreement"].get("cosine", {}).get(key, {}).get(g)
                cells.append(f"{d['mean']:.4f}/{d['min']:.4f}" if d else ctx.t("cell.na"))
            rows.append([f"{ctx.t(label, g=g)} (n={count})"] + cells)
    return rows


def section_quality(report: dict, ctx: Ctx) -> list[str]:
    models = report["models"]
    out = _machine_lines(ctx, report["machines"]["embed"], "note.embedded_on", "note.embedded_on_many") + [""]
    rows = []
    for n, m in models.items():
        task, c = m["task"], m.get("comparison")
        d = c["task_delta"]["ndcg@10"] if c else None
        rows.append([ctx.n(n), *(_f(task[k], ctx) for k in ("ndcg@10", "mrr@10", "recall@1", "recall@10")),
                     ctx.t("cell.baseline") if d is None else _delta_cell(ctx, d),
                     "" if d is None or d.get("wilcoxon_p") is None else f"{d['wilcoxon_p']:.3f}"])
    out += _table(ctx, rows, [ctx.t("col.model"), ctx.t("col.ndcg"), ctx.t("col.mrr"), ctx.t("col.r1"),
                              ctx.t("col.r10"), ctx.t("col.ndcg_change", conf=ctx.conf), ctx.t("col.p")])
    cands = _cands(report)
    if not cands:
        return out
    related = [n for n in cands if _related(models[n])]
    cos_rows, nb_rows = [], []
    for n in cands:
        a, inv = models[n]["comparison"]["agreement"], models[n]["embedding"]["batch_invariance"]
        if n in related:
            cos = a.get("cosine", {})
            cos_rows.append([ctx.n(n), _f(cos.get("mean"), ctx=ctx), _f(cos.get("p1"), ctx=ctx),
                             _f(cos.get("min"), ctx=ctx), _f(inv.get("min"), ctx, ".6f")])
        else:
            cos_rows.append([ctx.n(n)] + [ctx.t("cell.na_other_model")] * 3 + [_f(inv.get("min"), ctx, ".6f")])
        sim = a["similarity"]
        nb_rows.append([ctx.n(n), _f(sim["pearson"], ctx=ctx), _f(sim["spearman"], ctx=ctx),
                        _f(sim.get("overlap@10"), ctx=ctx), _f(sim["top1_agreement"], ctx=ctx),
                        _f(sim.get("rbo@10"), ctx=ctx), _f(a["cka_linear"], ctx=ctx)])
    out += _table(ctx, cos_rows, [ctx.t(k) for k in ("col.candidate", "col.cos_mean", "col.cos_p1", "col.cos_min",
                                                     "col.inv_min")])
    out += _table(ctx, nb_rows, [ctx.t(k) for k in ("col.candidate", "col.pearson", "col.spearman", "col.overlap",
                                                    "col.top1", "col.rbo", "col.cka")])
    out += _para(ctx, ctx.t("note.agreement"), bullet=True) + [""]
    breakdown = _cosine_breakdown(report, ctx, related)
    if breakdown:
        out += _para(ctx, ctx.t("note.breakdown")) + [""]
        out += _table(ctx, breakdown, [ctx.t("col.group")] + [ctx.n(n) for n in related])
    out += _snippets(report, ctx, cands)
    out += _picture(ctx, ctx.t("fig.cosine"), "cosine.png")
    return out


def _snippets(report: dict, ctx: Ctx, cands: list[str]) -> list[str]:
    models, ref = report["models"], report["reference"]
    rows = []
    for i, s in enumerate(models[cands[0]]["comparison"]["snippets"]):
        row = [s["id"], s["lang"], ctx.t("cell.hit") if s["reference_top1"] else ctx.t("cell.miss")]
        for n in cands:
            sn = models[n]["comparison"]["snippets"][i]
            cos = _f(sn["cosine_code"], ctx=ctx) if _related(models[n]) else ctx.t("cell.na")
            row.append(f"{cos} {ctx.t('cell.hit') if sn['candidate_top1'] else ctx.t('cell.miss')}")
        rows.append(row)
    if not rows:
        return []
    return (_para(ctx, ctx.t("note.snippets")) + [""]
            + _table(ctx, rows, [ctx.t("col.snippet"), ctx.t("col.lang"), ctx.t("col.ref_top1", ref=ctx.n(ref))]
                     + [ctx.n(n) for n in cands]))


MARKERS = {"PASS": "[+]", "WARN": "[!]", "FAIL": "[-]"}


def _status(report: dict, ctx: Ctx, status: str) -> str:
    """A verdict in words, marked when it comes from a corpus sample."""
    return ctx.t(f"status.{status}") + (" " + ctx.t("cell.from_sample") if report.get("sample") else "")


def section_verdict(report: dict, ctx: Ctx) -> list[str]:
    out = []
    for n in _cands(report):
        v = report["models"][n]["comparison"]["verdict"]
        status = _status(report, ctx, v["status"])
        if v.get("scope_code"):
            line = ctx.t("note.verdict_scope", marker=MARKERS[v["status"]], name=n, status=status,
                         scope=render_msg(v["scope_code"], ctx.lang))
        else:
            line = ctx.t("note.verdict", marker=MARKERS[v["status"]], name=n, status=status)
        out += _para(ctx, line, bullet=True)
        for code in v["reason_codes"]:
            out += _para(ctx, ("" if ctx.fmt == "md" else "    - ") + render_msg(code, ctx.lang), bullet=True, indent=1)
    for n in _cands(report):
        out += _diagnosis(ctx, n, report["models"][n].get("diagnosis"))
    return out or _para(ctx, ctx.t("note.no_candidates"))


def _speed_cell(ctx: Ctx, sp: dict) -> str:
    if sp["ci_low"] is not None and sp["ci_low"] > 1:
        return f"[+] {ctx.t('cell.faster', x=sp['speedup'])}"
    if sp["ci_high"] is not None and sp["ci_high"] < 1:
        return f"[-] {ctx.t('cell.slower', x=1 / sp['speedup'])}"
    return f"[!] {ctx.t('cell.no_difference', x=sp['speedup'])}"


def _quality_cell(ctx: Ctx, d: dict) -> str:
    if d["relative"] is None or d["relative_ci_high"] is None:
        return f"[!] {ctx.t('cell.unmeasurable')}"
    if d["relative_ci_high"] < 0:
        return f"[-] {d['relative']:+.2%} ({ctx.t('cell.lower')})"
    return f"[+] {d['relative']:+.2%} ({ctx.t('cell.not_lower')})"


def section_summary(report: dict, ctx: Ctx) -> list[str]:
    rows = []
    for rank, n in enumerate(report["ranking"], 1):
        m = report["models"][n]
        c = m["comparison"]
        cos = c["agreement"].get("cosine", {}).get("mean")
        rows.append([str(rank), ctx.n(n), _status(report, ctx, c["verdict"]["status"]),
                     _quality_cell(ctx, c["task_delta"]["ndcg@10"]),
                     _f(cos, ctx=ctx) if _related(m) else ctx.t("cell.na_other_model"),
                     _speed_cell(ctx, c["speed"]["latency_b1"]),
                     _size_cell(ctx, c["size"]["ratio"])])
    out = _table(ctx, rows, ["#"] + [ctx.t(k) for k in ("col.candidate", "col.verdict", "col.quality", "col.cosine",
                                                        "col.speed_b1", "col.size_vs_ref")], keep=2)
    marker, codes = ship_line(report)
    out += _para(ctx, f"{marker} " + " ".join(render_msg(c, ctx.lang) for c in _as_list(codes)), bullet=True) + [""]
    return out + _picture(ctx, ctx.t("fig.tradeoff", conf=ctx.conf), "tradeoff.png")


def ship_line(report: dict) -> tuple[str, dict | list[dict]]:
    """The answer to "which one should I ship?", said to come from a sample when it does."""
    marker, codes = _ship_line(report)
    if report.get("sample"):
        return marker, _as_list(codes) + [msg("ship.sample", **report["sample"])]
    return marker, codes


def _ship_line(report: dict) -> tuple[str, dict | list[dict]]:
    """The best-ranked PASS, or why none, and the knob the evidence points to."""
    models, order = report["models"], report["ranking"]
    if not order:
        return "[!]", msg("ship.none_to_rank")
    best = order[0]
    c = models[best]["comparison"]
    d, sp = c["task_delta"]["ndcg@10"], c["speed"]["latency_b1"]
    args = {"name": best, "ndcg": d["relative"] if d["relative"] is not None else float("nan"),
            "speedup": sp["speedup"], "size": _size_msg(c["size"]["ratio"])}
    scope = c["verdict"].get("scope_code")
    if c["verdict"]["status"] == "PASS":
        codes = [msg("ship.pass_scope", support=scope["args"]["support"], **args) if scope else msg("ship.pass", **args)]
        runner_up = next((n for n in order[1:2] if models[n]["comparison"]["verdict"]["status"] == "PASS"), None)
        if runner_up and _overlap(c["speed"]["latency_b1"], models[runner_up]["comparison"]["speed"]["latency_b1"]):
            other = models[runner_up]["comparison"]
            codes.append(msg("ship.also", name=runner_up, speedup=other["speed"]["latency_b1"]["speedup"],
                             size=_size_msg(other["size"]["ratio"])))
        return "[+]", codes
    recipe = models[best].get("recipe") or {}
    support = models[best]["machines"]["embed"]["int8_support"] or ""
    if recipe.get("method") in ("dynamic", "static") and not recipe.get("per_channel"):
        knob = "per_channel"
    elif int8_family(support) == "avx2" and recipe.get("method") == "dynamic" and not recipe.get("reduce_range"):
        knob = "reduce_range"
    else:
        knob = "nodes_to_exclude"
    return "[!]", msg("ship.none", status=c["verdict"]["status"], knob=msg(f"knob.{knob}"), **args)


def _as_list(codes: dict | list[dict]) -> list[dict]:
    return codes if isinstance(codes, list) else [codes]


def section_recommendations(report: dict, ctx: Ctx) -> list[str]:
    out = []
    for marker, codes in recommendations(report):
        out += _para(ctx, f"{marker} " + " ".join(render_msg(code, ctx.lang) for code in _as_list(codes)), bullet=True)
    return out


SECTIONS = [("INFO", section_info), ("PERF", section_perf), ("QUALITY", section_quality), ("VERDICT", section_verdict),
            ("SUMMARY", section_summary), ("RECOMMENDATIONS", section_recommendations)]
PICTURES = tuple(PLOTS)  # drawn by plotting.render_plots, embedded here


def render(report: dict, fmt: str = "text", lang: str | None = None) -> str:
    """fmt: 'text' for the console (100 columns), 'md' for results/report.md (120); lang: en | ru."""
    ctx = Ctx(fmt, lang or report.get("language", "en"), short_names(list(report["models"])),
              f"{report['confidence']:.0%}")
    out = section_header(report, ctx)
    for tag, section in SECTIONS:
        heading = f"[{tag}] {ctx.t('sec.' + tag)}"
        out += ["", f"## {heading}" if fmt == "md" else heading, ""]
        out += section(report, ctx)
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out) + "\n"


def recommendations(report: dict) -> list[tuple[str, dict | list[dict]]]:
    """(marker, message code or codes of one sentence group): what to do next, from the evidence."""
    out = [ship_line(report)]
    models = report["models"]
    for entry in report["machines"]["timing"].values():
        support = entry["int8_support"] or "unknown"
        if int8_family(support) == "avx2" or support == "none detected":
            out.append(("[!]", msg("rec.avx2_speed", machine=entry["description"], support=support)))
    for n, m in models.items():
        rep = m["benchmark"]["latency_b1"].get("repeatability")
        if rep and rep["noisy"]:
            out.append(("[!]", msg("rec.noisy", name=n, diff=rep["relative_difference"], tol=rep["tolerance"])))
        busy = [role for role, load in m["load"].items() if load and load.get("busy")]
        if busy:
            out.append(("[!]", msg("rec.busy", name=n, parts=", ".join(busy), tol=report["busy_tolerance"],
                                   stage=f"{busy[0]}@{n}")))
    # a runtime that computed in another precision than the file stores (OpenVINO bf16): say it plainly
    out.extend(("[!]", m["runtime"]["note_code"]) for m in models.values() if (m.get("runtime") or {}).get("note_code"))
    for n in _cands(report):
        c = models[n]["comparison"]
        inv = models[n]["embedding"]["batch_invariance"]
        if inv.get("min") is not None and inv["min"] < report["batch_invariance_min"]:
            expected = models[n].get("activations") == "dynamic"
            out.append(("[!]", msg("rec.batch_mates" if expected else "rec.batch_mates_unexpected", name=n,
                                   min=inv["min"], mean=inv["mean"], activations=models[n].get("activations"))))
        if not c["speed"]["latency_b1"]["measurable"]:
            out.append(("[!]", msg("rec.within_noise", name=n)))
        status, scope = c["verdict"]["status"], c["verdict"].get("scope_code")
        sampled = [msg("rec.from_sample", **report["sample"])] if report.get("sample") else []
        if status == "FAIL" and c["relation"]["related"]:
            out.append(("[-]", [msg("rec.fail", name=n)] + sampled))
        elif status == "PASS":
            out.append(("[+]", [msg("rec.pass_scope", name=n, support=scope["args"]["support"]) if scope
                                else msg("rec.pass", name=n)] + sampled))
        if not c["relation"]["related"]:
            out.append(("[!]", msg("rec.unrelated", name=n, reason=c["relation"]["reason"])))
        if scope:
            out.extend(int8_path_advice(n, models[n]["machines"]["embed"]["int8_support"], models[n].get("recipe")))
        out.extend(diagnosis_advice(n, models[n].get("diagnosis")))
    return out


def int8_path_advice(name: str, support: str | None, recipe: dict | None) -> list[tuple[str, dict | list[dict]]]:
    """What changes for an INT8 candidate on the other instruction path (measured facts, README)."""
    reduce_range = bool(recipe and recipe.get("reduce_range"))
    if support is None:
        return [("[!]", msg("rec.int8_unknown", name=name))]  # a single code, like most recommendations
    family = int8_family(support)
    if family == "avx2":
        return [("[!]", [msg("rec.int8_avx2", name=name, support=support),
                         msg("rec.int8_avx2_rr_on" if reduce_range else "rec.int8_avx2_rr_off")])]
    if family == "vnni":
        return [("[!]", [msg("rec.int8_vnni", name=name, support=support),
                         msg("rec.int8_vnni_rr_on" if reduce_range else "rec.int8_vnni_rr_off")])]
    return [("[!]", msg("rec.int8_other", name=name, support=support))]


# ---------------------------------------------------------------- layer diagnosis (diagnose stage)

DIAGNOSIS_KEYS = ("status", "reason", "texts", "jump_factor", "layers", "first_jump", "top", "nodes_to_exclude",
                  "outputs")


def diagnosis_summary(result: dict) -> dict:
    """What the report keeps of results/diagnose/NAME.json: everything but the per-layer list."""
    return {k: result[k] for k in DIAGNOSIS_KEYS if k in result}


def _tail(name: str, width: int) -> str:
    """A node name's end, which says which layer it is ('...layer.0/output/dense/MatMul')."""
    return name if len(name) <= width else "..." + name[-(width - 3):]


def _diagnosis(ctx: Ctx, name: str, d: dict | None) -> list[str]:
    """Under the verdicts: for a non-PASS candidate, the layers where its error jumps."""
    if not d or d["status"] == "skipped":
        return []
    out = [""]
    if d["status"] != "done":
        return out + _para(ctx, ctx.t("diag.not_done", name=name, reason=render_msg(d["reason"], ctx.lang)))
    counts = {"texts": d["texts"], "factor": d["jump_factor"], **d["layers"]}
    first = d["first_jump"]
    if not first:
        return out + _para(ctx, ctx.t("diag.no_jump", name=name, **counts))
    out += _para(ctx, ctx.t("diag.heading", name=name, node=first["node"], op=first["op"], rel=first["rel_error"],
                            before=first["max_before"], **counts)) + [""]
    rows = [[_tail(r["node"], 58 if ctx.fmt == "md" else 52), r["op"], _f(r["rel_error"], ctx),
             _f(r["max_before"], ctx), _f(r["sqnr_db"], ctx, ".1f")] for r in d["top"]]
    return out + _table(ctx, rows, [ctx.t(k) for k in ("col.layer", "col.op", "col.rel_error", "col.max_before",
                                                       "col.sqnr")])


def diagnosis_advice(name: str, d: dict | None) -> list[tuple[str, dict]]:
    """The ready nodes_to_exclude list of a diagnosed candidate, as a recommendation."""
    if not d or not d.get("nodes_to_exclude"):
        return []
    nodes = "[" + ", ".join(f'"{n}"' for n in d["nodes_to_exclude"]) + "]"
    return [("[!]", msg("rec.exclude", name=name, count=len(d["nodes_to_exclude"]), nodes=nodes))]
