"""The report: one JSON document built from the stage outputs, rendered as console text or Markdown.

Plain ASCII markers ([+] better, [-] worse, [!] look here) so a Windows console prints it as is.
"""
from __future__ import annotations

from pathlib import Path

from tabulate import tabulate

from .layout import RESULTS, Results
from .machine import int8_path, label as machine_label, load_cell
from .outputs import read_json

SCHEMA_VERSION = 2


def _mb(n) -> str:
    return f"{n / 1e6:,.2f}"


def _f(x, spec=".4f") -> str:
    return "n/a" if x is None else format(x, spec)


def build_report(params, results: Results = RESULTS) -> dict:
    """Gather every model's inspect, benchmark and compare output into one document (schema in README)."""
    models, control = {}, None
    for name in params.models:
        ins = read_json(results.inspect(name))
        bench = read_json(results.benchmark(name))
        comp = read_json(results.compare(name))
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
            "runtime": comp.get("runtime"),
            "recipe": params.quantize[name].__dict__ if name in params.quantize else None,
        }
        if comp["is_reference"]:
            control = comp.get("speed_control")
        else:
            models[name]["comparison"] = {k: comp[k] for k in ("verdict", "relation", "consistency", "agreement",
                                                               "task_delta", "speed", "size", "snippets")}
    here = read_json(results.machine("timing"))
    return {"schema_version": SCHEMA_VERSION, "reference": params.reference, "corpus": params.corpus,
            "confidence": params.compare.confidence, "batch_invariance_min": params.compare.batch_invariance_min,
            "busy_tolerance": params.benchmark.busy_tolerance,
            "machines": machine_summary(models, machine_label(here)), "speed_control": control, "models": models}


MACHINE_ROLES = {"embed": ("embed",), "timing": ("benchmark", "speedup")}


def machine_summary(models: dict, here: dict) -> dict:
    """Which machines the numbers come from, per kind of number, and a warning per model wherever
    they are not all from one machine (a report must never lend one machine's numbers to another)."""
    out = {"current": here, "warnings": []}
    for kind, roles in MACHINE_ROLES.items():
        seen: dict[str, dict] = {}
        for name, m in models.items():
            for role in roles:
                label = m["machines"][role]
                entry = seen.setdefault(str(label["id"]), {"description": label["description"],
                                                           "int8_support": label["int8_support"], "used_by": []})
                entry["used_by"].append(f"{name} {role}")
        tags = {mid: f"{kind[0].upper()}{i}" for i, mid in enumerate(seen, 1)}
        out[kind] = {tags[mid]: {"id": None if mid == "None" else mid, **entry} for mid, entry in seen.items()}
        if len(seen) > 1:
            for name, m in models.items():
                used = ", ".join(f"{role} on {tags[str(m['machines'][role]['id'])]}" for role in roles)
                out["warnings"].append(f"{name}: {kind} numbers from {used}; the report combines "
                                       f"{len(seen)} machines ({', '.join(tags.values())}), not comparable")
    timing_ids = {v["id"] for v in out["timing"].values()}
    if here["id"] not in timing_ids:
        out["warnings"].append(f"the timings come from another machine than this one ({here['description']})")
    return out


def plot_series(report: dict) -> dict[str, list[dict]]:
    """Rows for `dvc plots`: one file per chart, a `series` field per model (template .dvc/plots/by_model.json)."""
    latency, throughput = [], []
    for name, m in report["models"].items():
        for p in m["benchmark"]["sweep"]:
            if "skipped" not in p:
                latency.append({"series": f"{name} batch {p['batch_size']}", "seq_len": p["seq_len"],
                                "p50_ms": p["p50_ms"], "tokens_per_s": p["tokens_per_s"]})
        for t in m["benchmark"]["throughput"]:
            for order in ("sorted", "unsorted"):
                throughput.append({"series": f"{name} {order}", "batch_size": t["batch_size"],
                                   "texts_per_s": t[order]["texts_per_s"], "tokens_per_s": t[order]["tokens_per_s"]})
    return {"latency.json": latency, "throughput.json": throughput}


