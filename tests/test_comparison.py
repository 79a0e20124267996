"""compare() on fabricated stage outputs: a perturbed copy, an unrelated space, NaN, a broken reference."""
import json
from dataclasses import replace

import numpy as np
import pytest

from stages.lib import params as params_lib
from stages.lib.comparison import compare
from stages.lib.corpus import load_corpus
from stages.lib.errors import UserError
from stages.lib.layout import Results
from stages.lib.machine import machine_id
from tests import tiny

N, DIM = 60, 16


def _write_embeddings(results, name, queries, codes):
    folder = results / "embed" / name
    folder.mkdir(parents=True)
    lengths = np.arange(len(codes)) % 40 + 5
    for fname, arr in (("queries", queries), ("codes", codes), ("query_lengths", lengths), ("code_lengths", lengths)):
        np.save(folder / f"{fname}.npy", arr)
    return folder


VNNI = {"arch": "x86_64", "flags": ["avx2", "avx512_vnni"], "int8_support": "AVX512-VNNI", "onnxruntime": "1.0"}
AVX2 = {"arch": "x86_64", "flags": ["avx2"], "int8_support": "AVX2 only (no VNNI)", "onnxruntime": "1.0"}


def _timing(facts: dict) -> dict:
    return {"cpu": "x", "cores_logical": 2, "cores_physical": 2, **facts}


def _fabricate(tmp_path, cand, ref_invariance=1.0, cand_params=1000, cand_time=0.5, quantization="none",
               machines=(VNNI, VNNI), runtimes=(None, None)):
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(N, DIM)).astype(np.float32)
    queries = (codes + 0.8 * rng.normal(size=codes.shape)).astype(np.float32)
    corpus = tiny.write_jsonl(tmp_path / "corpus.jsonl", tiny.corpus_rows(N))
    texts_sha = load_corpus(corpus).sha256()
    results = tmp_path / "results"
    timings = {"ref": 1.0, "cand": cand_time}
    for name, (q, c), count, inv, facts, runtime in (
            ("ref", (queries, codes), 1000, ref_invariance, machines[0], runtimes[0]),
            ("cand", cand(queries, codes, rng), cand_params, 0.995, machines[1], runtimes[1])):
        folder = _write_embeddings(results, name, q, c)
        manifest = {"texts_sha256": texts_sha, "dim": int(c.shape[1]), "query_prompt": "", "tokenizer_sha256": "t",
                    "batch_size": 8, "max_length": 32, "pooling": {"mode": "mean", "output": "h", "source": "params"},
                    "normalize": False, "padding_side": "right", "truncated": {}, "model_sha256": name,
                    "batch_invariance": {"sample": 8, "min": inv, "mean": inv}, "machine": facts, "runtime": runtime}
        (folder / "manifest.json").write_text(json.dumps(manifest))
        (results / "inspect").mkdir(exist_ok=True)
        (results / "inspect" / f"{name}.json").write_text(json.dumps(
            {"parameters": {"count": count, "bytes_by_dtype": {"float": count * 4}}, "size": {"total_bytes": count * 4},
             "quantization": quantization if name == "cand" else "none"}))
        samples = list(np.random.default_rng(1).uniform(1, 3, 200) * timings[name])
        (results / "benchmark").mkdir(exist_ok=True)
        (results / "benchmark" / f"{name}.json").write_text(json.dumps({
            "latency_b1": {"samples_ms": samples, "samples_ms_repeat": samples, "text_order_sha256": "same",
                           "p50_ms": float(np.median(samples))},
            "throughput": [{"batch_size": 8, "sorted": {"texts_per_s": 100 / timings[name]}}],
            "machine": _timing(facts), "load": {"other_fraction": 0.01, "busy": False}}))
    params = params_lib.parse({"corpus": str(corpus), "reference": "ref",
                               "models": {"ref": {"path": "r"}, "cand": {"path": "c"}},
                               "compare": {"bootstrap": 300}})
    return params, Results(results)


