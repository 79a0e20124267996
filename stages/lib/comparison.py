"""The compare stage's work: one model against the reference, from files earlier stages wrote."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .corpus import corpus_sample, load_corpus, sample_label
from .errors import UserError
from .layout import RESULTS, Results
from .i18n import msg, render
from .machine import label as machine_label
from .metrics import (cosine_agreement, linear_cka, norms, paired_delta, ratio_interval, retrieval_per_query,
                      row_cosine, scan_rankings, similarity_agreement)
from .outputs import read_json
from .verdict import Reason, decide


def load_embeddings(folder: Path) -> dict:
    folder = Path(folder)
    if not (folder / "manifest.json").is_file():
        raise UserError(f"{folder}: no embeddings (run: dvc repro embed@{folder.name})")
    out = {"manifest": read_json(folder / "manifest.json")}
    for path in sorted(folder.glob("*.npy")):
        out[path.stem] = np.load(path, allow_pickle=False, mmap_mode="r")  # read in blocks, not held whole
    return out


def task_metrics(emb: dict, k: int, qrels: dict | None = None, rankings: np.ndarray | None = None) -> tuple[dict, dict]:
    """Retrieval quality of one model over every document (distractors included), judged by the
    corpus qrels; without them, query i's one relevant document is code i (the paired layout).
    `rankings`: each query's top max(k, 10) documents, if already scanned (similarity_agreement)."""
    if len(emb["codes"]) < 10:
        raise UserError(f"corpus has {len(emb['codes'])} documents: @10 retrieval metrics need at least 10")
    if rankings is None:
        rankings = scan_rankings(emb["queries"], emb["codes"], max(k, 10))
    per_query = retrieval_per_query(rankings, np.arange(len(emb["queries"])) if qrels is None else qrels)
    return {name: float(v.mean()) for name, v in per_query.items()}, per_query


def sanity(emb: dict) -> dict:
    finite = bool(np.isfinite(emb["queries"]).all() and np.isfinite(emb["codes"]).all())
    return {"finite": finite, "dim": int(emb["codes"].shape[1]), "norms_codes": norms(emb["codes"]),
            "norms_queries": norms(emb["queries"]), "batch_invariance": emb["manifest"]["batch_invariance"]}


def snippet_view(ref: dict, cand: dict, snippets_path: str | None) -> list[dict]:
    """The quick view on the hand-written snippets: per-snippet agreement and top-1 hit per model."""
    if not snippets_path or "snippet_codes" not in ref or "snippet_codes" not in cand:
        return []
    snippets = load_corpus(snippets_path)
    same_dim = ref["snippet_codes"].shape[1] == cand["snippet_codes"].shape[1]
    rows = []
    ref_top = scan_rankings(ref["snippet_queries"], ref["snippet_codes"], 1)[:, 0]
    cand_top = scan_rankings(cand["snippet_queries"], cand["snippet_codes"], 1)[:, 0]
    cos_code = row_cosine(ref["snippet_codes"], cand["snippet_codes"]) if same_dim else [None] * len(snippets)
    cos_query = row_cosine(ref["snippet_queries"], cand["snippet_queries"]) if same_dim else [None] * len(snippets)
    for i, sid in enumerate(snippets.ids):
        rows.append({"id": sid, "lang": snippets.langs[i], "cosine_code": cos_code[i], "cosine_query": cos_query[i],
                     "reference_top1": bool(ref_top[i] == i), "candidate_top1": bool(cand_top[i] == i)})
    return rows


def _same_texts(a: dict, b: dict) -> bool:
    """Did sample j of both timing runs use the same token ids? (Only the shorter run's length matters.)"""
    return a.get("text_order_sha256") is not None and a.get("text_order_sha256") == b.get("text_order_sha256")


def agreement_metrics(ref: dict, emb: dict, langs: list[str], s) -> tuple[dict, np.ndarray, np.ndarray]:
    """Per-text cosine needs one space; CKA and the similarity-matrix metrics work across dimensions.
    `langs`: one per text, the queries' then the documents' (their counts may differ). Also returns
    both models' rankings (reference, candidate) from the same pass, for the retrieval metrics."""
    texts_ref = np.vstack([ref["queries"], ref["codes"]])
    texts_cand = np.vstack([emb["queries"], emb["codes"]])
    out = {"cka_linear": linear_cka(texts_ref, texts_cand)}
    if texts_ref.shape[1] == texts_cand.shape[1]:
        lengths = np.concatenate([emb["query_lengths"], emb["code_lengths"]])
        out["cosine"] = cosine_agreement(texts_ref, texts_cand, langs, lengths)
        out["cosine_codes_mean"] = float(row_cosine(ref["codes"], emb["codes"]).mean())
        out["cosine_queries_mean"] = float(row_cosine(ref["queries"], emb["queries"]).mean())
    out["similarity"], ref_rank, cand_rank = similarity_agreement(
        ref["queries"], ref["codes"], emb["queries"], emb["codes"], s.k, s.spearman_max_pairs, s.seed)
    return out, ref_rank, cand_rank


