"""compare() on fabricated stage outputs: a perturbed copy, an unrelated space, NaN, a broken reference."""
import json
from dataclasses import replace

import numpy as np
import pytest

from stages.lib import metrics
from stages.lib import params as params_lib
from stages.lib.comparison import compare, task_metrics
from stages.lib.corpus import draw_sample, load_corpus
from stages.lib.documents.benchmark import Benchmark, LatencyB1, Memory, Pass, Repeatability, Throughput
from stages.lib.documents.common import Environment, Load
from stages.lib.documents.embed import BatchInvariance, EmbedManifest, Pooling, TokenMeans, Truncated
from stages.lib.documents.inspect import Inspection, Parameters, Size
from stages.lib.errors import UserError
from stages.lib.layout import Results
from stages.lib.machine import machine_id
from stages.lib.outputs import write_json
from tests import tiny
from tests.test_cases import brute_force_p

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


ORT = {"runtime": "onnxruntime", "version": "1.0", "device": "CPUExecutionProvider",
       "precision": {"requested": None, "used": "as stored in the file"}, "threads": {}}


def _manifest(name: str, corpus, texts_sha: str, dim: int, inv: float, facts: dict, runtime: dict) -> EmbedManifest:
    return EmbedManifest(
        model=name, model_file=f"{name}.onnx", model_sha256=name, tokenizer="tokenizer.json", tokenizer_sha256="t",
        corpus=str(corpus), texts_sha256=texts_sha, sample=None, count=N, documents=N, dim=dim,
        pooling=Pooling(mode="mean", output="h", source="params"), normalize=False, normalize_source="params",
        query_prompt="", max_length=32, padding_side="right", batch_size=8, batch_order="sorted",
        truncated=Truncated(queries=0, codes=0, cut_to_fixed_input_length=0),
        tokens=TokenMeans(queries_mean=10.0, codes_mean=20.0),
        batch_invariance=BatchInvariance(sample=8, min=inv, mean=inv),
        provider="CPUExecutionProvider", runtime=runtime, machine=facts)


def _inspection(name: str, count: int, quantization: str) -> Inspection:
    return Inspection(
        model=name, path_sha256=name, model_file=f"{name}.onnx",
        size=Size(graph_bytes=count * 4, external_data_bytes=0, total_bytes=count * 4, external_data_files={}),
        parameters=Parameters(count=count, initializers=1, external_initializers=0, constant_node_elements=0,
                              elements_by_dtype={"float": count}, bytes_by_dtype={"float": count * 4}),
        inputs=[], outputs=[], opset={"ai.onnx": 17}, ir_version=8, producer="test", ops={}, quantization=quantization,
        activations="none", recipe=None, vocab_size=None)


def _benchmark(name: str, samples: list[float], texts_per_s: float, facts: dict) -> Benchmark:
    one_pass = Pass(seconds=1.0, texts_per_s=texts_per_s, tokens_per_s=texts_per_s, padding_fraction=0.0)
    return Benchmark(
        model=name, machine=facts,
        environment=Environment(provider="CPUExecutionProvider", runtime=ORT, intra_op_threads=1, inter_op_threads=1,
                                memory_bytes=1, os="os", python="3", numpy="2"),
        session_create_s=0.1, memory=Memory(rss_after_load_bytes=1, peak_rss_bytes=1),
        load=Load(seconds=1.0, cores=2, own_cpu_s=1.0, other_cpu_s=0.02, other_fraction=0.01, tolerance=0.1,
                  busy=False),
        latency_b1=LatencyB1(count=len(samples), p50_ms=float(np.median(samples)), capped=False, texts=len(samples),
                             text_order_sha256="same", mean_tokens=20.0,
                             repeatability=Repeatability(median_ms_run1=1.0, median_ms_run2=1.0,
                                                         relative_difference=0.0, tolerance=0.05, noisy=False),
                             samples_ms=samples, samples_ms_repeat=samples),
        throughput=[Throughput(batch_size=8, sorted=one_pass, unsorted=one_pass, sort_speedup=1.0)], sweep=[])