def test_perturbed_copy_is_related_and_close(tmp_path):
    params, results = _fabricate(tmp_path, lambda q, c, rng: (q + 0.01 * rng.normal(size=q.shape).astype(np.float32),
                                                              c + 0.01 * rng.normal(size=c.shape).astype(np.float32)))
    out = compare(params, "cand", results)
    assert out["relation"]["related"] is True
    assert out["agreement"]["cosine"]["mean"] > 0.999
    assert out["agreement"]["similarity"]["overlap@10"] > 0.9
    assert out["verdict"]["status"] == "PASS", out["verdict"]
    assert out["speed"] == {"throughput": {"8": 2.0}}  # the batch-1 speedup is the speedup stage's, not compare's


def test_unrelated_space_is_judged_on_task_metrics_only(tmp_path):
    params, results = _fabricate(tmp_path, lambda q, c, rng: (rng.normal(size=q.shape).astype(np.float32),
                                                              rng.normal(size=c.shape).astype(np.float32)),
                                 cand_params=5000)
    out = compare(params, "cand", results)
    assert out["relation"]["related"] is False
    assert abs(out["agreement"]["cosine"]["mean"]) < 0.2
    assert any("agreement metrics ignored" in r for r in out["verdict"]["reasons"])
    assert out["verdict"]["status"] == "FAIL"  # random vectors lose nearly all retrieval quality


def test_nan_candidate_fails_instead_of_crashing(tmp_path):
    def nan_copy(q, c, rng):
        q = q.copy()
        q[3] = np.nan
        return q, c
    params, results = _fabricate(tmp_path, nan_copy)
    out = compare(params, "cand", results)
    assert out["sanity"]["finite"] is False
    assert out["verdict"]["status"] == "FAIL"
    assert "NaN" in out["verdict"]["reasons"][0]


def test_reference_that_is_not_batch_invariant_stops_the_run(tmp_path):
    params, results = _fabricate(tmp_path, lambda q, c, rng: (q, c), ref_invariance=0.99)
    with pytest.raises(UserError, match="pooling or the attention mask is wrong"):
        compare(params, "cand", results)


def test_int8_verdict_names_the_instruction_path_it_holds_on(tmp_path):
    perturb = lambda q, c, rng: (q + 0.01 * rng.normal(size=q.shape).astype(np.float32), c)  # noqa: E731
    params, results = _fabricate(tmp_path, perturb, quantization="QOperator", machines=(AVX2, AVX2))
    out = compare(params, "cand", results)
    assert out["verdict"]["scope"] == "holds on AVX2 CPUs without VNNI"
    assert out["consistency"]["same_embed_machine"] and out["consistency"]["same_timing_machine"]
    params, results = _fabricate(tmp_path / "b", perturb, quantization="none")
    assert compare(params, "cand", results)["verdict"]["scope"] is None  # FP32 files: no INT8 kernels


def test_embeddings_from_two_machines_are_named_not_hidden(tmp_path):
    params, results = _fabricate(tmp_path, lambda q, c, rng: (q, c), quantization="QOperator", machines=(AVX2, VNNI))
    out = compare(params, "cand", results)
    assert out["machines"]["embed"]["id"] == machine_id(VNNI) != out["machines"]["embed_reference"]["id"]
    assert out["consistency"]["same_embed_machine"] is False and out["consistency"]["same_timing_machine"] is False
    assert any("embedded on different machines" in r and "AVX2 only" in r for r in out["verdict"]["reasons"])
    assert out["verdict"]["scope"] == "holds on CPUs with VNNI (AVX512-VNNI, AVX-VNNI or AMX)"  # the candidate's CPU