def speedup_across_runs(lat_ref: dict, lat_cand: dict, s, paired: bool) -> dict:
    """Speedup from the benchmark stage's runs (separate processes): a cross-check of the
    interleaved speedup stage, from every pairing of the two back-to-back runs of each model.

    One pairing's interval only covers text-to-text variation; drift between runs (another
    process, a frequency change) would make it too narrow. The reported interval spans all four
    pairings' intervals, so run-to-run drift is inside it.
    """
    runs_ref = [lat_ref["samples_ms"]] + ([lat_ref["samples_ms_repeat"]] if lat_ref.get("samples_ms_repeat") else [])
    runs_cand = [lat_cand["samples_ms"]] + ([lat_cand["samples_ms_repeat"]] if lat_cand.get("samples_ms_repeat") else [])
    parts = [ratio_interval(r, c, s.bootstrap, s.confidence, s.seed, paired) for r in runs_ref for c in runs_cand]
    return {"speedup": float(np.exp(np.mean([np.log(p["speedup"]) for p in parts]))),
            "ci_low": min(p["ci_low"] for p in parts), "ci_high": max(p["ci_high"] for p in parts),
            "measurable": bool(min(p["ci_low"] for p in parts) > 1.0 or max(p["ci_high"] for p in parts) < 1.0),
            "method": parts[0]["method"], "runs_paired": len(parts),
            "pairings": [{k: p[k] for k in ("speedup", "ci_low", "ci_high")} for p in parts]}


INT8_KERNEL_FORMATS = ("QOperator", "QDQ", "4-bit")  # run on integer kernels chosen by instruction set
VERDICT_NUMBER = {"PASS": 1, "WARN": 0, "FAIL": -1}  # for `dvc metrics diff`, where only numbers diff well


def verdict_scope(quantization: str, embed_machine: dict | None) -> dict | None:
    """For INT8 kernels, the instruction path the verdict holds on (another path computes other
    numbers), as a message code; None for formats that do not run on INT8 kernels."""
    if quantization not in INT8_KERNEL_FORMATS:
        return None
    return msg("scope.holds_on", support=embed_machine["int8_support"] if embed_machine else "unrecorded")


FLOAT_DTYPES = {"double": "f64", "float": "f32", "float16": "f16", "bfloat16": "bf16"}  # inspect's names


def runtime_summary(name: str, facts: dict | None, bytes_by_dtype: dict) -> dict:
    """How the model ran (its embed manifest's runner facts), and one plain sentence when the runtime
    computed in another float type than the file stores: OpenVINO's default on a CPU with bf16 runs
    an FP32 file in bfloat16 without saying so."""
    floats = {FLOAT_DTYPES[d]: n for d, n in bytes_by_dtype.items() if d in FLOAT_DTYPES}
    stored = max(floats, key=floats.get) if floats else None
    used = facts["precision"]["used"] if facts else None
    code = None
    if stored and used in FLOAT_DTYPES.values() and used != stored:
        requested = facts["precision"]["requested"]
        code = msg("rec.precision_auto" if requested == "auto" else "rec.precision_set", name=name,
                   stored=stored.upper(), used=used, runtime=facts["runtime"], version=facts["version"],
                   requested=requested)
    note = render(code, "en") if code else None
    return {"facts": facts, "stored_precision": stored, "note": note, "note_code": code}