def _fabricate(tmp_path, cand, ref_invariance=1.0, cand_params=1000, cand_time=0.5, quantization="none",
               machines=(VNNI, VNNI), runtimes=(ORT, ORT)):
    """Complete stage documents (manifests, inspect, benchmark) around fabricated vectors."""
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(N, DIM)).astype(np.float32)
    queries = (codes + 0.8 * rng.normal(size=codes.shape)).astype(np.float32)
    corpus = tiny.write_jsonl(tmp_path / "corpus.jsonl", tiny.corpus_rows(N))
    texts_sha = load_corpus(corpus).sha256()
    results = Results(tmp_path / "results")
    timings = {"ref": 1.0, "cand": cand_time}
    for name, (q, c), count, inv, facts, runtime in (
            ("ref", (queries, codes), 1000, ref_invariance, machines[0], runtimes[0]),
            ("cand", cand(queries, codes, rng), cand_params, 0.995, machines[1], runtimes[1])):
        folder = _write_embeddings(results.root, name, q, c)
        write_json(folder / "manifest.json", _manifest(name, corpus, texts_sha, int(c.shape[1]), inv, facts, runtime))
        write_json(results.inspect(name), _inspection(name, count, quantization if name == "cand" else "none"))
        samples = list(np.random.default_rng(1).uniform(1, 3, 200) * timings[name])
        write_json(results.benchmark(name), _benchmark(name, samples, 100 / timings[name], _timing(facts)))
    params = params_lib.parse({"corpus": str(corpus), "reference": "ref",
                               "models": {"ref": {"path": "r"}, "cand": {"path": "c"}},
                               "compare": {"bootstrap": 300}})
    return params, results


def compared(params, name: str, results: Results) -> dict:
    """The compare stage's document as it stores it."""
    return compare(params, name, results)[0].to_dict()


def test_perturbed_copy_is_related_and_close(tmp_path):
    params, results = _fabricate(tmp_path, lambda q, c, rng: (q + 0.01 * rng.normal(size=q.shape).astype(np.float32),
                                                              c + 0.01 * rng.normal(size=c.shape).astype(np.float32)))
    out = compared(params, "cand", results)
    assert out["relation"]["related"] is True
    assert out["agreement"]["cosine"]["mean"] > 0.999
    assert out["agreement"]["similarity"]["overlap@10"] > 0.9
    assert out["verdict"]["status"] == "PASS", out["verdict"]
    assert out["speed"] == {"throughput": {"8": 2.0}}  # the batch-1 speedup is the speedup stage's, not compare's


def test_unrelated_space_is_judged_on_task_metrics_only(tmp_path):
    params, results = _fabricate(tmp_path, lambda q, c, rng: (rng.normal(size=q.shape).astype(np.float32),
                                                              rng.normal(size=c.shape).astype(np.float32)),
                                 cand_params=5000)
    out = compared(params, "cand", results)
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
    out = compared(params, "cand", results)
    assert out["sanity"]["finite"] is False
    assert out["verdict"]["status"] == "FAIL"
    assert "NaN" in out["verdict"]["reasons"][0]


def test_reference_that_is_not_batch_invariant_stops_the_run(tmp_path):
    params, results = _fabricate(tmp_path, lambda q, c, rng: (q, c), ref_invariance=0.99)
    with pytest.raises(UserError, match="pooling or the attention mask is wrong"):
        compared(params, "cand", results)


def test_int8_verdict_names_the_instruction_path_it_holds_on(tmp_path):
    perturb = lambda q, c, rng: (q + 0.01 * rng.normal(size=q.shape).astype(np.float32), c)  # noqa: E731
    params, results = _fabricate(tmp_path, perturb, quantization="QOperator", machines=(AVX2, AVX2))
    out = compared(params, "cand", results)
    assert out["verdict"]["scope"] == "holds on AVX2 CPUs without VNNI"
    assert out["consistency"]["same_embed_machine"] and out["consistency"]["same_timing_machine"]
    params, results = _fabricate(tmp_path / "b", perturb, quantization="none")
    assert compared(params, "cand", results)["verdict"]["scope"] is None  # FP32 files: no INT8 kernels


def test_embeddings_from_two_machines_are_named_not_hidden(tmp_path):
    params, results = _fabricate(tmp_path, lambda q, c, rng: (q, c), quantization="QOperator", machines=(AVX2, VNNI))
    out = compared(params, "cand", results)
    assert out["machines"]["embed"]["id"] == machine_id(VNNI) != out["machines"]["embed_reference"]["id"]
    assert out["consistency"]["same_embed_machine"] is False and out["consistency"]["same_timing_machine"] is False
    assert any("embedded on different machines" in r and "AVX2 only" in r for r in out["verdict"]["reasons"])
    assert out["verdict"]["scope"] == "holds on CPUs with VNNI (AVX512-VNNI, AVX-VNNI or AMX)"  # the candidate's CPU


