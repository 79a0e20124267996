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
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.quantization.qdq_loss_debug import compute_signal_to_quantization_noice_ratio

from stages.lib import i18n
from stages.lib import params as params_lib
from stages.lib.corpus import sample_texts
from stages.lib.diagnosis import diagnose
from stages.lib.documents.diagnose import LayerCounts
from stages.lib.documents.report import DiagnosisEndedSummary, DiagnosisSummary
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
    (tmp_path / "q").mkdir()
    quantize_dynamic(str(tmp_path / "ref" / "model.onnx"), str(tmp_path / "q" / "model.onnx"),
                     weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
    (tmp_path / "q" / "tokenizer.json").write_bytes((tmp_path / "ref" / "tokenizer.json").read_bytes())
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
    out = json.loads((tmp_path / "results" / "diagnose" / "cand.json").read_text())
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