def _cosine_breakdown(models: dict, cands: list[str]) -> list[list[str]]:
    """Rows 'lang python', 'tokens 0-32', ... with one 'mean / min' cell per candidate."""
    rows = []
    for key, label in (("by_lang", "lang"), ("by_length", "tokens")):
        groups = []
        for n in cands:
            for g in models[n]["comparison"]["agreement"].get("cosine", {}).get(key, {}):
                if g not in groups:
                    groups.append(g)
        for g in groups:
            cells = []
            for n in cands:
                d = models[n]["comparison"]["agreement"].get("cosine", {}).get(key, {}).get(g)
                cells.append(f"{d['mean']:.4f} / {d['min']:.4f} (n={d['count']})" if d else "n/a")
            rows.append([f"{label} {g}"] + cells)
    return rows


def _delta_cell(d: dict) -> str:
    if d["relative"] is None or d["relative_ci_low"] is None or d["relative_ci_high"] is None:
        return "n/a (reference mean is 0 or interval undefined)"
    return f"{d['relative']:+.2%} [{d['relative_ci_low']:+.2%}, {d['relative_ci_high']:+.2%}] p={d['wilcoxon_p']:.3f}"


def _repeat_cell(rep) -> str:
    if not rep:
        return "n/a"
    return f"{rep['relative_difference']:.1%}" + (" [!] noisy" if rep["noisy"] else "")


def _machine_lines(kind: dict, what: str) -> list[str]:
    """'Timed on: ...' for one machine; a tagged list when the numbers come from several."""
    if len(kind) == 1:
        (entry,) = kind.values()
        return [f"{what}: {entry['description']}"]
    lines = [f"[!] {what} {len(kind)} different machines: numbers from different machines are not comparable"]
    for tag, entry in kind.items():
        lines.append(f"    {tag} = {entry['description']}: {', '.join(entry['used_by'])}")
    return lines


def _table(rows, headers, fmt) -> str:
    return tabulate(rows, headers=headers, tablefmt="github" if fmt == "md" else "grid", disable_numparse=True)