def compare(params, name: str, results: Results = RESULTS) -> dict:
    ref_name = params.reference
    s = params.compare
    sample = corpus_sample(params)  # a quick look's subset, as embed drew it; None: the whole corpus
    corpus = load_corpus(params.corpus, with_texts=False, sample=sample)  # labels: the vectors are on disk
    ref = load_embeddings(results.embed(ref_name))
    emb = ref if name == ref_name else load_embeddings(results.embed(name))
    texts_sha256 = corpus.sha256()  # reads every corpus file: once
    facts = sample.facts if sample else None
    for model, e in ((ref_name, ref), (name, emb)):
        if e["manifest"]["texts_sha256"] != texts_sha256:
            raise UserError(f"{results.embed(model)}: embeddings are of another corpus than {corpus.path}; rerun embed@{model}")
        if e["manifest"].get("sample") != facts:
            raise UserError(f"{results.embed(model)}: embeddings are of {sample_label(e['manifest'].get('sample'))}, "
                            f"params corpus_sample={params.corpus_sample} asks for {sample_label(facts)}; "
                            f"rerun embed@{model}")
    inv = ref["manifest"]["batch_invariance"]
    if inv.get("min") is not None and inv["min"] < s.batch_invariance_min:
        raise UserError(f"reference {ref_name}: a text embedded alone and in a padded batch agree only to cosine "
                        f"{inv['min']:.6f} (< {s.batch_invariance_min}): pooling or the attention mask is wrong")
    agreement, ref_rank, cand_rank = (None, None, None) if name == ref_name else \
        agreement_metrics(ref, emb, corpus.query_langs + corpus.doc_langs, s)  # one scan of both score matrices
    task, per_query = task_metrics(emb, s.k, corpus.qrels, cand_rank)
    manifest = emb["manifest"]
    speedup = read_json(results.speedup(name))
    bench_cand, bench_ref = read_json(results.benchmark(name)), read_json(results.benchmark(ref_name))
    inspect_cand, inspect_ref = read_json(results.inspect(name)), read_json(results.inspect(ref_name))
    out = {"model": name, "reference": ref_name, "is_reference": name == ref_name, "sample": facts,
           "embedding": {k: manifest[k] for k in ("dim", "pooling", "normalize", "query_prompt", "max_length",
                                                  "batch_size", "padding_side", "truncated", "batch_invariance",
                                                  "model_sha256")},
           "machines": {"embed": machine_label(manifest.get("machine")),
                        "embed_reference": machine_label(ref["manifest"].get("machine")),
                        "benchmark": machine_label(bench_cand.get("machine")),
                        "benchmark_reference": machine_label(bench_ref.get("machine")),
                        "speedup": machine_label(speedup.get("machine"))},
           "load": {"benchmark": bench_cand.get("load"), "speedup": speedup.get("load")},
           "sanity": sanity(emb), "task": task,
           "runtime": runtime_summary(name, manifest.get("runtime"), inspect_cand["parameters"]["bytes_by_dtype"])}
    if name == ref_name:
        out["speed_control"] = {k: speedup[k] for k in ("speedup", "ci_low", "ci_high", "measurable", "method")}
    else:
        out.update(_against_reference(params, out, ref, emb, corpus, per_query, inspect_ref, inspect_cand,
                                      bench_ref, bench_cand, speedup, agreement, ref_rank))
    out["headline"] = headline_metrics(out, inspect_cand, bench_cand, speedup, params.embed.batch_size)
    return out


