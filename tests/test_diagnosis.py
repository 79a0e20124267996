"""The diagnose stage: tiny layered models whose every tensor numpy recomputes, one layer damaged on
purpose, a real onnxruntime dynamic-INT8 copy, the skip rules, the command line and the report."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml
from onnxruntime.quantization.qdq_loss_debug import compute_signal_to_quantization_noice_ratio

from stages.lib import i18n
from stages.lib import params as params_lib
from stages.lib.corpus import sample_texts
from stages.lib.diagnosis import diagnose
from stages.lib.documents.diagnose import LayerCounts
from stages.lib.documents.report import DiagnosisEndedSummary, DiagnosisSummary
from stages.lib.embedding import open_embedder
from stages.lib.errors import UserError
from stages.lib.machine import detect
from stages.lib.outputs import write_json
from stages.lib.report import assemble, sections
from stages.lib.tokenizing import load_tokenizer
from tests import tiny
from tests.test_reporting import english_left, fixture_report

ROOT = Path(__file__).resolve().parents[1]
TINY_RESULTS = ROOT / "tests" / "fixtures" / "tiny-results"  # real stage outputs of the tiny pipeline
DAMAGED = "layer.1/MatMul"


def _params(tmp: Path, models: dict, **diagnose) -> params_lib.Params:
    tiny.write_jsonl(tmp / "corpus.jsonl", tiny.corpus_rows(30))
    raw = {"corpus": str(tmp / "corpus.jsonl"), "reference": "ref",
           "models": {n: {"path": str(p)} for n, p in models.items()},
           "embed": {"pooling": "mean", "max_length": 16}, "diagnose": {"texts": 6, **diagnose}}
    return params_lib.parse(raw)


def _damaged_mats() -> list[np.ndarray]:
    """The reference's layer matrices with only layer.1's disturbed (by 5% of its norm)."""
    _, mats = tiny.layer_weights(len(tiny.vocab()), 16, 3)
    noise = np.random.default_rng(7).normal(size=mats[1].shape).astype(np.float32)
    mats[1] = mats[1] + 0.05 * noise * np.linalg.norm(mats[1]) / np.linalg.norm(noise)
    return mats


def _damaged(tmp: Path) -> Path:
    tiny.build_layers(tmp / "cand", _damaged_mats())
    return tmp / "cand"


@pytest.fixture
def damaged(tmp_path):
    tiny.build_layers(tmp_path / "ref", external_data=True)  # weights outside the graph file
    params = _params(tmp_path, {"ref": tmp_path / "ref", "cand": _damaged(tmp_path)})
    return params, diagnose(params, "cand", "FAIL", {"cpu": "test"})


def test_the_damaged_layer_is_named_and_the_others_are_untouched(damaged):
    result = damaged[1].to_dict()  # as the stage stores it
    assert result["status"] == "done" and result["layers"] == {"weighted": 4, "matched": 4, "compared": 4}
    errors = {r["node"]: r["rel_error"] for r in result["tensors"]}
    assert list(errors) == ["embed/Gather", "layer.0/MatMul", "layer.1/MatMul", "layer.2/MatMul"]  # graph order
    assert errors["embed/Gather"] == 0 and errors["layer.0/MatMul"] == 0  # upstream of the damage: exact
    assert 0.01 < errors[DAMAGED] < 0.2
    assert errors["layer.2/MatMul"] == pytest.approx(errors[DAMAGED], rel=1e-3)  # orthogonal: carried, no jump
    assert result["first_jump"]["node"] == DAMAGED and result["first_jump"]["max_before"] == 0
    assert [r["node"] for r in result["top"]] == [DAMAGED]
    assert result["nodes_to_exclude"] == [DAMAGED]
    assert result["outputs"][0]["tensor"] == "last_hidden_state"


def test_errors_equal_numpy_and_onnxruntime_sqnr(damaged):
    params, result = damaged[0], damaged[1].to_dict()
    emb, mats = tiny.layer_weights(len(tiny.vocab()), 16, 3)
    bad = _damaged_mats()
    texts = sample_texts(params.corpus, "documents", 6)
    ids = load_tokenizer(Path(params.models["ref"].path) / "tokenizer.json", 16).encode(texts)
    for layer, row in enumerate(result["tensors"][1:]):
        ref, cand = [], []
        for seq in ids:
            x = emb[np.asarray(seq)].astype(np.float64)
            r, c = x.copy(), x.copy()
            for i in range(layer + 1):
                r, c = r @ mats[i], c @ bad[i]
            ref.append(r.ravel())
            cand.append(c.ravel())
        rel = np.linalg.norm(np.concatenate(cand) - np.concatenate(ref)) / np.linalg.norm(np.concatenate(ref))
        assert row["rel_error"] == pytest.approx(rel, abs=1e-5)
        if layer >= 1:
            assert row["sqnr_db"] == pytest.approx(compute_signal_to_quantization_noice_ratio(ref, cand), abs=1e-3)
            assert row["sqnr_db"] == pytest.approx(-20 * math.log10(rel), abs=1e-3)
        else:
            assert row["sqnr_db"] is None  # identical: no noise to measure
    assert result["texts"] == len(ids) == 6


def test_a_real_dynamic_int8_copy_is_matched_by_tensor_name(tmp_path):
    tiny.build_layers(tmp_path / "ref")
    tiny.dynamic_int8(tmp_path / "ref", tmp_path / "q")
    graph = onnx.load(str(tmp_path / "q" / "model.onnx"))
    writers = {o: n.op_type for n in graph.graph.node for o in n.output}
    assert "MatMul" not in writers.values() and writers["layer.0/out"] != "MatMul"  # replaced, name kept
    result = diagnose(_params(tmp_path, {"ref": tmp_path / "ref", "q": tmp_path / "q"}), "q", "WARN").to_dict()
    assert result["layers"] == {"weighted": 4, "matched": 4, "compared": 4}
    errors = {r["node"]: r["rel_error"] for r in result["tensors"]}
    assert errors["embed/Gather"] == 0  # the table was not quantized
    assert all(0 < errors[f"layer.{i}/MatMul"] < 0.1 for i in range(3))
    assert result["first_jump"]["node"] == "layer.0/MatMul"


def test_reference_and_pass_are_skipped_without_opening_a_model(tmp_path):
    params = _params(tmp_path, {"ref": tmp_path / "missing", "cand": tmp_path / "missing-too"})
    for name, verdict, key in (("ref", None, "diag.skip_reference"), ("cand", "PASS", "diag.skip_pass")):
        result = diagnose(params, name, verdict)
        assert result.status == "skipped" and result.reason_code.key == key and "tensors" not in result.to_dict()
    with pytest.raises(UserError, match="missing"):
        diagnose(params, "cand", "FAIL")  # a non-PASS candidate does open it


def test_a_graph_that_is_not_a_copy_is_not_comparable(tmp_path):
    tiny.build_layers(tmp_path / "ref")
    tiny.build_layers(tmp_path / "other", prefix="other/")
    result = diagnose(_params(tmp_path, {"ref": tmp_path / "ref", "other": tmp_path / "other"}), "other", "FAIL")
    assert result.status == "not_comparable" and result.reason_code.key == "diag.no_match"
    assert "4 weighted layers" in result.reason


def test_diagnose_params_are_validated(tmp_path):
    tiny.build_layers(tmp_path / "ref")
    with pytest.raises(UserError, match="'diagnose.jump_factor' must be more than 1"):
        _params(tmp_path, {"ref": tmp_path / "ref"}, jump_factor=1.0)
    with pytest.raises(UserError, match="unknown key 'diagnose.jump'"):
        _params(tmp_path, {"ref": tmp_path / "ref"}, jump=2.0)


def _stage(cwd: Path, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("EMBED_COMPARE_MACHINE", None)
    return subprocess.run([sys.executable, "-m", "stages.diagnose", *args], cwd=cwd, env=env,
                          capture_output=True, text=True)


def test_the_stage_command_line(tmp_path):
    tiny.build_layers(tmp_path / "models" / "ref")
    _damaged(tmp_path / "models")
    params = _params(tmp_path, {"ref": "models/ref", "cand": "models/cand"})
    raw = yaml.safe_load(json.dumps({"corpus": "corpus.jsonl", "reference": "ref",
                                     "models": {"ref": {"path": "models/ref"}, "cand": {"path": "models/cand"}},
                                     "embed": {"pooling": "mean"}, "diagnose": {"texts": 4, "top": 1}}))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    assert params.reference == "ref"
    write_json(tmp_path / "results" / "machine" / "embed.json", detect()["embed"])
    bad = _stage(tmp_path, "cand")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "results/compare/cand.json" in bad.stderr
    compared = json.loads((TINY_RESULTS / "compare" / "cand-a.json").read_text())  # a real compare document
    compared["verdict"]["status"] = "FAIL"
    write_json(tmp_path / "results" / "compare" / "cand.json", compared)
    ok = _stage(tmp_path, "cand")
    assert ok.returncode == 0, ok.stderr
    assert f"error first jumps at {DAMAGED}" in ok.stdout
    assert ok.stdout.startswith("cand: expected peak memory about ")  # said before the models are opened
    out = json.loads((tmp_path / "results" / "diagnose" / "cand.json").read_text())
    assert f"peak memory {out['memory']['peak_rss_bytes'] / 2**20:,.0f} MiB" in ok.stdout
    assert out["nodes_to_exclude"] == [DAMAGED] and out["texts"] == 4 and out["machine"] == detect()["embed"]
    reference = json.loads((TINY_RESULTS / "compare" / "tiny.json").read_text())
    write_json(tmp_path / "results" / "compare" / "ref.json", reference)
    assert _stage(tmp_path, "ref").returncode == 0
    assert json.loads((tmp_path / "results" / "diagnose" / "ref.json").read_text())["status"] == "skipped"


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_report_shows_top_layers_and_the_exclude_list_within_widths(damaged, lang):
    _, result = damaged
    report = fixture_report()
    long_node = "/model/model.0/auto_model/encoder/layer.11/attention/output/dense/MatMul"
    result.top[0].node = long_node
    result.nodes_to_exclude = [long_node]
    report.models["int8-pt"].diagnosis = assemble.diagnosis_summary(result)
    report.models["int8-pc"].diagnosis = _ended("skipped", "diag.skip_pass")
    text, md = sections.render(report, "text", lang), sections.render(report, "md", lang)
    assert max(map(len, text.splitlines())) <= 100 and max(map(len, md.splitlines())) <= 120
    verdict = text[text.index("[VERDICT]"):text.index("[SUMMARY]")]
    row = next(line for line in verdict.splitlines() if "layer.11/attention/output/dense/MatMul  MatMul" in line)
    assert row.startswith("...") and f"{result.top[0].rel_error:.4f}" in row  # the node's tail, shortened
    assert f"{result.top[0].sqnr_db:.1f}" in row
    assert verdict.count("int8-pt: ") == 2 and verdict.count("int8-pc: ") == 1  # a skipped PASS adds nothing
    recs = text[text.index("[RECOMMENDATIONS]"):].replace("\n    ", " ")
    assert f'nodes_to_exclude: ["{long_node}"]' in recs
    if lang == "ru":
        assert "где появляется ошибка" in verdict and "отн. ошибка" in verdict


def test_report_says_why_there_is_no_table_in_both_languages():
    report = fixture_report()
    cand = report.models["int8-pt"]
    cand.diagnosis = _ended("not_comparable", "diag.tokenizers_differ")
    en, ru = (sections.render(report, "text", lang) for lang in ("en", "ru"))
    assert "int8-pt: layers not diagnosed: the two tokenizers give different token ids" in en.replace("\n    ", " ")
    assert "int8-pt: слои не диагностированы: токенизаторы дают разные id" in ru.replace("\n    ", " ")
    cand.diagnosis = DiagnosisSummary(status="done", texts=8, jump_factor=2.0, first_jump=None, top=[],
                                      nodes_to_exclude=[], outputs=[],
                                      layers=LayerCounts(weighted=21, matched=21, compared=21))
    text = sections.render(report, "text", "en").replace("\n    ", " ")
    assert "int8-pt: no weighted layer's relative error rises more than 2x over the largest before it" in text
    assert "nodes_to_exclude:" not in text  # nothing to exclude is not recommended


def test_russian_diagnosis_leaves_no_english_prose(damaged):
    _, result = damaged
    report = fixture_report()
    report.models["int8-pt"].diagnosis = assemble.diagnosis_summary(result)
    assert not english_left(report)


def _ended(status: str, key: str) -> DiagnosisEndedSummary:
    reason = i18n.msg(key)
    return DiagnosisEndedSummary(status=status, reason=reason.text(), reason_code=reason)


# ---------------------------------------------------------------- memory: groups, widths, the stated need

def _numbers(result: dict) -> dict:
    return {k: result[k] for k in ("tensors", "outputs", "top", "first_jump", "nodes_to_exclude", "layers")}


@pytest.mark.parametrize("cand", ["damaged", "dynamic-int8"])
def test_layers_exposed_in_groups_give_the_same_numbers_bit_for_bit(tmp_path, cand):
    tiny.build_layers(tmp_path / "ref", external_data=True)
    path = _damaged(tmp_path) if cand == "damaged" else tiny.dynamic_int8(tmp_path / "ref", tmp_path / "q")
    params = _params(tmp_path, {"ref": tmp_path / "ref", "cand": path})
    whole = diagnose(params, "cand", "FAIL").to_dict()
    apart = diagnose(params, "cand", "FAIL", group_bytes=1).to_dict()  # every tensor in sessions of its own
    assert whole["memory"]["groups"] == 1 and apart["memory"]["groups"] == 4  # a layer each; the output with the last
    assert _numbers(apart) == _numbers(whole)  # floats compared exactly
    assert whole["tensors"][-1]["rel_error"] > 0


def test_the_memory_record_counts_weights_and_exposed_tensors_as_onnxruntime_makes_them(damaged):
    params, result = damaged[0], damaged[1].to_dict()
    mem = result["memory"]
    files = {n: sum(p.stat().st_size for p in Path(params.models[n].path).glob("model.onnx*")) for n in ("ref", "cand")}
    assert mem["weights_bytes"] == files
    texts = sample_texts(params.corpus, "documents", 6)
    ids = load_tokenizer(Path(params.models["ref"].path) / "tokenizer.json", 16).encode(texts)
    longest = max(ids, key=len)
    assert mem["longest_text_tokens"] == len(longest)
    names = [r["tensor"] for r in result["tensors"]] + ["last_hidden_state"]
    emb = open_embedder(params, "ref", expose=names)
    made = emb.runner.run(names, emb.feed([longest])[0])
    assert mem["exposed_bytes"] == mem["group_bytes"] == sum(a.nbytes for a in made)  # float32, batch 1
    largest = max(a.nbytes for a in made)
    assert mem["expected_peak_bytes"] == (mem["before_models_bytes"] + 2 * sum(files.values())
                                          + 2 * (mem["group_bytes"] + 2 * largest) + 4 * largest)
    assert mem["peak_rss_bytes"] > 20 << 20
    assert mem["memory_options"] == {"enable_cpu_mem_arena": True, "enable_mem_pattern": True}


def test_the_expected_need_is_said_before_any_model_is_opened(tmp_path, monkeypatch):
    from stages.lib import diagnosis

    tiny.build_layers(tmp_path / "ref")
    params = _params(tmp_path, {"ref": tmp_path / "ref", "cand": _damaged(tmp_path)})
    events = []
    real = diagnosis.open_embedder
    monkeypatch.setattr(diagnosis, "open_embedder", lambda *a, **k: events.append("open") or real(*a, **k))
    result = diagnose(params, "cand", "FAIL", say=events.append, group_bytes=1).to_dict()
    assert len(events) == 1 + 2 * 4 and events[1:] == ["open"] * 8  # said first, then 4 groups x 2 models
    said = events[0]
    mem = result["memory"]
    assert said.startswith(f"cand: expected peak memory about {mem['expected_peak_bytes'] / 2**20:,.0f} MiB")
    assert f"({mem['longest_text_tokens']} tokens) in 4 group(s)" in said


def test_groups_keep_graph_order_within_the_budget():
    from stages.lib.diagnosis import memory_plan

    names = ["a", "b", "c", "d", "e"]
    shapes = {"a": [None, 10], "b": [None, 10], "c": [None, 30], "d": [None, 5], "e": [7]}  # e: pooled, per text
    sizes = {"a": 80, "b": 80, "c": 240, "d": 40, "e": 28}  # 4 bytes x elements at 2 tokens
    plan = memory_plan(names, shapes, tokens=2, weights={"r": 10, "c": 10}, outputs=["e"], group_bytes=200)
    # e, a graph output, is made in every run (28 bytes each time) and compared with the last group;
    # c alone is over the budget: a group of its own
    assert plan["group_names"] == [["a", "b"], ["c"], ["d", "e"]]
    assert plan["exposed_bytes"] == sum(sizes.values()) and plan["group_bytes"] == 240 + 28
    assert plan["expected_peak_bytes"] == plan["before_models_bytes"] + 2 * 20 + 2 * (268 + 2 * 240) + 4 * 240
    assert memory_plan(names, shapes, 2, {"r": 10, "c": 10}, ["e"])["groups"] == 1  # below the floor: one group


def test_weighted_layer_widths_are_what_onnxruntime_outputs(tmp_path):
    """Elements per token of MatMul, Gemm (transB either way), Gather and com.microsoft Attention
    (plain and with qkv_hidden_sizes), read from the weights' shapes, equal the outputs' sizes."""
    from onnx import TensorProto, helper, numpy_helper

    from stages.lib.diagnosis import weighted_layers

    rng = np.random.default_rng(0)
    w = {name: numpy_helper.from_array(rng.normal(size=shape).astype(np.float32), name) for name, shape in (
        ("table", (11, 8)), ("w_mm", (8, 7)), ("w_gemm_t", (6, 8)), ("w_gemm", (8, 4)),
        ("w_att", (8, 24)), ("b_att", (24,)), ("w_att_qkv", (8, 20)), ("b_att_qkv", (20,)))}
    shape2d = numpy_helper.from_array(np.array([-1, 8], dtype=np.int64), "shape2d")
    nodes = [helper.make_node("Gather", ["table", "input_ids"], ["x"], name="gather"),
             helper.make_node("MatMul", ["x", "w_mm"], ["mm"], name="mm"),
             helper.make_node("Reshape", ["x", "shape2d"], ["x2"], name="flat"),
             helper.make_node("Gemm", ["x2", "w_gemm_t"], ["gemm_t"], name="gemm_t", transB=1),
             helper.make_node("Gemm", ["x2", "w_gemm"], ["gemm"], name="gemm"),
             helper.make_node("Attention", ["x", "w_att", "b_att"], ["att"], name="att", domain="com.microsoft",
                              num_heads=2),
             helper.make_node("Attention", ["x", "w_att_qkv", "b_att_qkv"], ["att_qkv"], name="att_qkv",
                              domain="com.microsoft", num_heads=2, qkv_hidden_sizes=[8, 8, 4])]
    outs = ["x", "mm", "gemm_t", "gemm", "att", "att_qkv"]
    graph = helper.make_graph(nodes, "widths",
                              [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, "seq"])],
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs],
                              list(w.values()) + [shape2d])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18),
                                                    helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    layers = weighted_layers(model, ["MatMul", "Gemm", "Gather", "Attention"])
    session = ort_session(model)
    tokens = 5
    made = dict(zip(outs, session.run(outs, {"input_ids": np.arange(tokens, dtype=np.int64)[None]})))
    assert {layer.tensor: layer.width for layer in layers} == {n: a.size // tokens for n, a in made.items()}
    assert {layer.tensor: layer.width for layer in layers} == {"x": 8, "mm": 7, "gemm_t": 6, "gemm": 4, "att": 8,
                                                              "att_qkv": 4}


def ort_session(model):
    import onnxruntime as ort

    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def test_exposing_sessions_run_unoptimized_and_leave_no_copy_behind(tmp_path, monkeypatch):
    """Every session of a group runs the graph as stored, also one exposing only the graph's own
    outputs (those are returned anyway, so nothing is added); the extended copy of the graph file
    is gone once onnxruntime has loaded it."""
    import tempfile

    import onnxruntime as ort

    from stages.lib.runtimes import open_runner

    tiny.build_layers(tmp_path / "ref", external_data=True)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    off = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    for expose in (["layer.0/out", "layer.1/out"], ["last_hidden_state"], []):
        runner = open_runner(tmp_path / "ref", expose=expose)
        assert runner.session.get_session_options().graph_optimization_level == off
        others = [n for n in expose if n != "last_hidden_state"]
        assert [o.name for o in runner.outputs] == ["last_hidden_state"] + others
    assert open_runner(tmp_path / "ref").session.get_session_options().graph_optimization_level != off
    assert list((tmp_path / "tmp").iterdir()) == []