def render(report: dict, fmt: str = "text") -> str:
    """fmt: 'text' for the console, 'md' for results/report.md."""
    ref = report["reference"]
    models = report["models"]
    names = list(models)
    conf = f"{report['confidence']:.0%}"
    cands = [n for n in names if n != ref]
    machines = report["machines"]
    out: list[str] = []

    def section(tag: str, title: str) -> None:
        out.append("")
        out.append(f"## [{tag}] {title}" if fmt == "md" else f"[{tag}] {title}")
        out.append("")

    out.append("# Embedding model comparison" if fmt == "md" else "=" * 78 + "\nEMBEDDING MODEL COMPARISON\n" + "=" * 78)
    out.append(f"reference: {ref}; corpus: {report['corpus']}")
    if machines["warnings"]:
        out.append("")
        out.extend(f"[!] {w}" for w in machines["warnings"])

    section("INFO", "GENERAL INFORMATION")
    rows = []
    for n in names:
        m = models[n]
        s = m["size"]
        emb = m["embedding"]
        pooling = emb["pooling"]
        rows.append([n + (" (reference)" if n == ref else ""), m["quantization"], _mb(s["total_bytes"]),
                     f"{_mb(s['graph_bytes'])} + {_mb(s['external_data_bytes'])}", f"{m['parameters']:,}",
                     emb["dim"], f"{pooling['mode']}:{pooling['output']} ({pooling['source']})",
                     "yes" if emb["normalize"] else "no", ", ".join(f"{k} {v}" for k, v in m["opset"].items())])
    out.append(_table(rows, ["model", "quantization", "total MB", "graph + external MB", "parameters", "dim",
                             "pooling", "L2 norm", "opset"], fmt))

    section("PERF", "PERFORMANCE")
    out.extend(_machine_lines(machines["timing"], "Timed on"))
    env = models[ref]["environment"]
    out.append(f"Provider: {env['provider']}, intra-op threads: {env['intra_op_threads']}. CPU used by other "
               "processes while timing (benchmark / speedup): " +
               ", ".join(f"{n} {load_cell(models[n]['load']['benchmark'])} / {load_cell(models[n]['load']['speedup'])}"
                         for n in names))
    rows = []
    for n in names:
        b = models[n]["benchmark"]
        lat = b["latency_b1"]
        tput = {t["batch_size"]: t for t in b["throughput"]}
        big = max(tput)
        speed = models[n].get("comparison", {}).get("speed", {}).get("latency_b1")
        rows.append([n, f"{b['session_create_s']:.2f}", f"{lat['p50_ms']:.2f}", f"{lat['p90_ms']:.2f}",
                     f"{lat['p99_ms']:.2f}", f"{lat['mean_ms']:.2f} +- {lat['std_ms']:.2f}", lat["count"],
                     f"{tput[big]['sorted']['texts_per_s']:.1f}", f"{tput[big]['sort_speedup']:.2f}x",
                     _mb(b["memory"]["peak_rss_bytes"]),
                     _repeat_cell(lat.get("repeatability")),
                     "baseline" if speed is None else f"{speed['speedup']:.2f}x [{speed['ci_low']:.2f}, {speed['ci_high']:.2f}]"])
    big = max(t["batch_size"] for t in models[ref]["benchmark"]["throughput"])
    out.append(_table(rows, ["model", "session s", "p50 ms", "p90 ms", "p99 ms", "mean +- std ms", "n",
                             f"texts/s @bs{big}", "sorted vs unsorted", "peak RSS MB", "run-to-run", f"speedup b1 [{conf} CI]"], fmt))
    control = report.get("speed_control")
    out.append("Latency: batch 1 on real corpus texts after warmup (each model in its own process; "
               "run-to-run = difference of two back-to-back runs' medians). Speedup: reference and "
               "candidate timed in one process in alternating rounds, reference time / candidate time, "
               f"{conf} t-interval over rounds.")
    if control:
        out.append(f"A/A control (the reference against itself, same protocol): {control['speedup']:.3f}x "
                   f"[{control['ci_low']:.3f}, {control['ci_high']:.3f}]" +
                   ("" if not control["measurable"] else " [!] the method sees a difference where there is none: "
                    "the machine is too noisy for speed conclusions"))

    section("QUALITY", "EMBEDDING QUALITY")
    out.extend(_machine_lines(machines["embed"], "Embeddings computed on"))
    rows = []
    for n in names:
        t = models[n]["task"]
        c = models[n].get("comparison")
        d = c["task_delta"]["ndcg@10"] if c else None
        rows.append([n, _f(t["ndcg@10"]), _f(t["mrr@10"]), _f(t["recall@1"]), _f(t["recall@10"]),
                     "baseline" if d is None else _delta_cell(d)])
    out.append(_table(rows, ["model", "nDCG@10", "MRR@10", "recall@1", "recall@10", f"nDCG@10 change vs reference [{conf} CI]"], fmt))
    if cands:
        out.append("")
        rows = []
        for n in cands:
            a = models[n]["comparison"]["agreement"]
            cos = a.get("cosine", {})
            sim = a["similarity"]
            inv = models[n]["embedding"]["batch_invariance"]
            rows.append([n, _f(cos.get("mean")), _f(cos.get("p1")), _f(cos.get("min")), _f(sim["pearson"]),
                         _f(sim["spearman"]), _f(sim.get("overlap@10")), _f(sim["top1_agreement"]), _f(sim.get("rbo@10")),
                         _f(a["cka_linear"]), _f(inv.get("min"), ".6f")])
        out.append(_table(rows, ["candidate", "cos mean", "cos p1", "cos min", "sim Pearson", "sim Spearman",
                                 "overlap@10", "top-1 agree", "RBO@10", "CKA", "batch-invariance min"], fmt))
        out.append("Agreement: each text's vector from the candidate vs the reference (same batches); "
                   "similarity matrices are query x code cosine scores.")
        breakdown = _cosine_breakdown(models, cands)
        if breakdown:
            out.append("")
            out.append("Cosine to reference by language and by token length (mean / min):")
            out.append(_table(breakdown, ["group"] + cands, fmt))
        snippet_rows = []
        for i, s in enumerate(models[cands[0]]["comparison"]["snippets"]):
            row = [s["id"], s["lang"], "hit" if s["reference_top1"] else "miss"]
            for n in cands:
                sn = models[n]["comparison"]["snippets"][i]
                row.append(f"{_f(sn['cosine_code'])} / {'hit' if sn['candidate_top1'] else 'miss'}")
            snippet_rows.append(row)
        if snippet_rows:
            out.append("")
            out.append("Quick view, hand-written snippets (cosine to reference / own code ranked first among snippets):")
            out.append(_table(snippet_rows, ["snippet", "lang", f"{ref} top-1"] + cands, fmt))

    section("VERDICT", "VERDICT")
    for n in cands:
        v = models[n]["comparison"]["verdict"]
        marker = {"PASS": "[+]", "WARN": "[!]", "FAIL": "[-]"}[v["status"]]
        out.append(f"{marker} {n}: {v['status']}" + (f"; {v['scope']}" if v.get("scope") else ""))
        out.extend(f"    - {r}" for r in v["reasons"])

    section("SUMMARY", "SUMMARY")
    rows = []
    for n in cands:
        c = models[n]["comparison"]
        size = c["size"]["ratio"]
        sp = c["speed"]["latency_b1"]
        d = c["task_delta"]["ndcg@10"]
        cos = c["agreement"].get("cosine", {}).get("mean")
        speed_txt = (f"[+] {sp['speedup']:.2f}x faster" if sp["ci_low"] > 1 else
                     f"[-] {1 / sp['speedup']:.2f}x slower" if sp["ci_high"] < 1 else
                     f"[!] no measurable difference ({sp['speedup']:.2f}x, CI [{sp['ci_low']:.2f}, {sp['ci_high']:.2f}])")
        if d["relative"] is None or d["relative_ci_high"] is None:
            qual_txt = "[!] nDCG@10 change not measurable"
        elif d["relative_ci_high"] < 0:
            qual_txt = f"[-] nDCG@10 {d['relative']:+.2%}"
        else:
            qual_txt = f"[+] nDCG@10 {d['relative']:+.2%} (not significantly lower)"
        rows.append([n, f"[+] {size:.2f}x smaller" if size > 1 else f"[-] {1 / size:.2f}x larger", speed_txt,
                     qual_txt + (f", cosine {cos:.4f}" if cos is not None else ""), c["verdict"]["status"]])
    if rows:
        out.append(_table(rows, ["candidate", "size vs reference", "speed (batch 1)", "quality", "verdict"], fmt))

    section("RECOMMENDATIONS", "RECOMMENDATIONS")
    out.extend(recommendations(report))
    return "\n".join(out) + "\n"