def _against_reference(params, out: dict, ref: dict, emb: dict, corpus, per_query: dict, inspect_ref: dict,
                       inspect_cand: dict, bench_ref: dict, bench_cand: dict, speedup: dict, agreement: dict,
                       ref_rank: np.ndarray) -> dict:
    """Deltas, agreement, relation, speed, size and the verdict of a candidate."""
    s = params.compare
    machines, finite = out["machines"], out["sanity"]["finite"]
    out = {}
    _, ref_per_query = task_metrics(ref, s.k, corpus.qrels, ref_rank)
    out["task_delta"] = {m: paired_delta(per_query[m], ref_per_query[m], s.bootstrap, s.confidence, s.seed)
                         for m in per_query}
    mr, mc = ref["manifest"], emb["manifest"]
    same_dim = mr["dim"] == mc["dim"]
    consistency = {
        "same_dim": same_dim,
        "same_prompt": mr["query_prompt"] == mc["query_prompt"],
        "same_tokenizer": mr["tokenizer_sha256"] == mc["tokenizer_sha256"],
        "same_batches": mr["batch_size"] == mc["batch_size"] and mr["tokenizer_sha256"] == mc["tokenizer_sha256"]
        and mr["max_length"] == mc["max_length"],
        "same_pooling": mr["pooling"]["mode"] == mc["pooling"]["mode"] and mr["normalize"] == mc["normalize"],
        "same_embed_machine": machines["embed"]["id"] == machines["embed_reference"]["id"],
        "same_timing_machine": machines["benchmark"]["id"] == machines["benchmark_reference"]["id"]
        == machines["speedup"]["id"],
    }
    out["consistency"] = consistency
    params_ratio = inspect_cand["parameters"]["count"] / max(inspect_ref["parameters"]["count"], 1)
    out["agreement"] = agreement
    cos_mean = agreement.get("cosine", {}).get("mean")
    related = same_dim and ((cos_mean or 0) >= s.related_min_cosine or abs(params_ratio - 1) < 0.01)
    out["relation"] = {"related": related, "parameter_ratio": params_ratio,
                       "reason": "same dimension and agreeing vectors or parameter count" if related else
                       ("different embedding dimension" if not same_dim else
                        "low agreement and a different parameter count: not the same network")}
    lat_ref, lat_cand = bench_ref["latency_b1"], bench_cand["latency_b1"]
    out["speed"] = {
        "latency_b1": {k: speedup[k] for k in ("speedup", "ci_low", "ci_high", "measurable", "method", "texts")},
        "latency_b1_separate_runs": speedup_across_runs(lat_ref, lat_cand, s, paired=_same_texts(lat_ref, lat_cand)),
        "throughput": {str(r["batch_size"]): c["sorted"]["texts_per_s"] / r["sorted"]["texts_per_s"]
                       for r, c in zip(bench_ref["throughput"], bench_cand["throughput"])
                       if r["batch_size"] == c["batch_size"]},
    }
    out["size"] = {"reference_bytes": inspect_ref["size"]["total_bytes"],
                   "candidate_bytes": inspect_cand["size"]["total_bytes"],
                   "ratio": inspect_ref["size"]["total_bytes"] / inspect_cand["size"]["total_bytes"],
                   "quantization": inspect_cand["quantization"]}
    out["snippets"] = snippet_view(ref, emb, params.snippets)
    cos = agreement.get("cosine", {})
    ndcg = out["task_delta"]["ndcg@10"]
    flat = {"finite": finite, "cosine_mean": cos.get("mean"), "cosine_p1": cos.get("p1"),
            "spearman": agreement["similarity"]["spearman"], "overlap_at_10": agreement["similarity"]["overlap@10"],
            "ndcg_rel_ci_low": ndcg["relative_ci_low"], "ndcg_rel_ci_high": ndcg["relative_ci_high"]}
    status, reasons = decide(flat, params.verdict, related)
    for key, reason in (("same_prompt", "reason.prompt_differ"), ("same_batches", "reason.batches_differ")):
        if not consistency[key]:
            reasons.append(Reason(reason))
            status = "WARN" if status == "PASS" else status
    if not consistency["same_embed_machine"]:
        reasons.append(Reason("reason.machines_differ", ref=machines["embed_reference"]["description"],
                              cand=machines["embed"]["description"]))
    scope = verdict_scope(inspect_cand["quantization"], mc.get("machine"))
    out["verdict"] = {"status": status, "reasons": [str(r) for r in reasons],
                      "reason_codes": [r.code for r in reasons],
                      "scope": render(scope, "en") if scope else None, "scope_code": scope}
    return out


def _rounded(x, digits: int):
    return None if x is None else round(float(x), digits)


def headline_metrics(result: dict, inspect: dict, bench: dict, speedup: dict, batch_size: int) -> dict:
    """The few flat numbers per model DVC shows (`metrics diff`, `exp show`); detail stays in compare/.

    Rounded to what the measurement supports, so a diff is readable and shows real changes; the
    deciding numbers first, because `exp show` keeps the leftmost columns when the terminal is narrow."""
    tput = {t["batch_size"]: t for t in bench["throughput"]}
    main_bs = batch_size if batch_size in tput else max(tput)
    out = {}
    if not result["is_reference"]:
        cos, sim = result["agreement"].get("cosine", {}), result["agreement"]["similarity"]
        out.update({"verdict": VERDICT_NUMBER[result["verdict"]["status"]],
                    "cosine_mean": _rounded(cos.get("mean"), 4),
                    "ndcg_change": _rounded(result["task_delta"]["ndcg@10"]["relative"], 4),
                    "speedup": _rounded(speedup["speedup"], 3), "speedup_low": _rounded(speedup["ci_low"], 3),
                    "speedup_high": _rounded(speedup["ci_high"], 3),  # the reference's A/A control stays in compare/
                    "cosine_p1": _rounded(cos.get("p1"), 4), "spearman": _rounded(sim["spearman"], 4),
                    "overlap@10": _rounded(sim["overlap@10"], 4)})
    out.update({**{m: _rounded(result["task"][m], 4) for m in ("ndcg@10", "mrr@10", "recall@10")},
                "p50_ms": _rounded(bench["latency_b1"]["p50_ms"], 3),
                f"texts_per_s@{main_bs}": _rounded(tput[main_bs]["sorted"]["texts_per_s"], 1),
                "size_mb": _rounded(inspect["size"]["total_bytes"] / 1e6, 2), "parameters": inspect["parameters"]["count"],
                "machine": result["machines"]["benchmark"]["id"]})
    return out