def test_headline_metrics_are_the_detailed_numbers_rounded(tmp_path):
    params, results = _fabricate(tmp_path, lambda q, c, rng: (q + 0.01 * rng.normal(size=q.shape).astype(np.float32),
                                                              c + 0.01 * rng.normal(size=c.shape).astype(np.float32)))
    out = compared(params, "cand", results)
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
    ref = compared(params, "ref", results)["headline"]
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
    out = compared(params, "cand", results)
    assert out["runtime"]["facts"]["precision"]["used"] == "bf16" and out["runtime"]["stored_precision"] == "f32"
    assert out["runtime"]["note"] == ("cand: the F32 file ran in bf16 under openvino 2026.4.1, its default on this "
                                      "CPU (precision auto; on another CPU it may pick another), so its verdict holds "
                                      "where openvino runs it in bf16; its vectors and speed are those of bf16 "
                                      "arithmetic.")
    assert out["verdict"]["scope"] is None  # the scope names INT8 instruction paths only
    assert compared(params, "ref", results)["runtime"]["note"] is None  # onnxruntime runs the file's own types
    params, results = _fabricate(tmp_path / "f32", perturb, runtimes=(ort, _ov("f32", "f32")))
    out = compared(params, "cand", results)
    assert out["runtime"]["note"] is None
    params, results = _fabricate(tmp_path / "f16", perturb, runtimes=(ort, _ov("f16", "bf16")))
    assert "ran in bf16 under openvino 2026.4.1, precision f16;" in compared(params, "cand", results)["runtime"]["note"]


def test_paired_and_beir_layout_of_the_same_data_compare_identically(tmp_path):
    """The whole compare (task, deltas, agreement by language) does not depend on the layout."""
    params, results = _fabricate(tmp_path, lambda q, c, rng: (q + 0.05 * rng.normal(size=q.shape).astype(np.float32),
                                                              c + 0.05 * rng.normal(size=c.shape).astype(np.float32)))
    paired = compared(params, "cand", results)
    beir = tiny.paired_as_beir(tmp_path / "beir", tiny.corpus_rows(N))
    for name in ("ref", "cand"):
        manifest = results.embed(name) / "manifest.json"
        m = json.loads(manifest.read_text())
        m["texts_sha256"] = load_corpus(beir).sha256()
        manifest.write_text(json.dumps(m))
    as_beir = compared(replace(params, corpus=str(beir)), "cand", results)
    for key in ("task", "task_delta", "task_by_group", "agreement", "verdict"):
        assert as_beir[key] == paired[key], key
    without_ids = lambda cases: [{k: v for k, v in c.items() if not k.endswith("_id")}  # noqa: E731
                                 for c in cases["losses"] + cases["gains"]]
    assert without_ids(as_beir["cases"]) == without_ids(paired["cases"]) and paired["cases"]["losses"]
    assert as_beir["cases"]["losses"][0]["query_id"] == "q-" + paired["cases"]["losses"][0]["query_id"]
    assert set(paired["agreement"]["cosine"]["by_lang"]) == {"python", "javascript"}


# ---------------------------------------------------------------- where the candidate loses (issue 19)

def _brute_ranks(queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Rank of each query's own code (the paired layout's one relevant document) over every code,
    by cosine, ties keeping corpus order: a full stable sort per row, not compare's counting."""
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    c = codes / np.linalg.norm(codes, axis=1, keepdims=True)
    order = np.argsort(-(q @ c.T), axis=1, kind="stable")
    return np.array([int(np.flatnonzero(order[i] == i)[0]) + 1 for i in range(len(q))])


LOSERS = (7, 22, 41)


def _losing_candidate(chosen: dict):
    """A candidate equal to the reference except chosen queries: each LOSER's vector moved onto
    another code (its own falls far), and two queries the reference ranks below 1 moved onto
    their own code (they rise to rank 1). `chosen` receives the gainers and both models' ranks."""
    def make(q, c, rng):
        ref_rank = _brute_ranks(q, c)
        gainers = [i for i in np.flatnonzero(ref_rank > 1) if i not in LOSERS][:2]
        cand = q.copy()
        for i in LOSERS:
            cand[i] = c[(i + 1) % len(c)] - 0.5 * c[i]
        for i in gainers:
            cand[i] = c[i]
        chosen.update(gainers=gainers, reference=ref_rank, candidate=_brute_ranks(cand, c), first=np.argmax(
            (cand / np.linalg.norm(cand, axis=1, keepdims=True)) @ (c / np.linalg.norm(c, axis=1, keepdims=True)).T,
            axis=1))
        return cand, c
    return make


