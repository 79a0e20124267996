"""Assembling the report: every model's stage outputs gathered into one document (results/report.json).

Nothing here decides or renders: the ranking comes from advice.py, the text from sections.py.
"""
from __future__ import annotations

from ..i18n import msg
from ..layout import RESULTS, Results
from ..machine_words import label as machine_label
from ..outputs import read_json
from ..status import Status
from .advice import ranking

SCHEMA_VERSION = 4  # 4: the words inside messages are messages too: any language renders from report.json


def build_report(params, results: Results = RESULTS) -> dict:
    """Gather every model's inspect, benchmark, speedup and compare output into one document (schema in README)."""
    models, control = {}, None
    for name in params.models:
        ins = read_json(results.inspect(name))
        bench = read_json(results.benchmark(name))
        comp = read_json(results.compare(name))
        speed = read_json(results.speedup(name))
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
            "machines": {**comp["machines"], "speedup": machine_label(speed.get("machine"))},
            "load": {**comp["load"], "speedup": speed.get("load")},
            "task": comp["task"],
            "activations": ins.get("activations"),
            "recipe": (ins.get("recipe") or {}).get("recipe"),
            "calibration": (ins.get("recipe") or {}).get("calibration"),
            "runtime": comp.get("runtime"),
        }
        if comp["is_reference"]:
            control = {**{k: speed[k] for k in SPEED_KEYS}, "states": speed["states"], "seconds": speed["seconds"]}
        else:
            models[name]["comparison"] = {k: comp[k] for k in ("verdict", "relation", "consistency", "agreement",
                                                               "task_delta", "speed", "size", "snippets")}
            models[name]["comparison"]["speed"] = {"latency_b1": {k: speed[k] for k in SPEED_KEYS},
                                                   **comp["speed"]}
            models[name]["diagnosis"] = diagnosis_summary(read_json(results.diagnose(name)))
    here = read_json(results.machine("timing"))
    order = ranking(models, params.reference)
    best_passes = bool(order) and models[order[0]]["comparison"]["verdict"]["status"] == Status.PASS
    return {"ranking": order, "recommended": order[0] if best_passes else None, "schema_version": SCHEMA_VERSION,
            "reference": params.reference, "corpus": params.corpus,
            "confidence": params.compare.confidence, "batch_invariance_min": params.compare.batch_invariance_min,
            "busy_tolerance": params.benchmark.busy_tolerance, "language": params.report.language,
            "batch_size": params.embed.batch_size,
            "machines": machine_summary(models, machine_label(here)), "speed_control": control, "models": models}


# what the report keeps of each results/speedup/NAME.json (the per-block and per-process detail stays there)
SPEED_KEYS = ("speedup", "ci_low", "ci_high", "measurable", "method", "texts", "passes", "by_state")


MACHINE_ROLES = {"embed": ("embed",), "timing": ("benchmark", "speedup")}


def machine_summary(models: dict, here: dict) -> dict:
    """Which machines the numbers come from, per kind of number, and a warning per model wherever
    they are not all from one machine (a report must never lend one machine's numbers to another)."""
    out = {"current": here, "warning_codes": []}
    for kind, roles in MACHINE_ROLES.items():
        seen: dict[str | None, dict] = {}  # machine id (None: recorded without facts) -> its entry
        for name, m in models.items():
            for role in roles:
                label = m["machines"][role]
                entry = seen.setdefault(label["id"], {**{k: label[k] for k in ("description", "description_code",
                                                                                 "int8_support")}, "used_by": []})
                entry["used_by"].append(f"{name} {role}")
        tags = {mid: f"{kind[0].upper()}{i}" for i, mid in enumerate(seen, 1)}
        out[kind] = {tags[mid]: {"id": mid, **entry} for mid, entry in seen.items()}
        if len(seen) > 1:
            for name, m in models.items():
                used = [msg("role.on", role=msg(f"role.{role}"), tag=tags[m["machines"][role]["id"]]) for role in roles]
                out["warning_codes"].append(msg("warn.mixed", name=name, kind=msg(f"kind.{kind}"), used=used,
                                                n=len(seen), tags=", ".join(tags.values())))
    timing_ids = {v["id"] for v in out["timing"].values()}
    if here["id"] not in timing_ids:
        out["warning_codes"].append(msg("warn.elsewhere", machine=here["description_code"]))
    out["warnings"] = [code.text() for code in out["warning_codes"]]
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
                                   "texts_per_s": row[order]["texts_per_s"],
                                   "tokens_per_s": row[order]["tokens_per_s"]})
    return {"latency.json": latency, "throughput.json": throughput}


DIAGNOSIS_KEYS = ("status", "reason", "reason_code", "texts", "jump_factor", "layers", "first_jump", "top",
                  "nodes_to_exclude", "outputs")


def diagnosis_summary(result: dict) -> dict:
    """What the report keeps of results/diagnose/NAME.json: everything but the per-layer list."""
    return {k: result[k] for k in DIAGNOSIS_KEYS if k in result}