def test_headline_metrics_are_the_detailed_numbers_rounded(tmp_path):
    params, results = _fabricate(tmp_path, lambda q, c, rng: (q + 0.01 * rng.normal(size=q.shape).astype(np.float32),
                                                              c + 0.01 * rng.normal(size=c.shape).astype(np.float32)))
    out = compare(params, "cand", results)
    h = out["headline"]
    assert h["ndcg@10"] == round(out["task"]["ndcg@10"], 4)
    assert h["cosine_mean"] == round(out["agreement"]["cosine"]["mean"], 4)
    assert h["overlap@10"] == round(out["agreement"]["similarity"]["overlap@10"], 4)
    assert h["ndcg_change"] == round(out["task_delta"]["ndcg@10"]["relative"], 4)
    assert h["verdict"] == {"PASS": 1, "WARN": 0, "FAIL": -1}[out["verdict"]["status"]]
    assert "speedup" not in h  # the speedup stage's own metrics file (results/speed.json) has it
    assert h["size_mb"] == 0.0 and h["parameters"] == 1000 and h["texts_per_s@8"] == 200.0
    samples = json.loads(results.benchmark("cand").read_text())["latency_b1"]["samples_ms"]
    assert h["p50_ms"] == round(float(np.median(samples)), 3)
    assert h["machine"] == machine_id(_timing(VNNI))
    assert all(isinstance(v, (int, float, str)) for v in h.values())  # flat: every value a DVC metric
    ref = compare(params, "ref", results)["headline"]
    assert not {"verdict", "cosine_mean", "speedup"} & set(ref)
    assert ref["ndcg@10"] == round(out["task_delta"]["ndcg@10"]["reference"], 4)


def _ov(requested, used):
    return {"runtime": "openvino", "version": "2026.4.1", "device": "CPU",
            "precision": {"requested": requested, "used": used},
            "threads": {"intra_op": 2, "inter_op": "not applicable"}}


def test_a_file_run_in_another_precision_is_said_plainly(tmp_path):
    perturb = lambda q, c, rng: (q + 0.001 * rng.normal(size=q.shape).astype(np.float32), c)  # noqa: E731
    ort = {"runtime": "onnxruntime", "version": "1.0", "device": "CPUExecutionProvider",
           "precision": {"requested": None, "used": "as stored in the file"}, "threads": {}}
    params, results = _fabricate(tmp_path, perturb, runtimes=(ort, _ov("auto", "bf16")))
    out = compare(params, "cand", results)
    assert out["runtime"]["facts"]["precision"]["used"] == "bf16" and out["runtime"]["stored_precision"] == "f32"
    assert out["runtime"]["note"] == ("cand: the F32 file ran in bf16 under openvino 2026.4.1, its default on this "
                                      "CPU (precision auto; on another CPU it may pick another), so its verdict holds "
                                      "where openvino runs it in bf16; its vectors and speed are those of bf16 "
                                      "arithmetic.")
    assert out["verdict"]["scope"] is None  # the scope names INT8 instruction paths only
    assert compare(params, "ref", results)["runtime"]["note"] is None  # onnxruntime runs the file's own types
    params, results = _fabricate(tmp_path / "f32", perturb, runtimes=(ort, _ov("f32", "f32")))
    out = compare(params, "cand", results)
    assert out["runtime"]["note"] is None
    params, results = _fabricate(tmp_path / "f16", perturb, runtimes=(ort, _ov("f16", "bf16")))
    assert "ran in bf16 under openvino 2026.4.1, precision f16;" in compare(params, "cand", results)["runtime"]["note"]


def test_paired_and_beir_layout_of_the_same_data_compare_identically(tmp_path):
    """The whole compare (task, deltas, agreement by language) does not depend on the layout."""
    params, results = _fabricate(tmp_path, lambda q, c, rng: (q + 0.05 * rng.normal(size=q.shape).astype(np.float32),
                                                              c + 0.05 * rng.normal(size=c.shape).astype(np.float32)))
    paired = compare(params, "cand", results)
    beir = tiny.paired_as_beir(tmp_path / "beir", tiny.corpus_rows(N))
    for name in ("ref", "cand"):
        manifest = results.embed(name) / "manifest.json"
        m = json.loads(manifest.read_text())
        m["texts_sha256"] = load_corpus(beir).sha256()
        manifest.write_text(json.dumps(m))
    as_beir = compare(replace(params, corpus=str(beir)), "cand", results)
    for key in ("task", "task_delta", "agreement", "verdict"):
        assert as_beir[key] == paired[key], key
    assert set(paired["agreement"]["cosine"]["by_lang"]) == {"python", "javascript"}