def _enumerated_p(cand: np.ndarray, ref: np.ndarray) -> float:
    """test_cases.brute_force_p over the queries whose scores differ: a zero difference adds 0 under
    either sign, so it changes no pattern's sum (test_cases checks that with zeros enumerated);
    2^60 patterns of the whole corpus would not fit in memory."""
    changed = cand != ref
    return brute_force_p(cand[changed], ref[changed])


def _ndcg_single(ranks: np.ndarray) -> np.ndarray:
    """nDCG@10 of a query with one relevant document at `rank`: 1 / log2(rank + 1) inside the top 10."""
    return np.where(ranks <= 10, 1 / np.log2(ranks + 1.0), 0.0)


def test_compare_names_exactly_the_queries_the_candidate_loses_with_their_ranks(tmp_path):
    chosen: dict = {}
    params, results = _fabricate(tmp_path, _losing_candidate(chosen))
    out, rows = compare(params, "cand", results)
    ref_rank, cand_rank, gainers = chosen["reference"], chosen["candidate"], chosen["gainers"]
    assert len(gainers) == 2 and (cand_rank[list(LOSERS)] > ref_rank[list(LOSERS)] + 5).all()
    assert (cand_rank[gainers] == 1).all()
    rr = 1 / cand_rank - 1 / ref_rank

    assert [c.query for c in out.cases.losses] == sorted(LOSERS, key=lambda i: (rr[i], i))
    assert [c.query for c in out.cases.gains] == sorted(gainers, key=lambda i: (-rr[i], i))
    assert vars(out.cases.counts) == {"lost": 3, "gained": 2, "same": N - 5, "no_relevant": 0}
    corpus = load_corpus(params.corpus)
    for c in out.cases.losses + out.cases.gains:
        i = c.query
        assert (c.document, c.reference_rank, c.candidate_rank) == (i, ref_rank[i], cand_rank[i])
        assert c.rr_change == pytest.approx(rr[i], abs=1e-15) and c.candidate_first == chosen["first"][i]
        assert (c.query_id, c.document_id, c.lang) == (corpus.ids[i], corpus.doc_ids[i], corpus.langs[i])
        assert c.query_text == corpus.queries[i]  # short texts stay whole
        assert (c.document_text, c.candidate_first_text) == (corpus.codes[i], corpus.codes[c.candidate_first])
        assert c.hits == {"reference_hit@10": bool(ref_rank[i] <= 10), "candidate_hit@10": bool(cand_rank[i] <= 10)}
    # every query's row, untouched ones included, has the brute-force ranks
    np.testing.assert_array_equal([r["reference_rank"] for r in rows], ref_rank)
    np.testing.assert_array_equal([r["candidate_rank"] for r in rows], cand_rank)
    assert [r["query_text"] for r in rows] == corpus.queries

    # nDCG@10 by group equals a direct computation from the brute-force ranks
    ref_ndcg, cand_ndcg = _ndcg_single(ref_rank), _ndcg_single(cand_rank)
    assert out.task["ndcg@10"] == pytest.approx(cand_ndcg.mean(), abs=1e-12)
    lengths = np.load(results.embed("ref") / "query_lengths.npy")
    langs = np.array(corpus.langs)
    groups = {"lang": {g: langs == g for g in ("javascript", "python")},
              "length": {"0-32": lengths <= 32, "33-64": (lengths >= 33) & (lengths <= 64)}}
    by_group = out.task_by_group
    assert (by_group.metric, by_group.min_queries) == ("ndcg@10", 10)
    for key, sel_by_name in groups.items():
        got = getattr(by_group, key)
        assert list(got) == list(sel_by_name)
        for g, sel in sel_by_name.items():
            d = got[g]
            assert d.queries == sel.sum() >= 10 and d.measurable
            assert d.reference == pytest.approx(ref_ndcg[sel].mean(), abs=1e-12)
            assert d.candidate == pytest.approx(cand_ndcg[sel].mean(), abs=1e-12)
            direct = metrics.paired_delta(cand_ndcg[sel], ref_ndcg[sel], 300, 0.95, 0)
            assert d.relative_ci_low == pytest.approx(direct["relative_ci_low"], abs=1e-12)
            assert d.relative_ci_high == pytest.approx(direct["relative_ci_high"], abs=1e-12)
            assert d.randomization_p == _enumerated_p(cand_ndcg[sel], ref_ndcg[sel])

    # the randomization p of the whole corpus: 5 queries changed, 2^5 sign patterns enumerated
    assert out.task_delta["ndcg@10"].randomization_p == _enumerated_p(cand_ndcg, ref_ndcg)
    assert out.task_delta["ndcg@10"].randomization_p >= 2 / 2 ** 5