def recommendations(report: dict) -> list[str]:
    lines = []
    models = report["models"]
    cands = [n for n in models if n != report["reference"]]
    for entry in report["machines"]["timing"].values():
        support = entry["int8_support"] or "unknown"
        if "no VNNI" in support or support == "none detected":
            lines.append(f"[!] INT8 support of the timing CPU ({entry['description']}): {support}. INT8 matrix "
                         "products run on plain AVX2 there; on CPUs with AVX512-VNNI or AMX the INT8/FP32 speed "
                         "ratio differs (usually larger). Measure speed on the deployment CPU.")
    for n, m in models.items():
        rep = m["benchmark"]["latency_b1"].get("repeatability")
        if rep and rep["noisy"]:
            lines.append(f"[!] {n}: timing is noisy: two back-to-back runs' medians differ by "
                         f"{rep['relative_difference']:.1%} (> {rep['tolerance']:.0%}); rerun on an idle machine.")
        busy = [role for role, load in m["load"].items() if load and load.get("busy")]
        if busy:
            lines.append(f"[!] {n}: the machine was busy while timing ({', '.join(busy)}: other processes used "
                         f"more than {report['busy_tolerance']:.0%} of the CPU); its timings are unreliable, rerun "
                         f"them on an idle machine (dvc repro -f -s {busy[0]}@{n}).")
    # a runtime that computed in another precision than the file stores (OpenVINO bf16): say it plainly
    lines.extend(f"[!] {m['runtime']['note']}." for m in models.values() if (m.get("runtime") or {}).get("note"))
    for n in cands:
        c = models[n]["comparison"]
        inv = models[n]["embedding"]["batch_invariance"]
        if inv.get("min") is not None and inv["min"] < report["batch_invariance_min"]:
            lines.append(f"[!] {n}: a text's vector depends on its batch-mates (cosine alone vs batched min "
                         f"{inv['min']:.4f}, mean {inv['mean']:.4f}); expected for dynamic INT8, which quantizes "
                         "activations per batch. Agreement numbers use identical batches for both models.")
        if not c["speed"]["latency_b1"]["measurable"]:
            lines.append(f"[!] {n}: speed difference is within noise; raise benchmark.interleave_rounds or run on an idle machine.")
        if c["verdict"]["status"] == "FAIL" and c["relation"]["related"]:
            lines.append(f"[-] {n}: do not replace the reference; try per-channel weights, excluding sensitive "
                         "layers (nodes_to_exclude) or static/QDQ quantization with calibration data.")
        elif c["verdict"]["status"] == "PASS":
            lines.append(f"[+] {n}: can replace the reference on this corpus"
                         + (f", {c['verdict']['scope']}." if c["verdict"].get("scope") else "."))
        if not c["relation"]["related"]:
            lines.append(f"[!] {n}: {c['relation']['reason']}; only task metrics are meaningful.")
        if c["verdict"].get("scope"):
            lines.append(int8_path_advice(n, models[n]["machines"]["embed"]["int8_support"], models[n].get("recipe")))
    return lines or ["[+] nothing to flag."]