def test_the_reference_gets_its_own_rows_and_no_cases(tmp_path):
    chosen: dict = {}
    params, results = _fabricate(tmp_path, _losing_candidate(chosen))
    out, rows = compare(params, "ref", results)
    assert out.cases is None and out.task_by_group is None
    np.testing.assert_array_equal([r["reference_rank"] for r in rows], chosen["reference"])
    assert all(r["candidate_rank"] == r["reference_rank"] and r["rr_change"] == 0 for r in rows)
    assert [r["reference_hit@10"] for r in rows] == [bool(x) for x in chosen["reference"] <= 10]


def test_compare_reads_the_sample_its_embeddings_hold_and_refuses_another(tmp_path):
    """corpus_sample: compare judges the sampled rows by the sampled qrels, records the sample, and
    refuses embeddings of the whole corpus or of another sample (as it refuses another corpus)."""
    params, results = _fabricate(tmp_path, lambda q, c, rng: (q + 0.3 * rng.normal(size=q.shape).astype(np.float32),
                                                              c + 0.3 * rng.normal(size=c.shape).astype(np.float32)))
    whole = compared(params, "cand", results)
    sampled = replace(params, corpus_sample=20)
    with pytest.raises(UserError, match=r"embed/ref: embeddings are of the whole corpus, params corpus_sample=20 asks "
                                        r"for a sample of 20 of 60 queries \(20 of 60 documents\); rerun embed@ref"):
        compare(sampled, "cand", results)
    sample = draw_sample(params.corpus, 20)
    rows = [int(i[1:]) for i in load_corpus(params.corpus, sample=sample).query_ids]  # ids t000..t059: row numbers
    vectors = {}
    for name in ("ref", "cand"):  # what embed writes for the sample: its rows, and its facts in the manifest
        folder = results.embed(name)
        for kind in ("queries", "codes", "query_lengths", "code_lengths"):
            vectors[name, kind] = np.load(folder / f"{kind}.npy")[rows]
            np.save(folder / f"{kind}.npy", vectors[name, kind])
        manifest = json.loads((folder / "manifest.json").read_text())
        (folder / "manifest.json").write_text(json.dumps({**manifest, "sample": sample.facts}))
    doc, case_rows = compare(sampled, "cand", results)
    out = doc.to_dict()
    assert whole["sample"] is None and out["sample"] == sample.facts
    texts = load_corpus(params.corpus, sample=sample)  # the case rows carry the sampled queries' own texts
    assert [(r["query_id"], r["query_text"]) for r in case_rows] == list(zip(texts.query_ids, texts.queries))
    for c in out["cases"]["losses"] + out["cases"]["gains"]:  # and the sampled documents', by sample index
        assert c["document_text"] == texts.codes[c["document"]] and c["document_id"] == texts.doc_ids[c["document"]]
    assert out["cases"]["losses"]
    assert out["agreement"]["cosine"]["count"] == 40  # 20 queries and their 20 codes
    alone = task_metrics({"queries": vectors["cand", "queries"], "codes": vectors["cand", "codes"]}, 10)[0]
    assert out["task"] == pytest.approx(alone) and out["task"] != pytest.approx(whole["task"])  # query i -> code i
    with pytest.raises(UserError, match=r"embeddings are of a sample of 20 of 60 queries \(20 of 60 documents\), "
                                        r"params corpus_sample=0 asks for the whole corpus"):
        compare(params, "cand", results)
    with pytest.raises(UserError, match=r"asks for a sample of 21 of 60 queries"):
        compare(replace(params, corpus_sample=21), "cand", results)