def int8_path_advice(name: str, support: str | None, recipe: dict | None) -> str:
    """What changes for an INT8 candidate on the other instruction path (measured facts, README)."""
    reduce_range = bool(recipe and recipe.get("reduce_range"))
    if support is None:
        return f"[!] {name}: the CPU its embeddings came from is not recorded; rerun embed to know the INT8 path."
    if int8_path(support).startswith("AVX2"):
        return (f"[!] {name}: accuracy measured on {int8_path(support)}, where onnxruntime adds u8 x s8 products in "
                "saturating 16-bit pairs. On CPUs with VNNI or AMX the same file sums exactly and usually agrees "
                "better with the reference (the demo's per-channel INT8: cosine 0.978 without VNNI, 0.997 with). "
                + ("reduce_range is on: it avoids that saturation here but costs accuracy on VNNI CPUs."
                   if reduce_range else "For AVX2 targets, try quantize.NAME.reduce_range: true (7-bit weights "
                   "avoid the saturation); on VNNI targets it only costs accuracy."))
    if support in ("AMX-INT8", "AVX512-VNNI", "AVX-VNNI"):
        return (f"[!] {name}: accuracy measured on {int8_path(support)}, where INT8 products are summed exactly. "
                "On AVX2 CPUs without VNNI they saturate in 16-bit pairs and accuracy drops (the demo's per-channel "
                "INT8: cosine 0.997 -> 0.978): rerun this pipeline on such a CPU before shipping there; "
                "reduce_range: true helps there. "
                + ("reduce_range is on here, where it only costs accuracy (per-tensor INT8 measured: cosine "
                   "0.961 -> 0.878 on a VNNI CPU): turn it off for VNNI targets." if reduce_range else
                   "Here reduce_range would only cost accuracy."))
    return f"[!] {name}: accuracy measured on {int8_path(support)}; another INT8 instruction path may give other numbers."
