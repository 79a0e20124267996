"""Every quantization recipe on a tiny model: the output runs, agrees with the source, and inspect
names the format the recipe made; static calibration never uses evaluation texts."""
import json

import numpy as np
import pytest

from stages.lib import params as params_lib
from stages.lib.calibration import calibration_feeds
from stages.lib.embedding import Embedder
from stages.lib.errors import UserError
from stages.lib.inspection import inspect_model
from stages.lib.modelprep import make_candidate
from stages.lib.runtimes import open_runner
from stages.lib.tokenizing import find_tokenizer, load_tokenizer
from tests import tiny

TEXTS = [r["code"] for r in tiny.corpus_rows(24)]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # params paths are repo-relative, as in a real repo


def _params(tmp_path, **recipe) -> params_lib.Params:
    if not (tmp_path / "models" / "src").is_dir():
        tiny.build_model(tmp_path / "models" / "src", dim=32, seed=3)
        tiny.write_jsonl(tmp_path / "corpus.jsonl", tiny.corpus_rows(24))
        evaluation = {r["query"] for r in tiny.corpus_rows(24)} | set(TEXTS)
        calib = [r for r in tiny.corpus_rows(80, seed=9)
                 if r["query"] not in evaluation and r["code"] not in evaluation]
        tiny.write_jsonl(tmp_path / "calibration.jsonl", [{**r, "id": f"c{i}"} for i, r in enumerate(calib)])
    return params_lib.parse({"corpus": "corpus.jsonl", "calibration": "calibration.jsonl",
                             "reference": "src", "embed": {"pooling": "mean", "max_length": 16},
                             "models": {"src": {"path": "models/src"}, "cand": {"path": "models/cand"}},
                             "quantize": {"cand": {"source": "models/src", **recipe}}})


def _vectors(path) -> np.ndarray:
    runner = open_runner(path)
    tok = load_tokenizer(find_tokenizer(runner.model_file, None), 16)
    return Embedder(runner, tok, "mean", False).embed_texts(TEXTS, 8)


def _make(tmp_path, **recipe):
    p = _params(tmp_path, **recipe)
    spec = p.quantize["cand"]
    make_candidate(spec, "models/cand", calibration_feeds(p, "cand") if spec.method == "static" else None)
    ref, cand = _vectors("models/src"), _vectors("models/cand")
    cos = np.sum(ref * cand, 1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(cand, axis=1)
    return inspect_model("models/cand", "cand").to_dict(), cos


@pytest.mark.parametrize("recipe,fmt,activations,min_cos", [
    ({"method": "dynamic", "per_channel": True, "op_types": ["MatMul"]}, "QOperator", "dynamic", 0.99),
    ({"method": "dynamic", "op_types": ["MatMul", "Gather"]}, "QOperator", "dynamic", 0.98),
    ({"method": "static", "per_channel": True, "calibration": "Percentile", "calibration_texts": 20},
     "QDQ", "static", 0.95),
    ({"method": "static", "calibration": "Entropy", "calibration_texts": 20, "preprocess": True}, "QDQ", "static", 0.9),
    ({"method": "fp16"}, "FP16", "none", 0.9999),
    ({"method": "int4", "block_size": 16}, "4-bit", "none", 0.95),
    ({"method": "int4", "block_size": 16, "accuracy_level": 4}, "4-bit", "dynamic", 0.95),
])
def test_recipe_runs_and_inspect_names_its_format(tmp_path, recipe, fmt, activations, min_cos):
    info, cos = _make(tmp_path, **recipe)
    assert info["quantization"] == fmt and info["activations"] == activations
    assert cos.min() >= min_cos, cos.min()  # the candidate still computes the same embedding, roughly
    written = json.loads((tmp_path / "models" / "cand" / "QUANTIZE.json").read_text())
    assert written["recipe"]["method"] == recipe["method"] and info["recipe"] == written
    assert (tmp_path / "models" / "cand" / "tokenizer.json").is_file()


def test_excluded_nodes_stay_float(tmp_path):
    info, _ = _make(tmp_path, method="dynamic", op_types=["MatMul"], nodes_to_exclude=["dense"])
    assert info["quantization"] == "none" and info["activations"] == "none"  # the only MatMul was left alone


def test_static_calibration_is_disjoint_from_evaluation_and_says_so(tmp_path):
    info, _ = _make(tmp_path, method="static", calibration_texts=10)
    calib = info["recipe"]["calibration"]
    assert calib["texts"] == 10 and calib["overlap_with_evaluation"] == 0
    assert calib["checked_against"] == ["corpus.jsonl"]
    rows = [json.loads(x) for x in (tmp_path / "calibration.jsonl").read_text().splitlines()]
    rows[3]["code"] = "  " + TEXTS[5].replace(" ", "  ")  # an evaluation text, whitespace aside
    tiny.write_jsonl(tmp_path / "calibration.jsonl", rows)
    expected = r"calibration.jsonl: 1 calibration text\(s\) are also evaluation texts \(first: c3\)"
    with pytest.raises(UserError, match=expected):
        calibration_feeds(_params(tmp_path, method="static"), "cand")


def test_recipe_keys_belong_to_their_method(tmp_path):
    with pytest.raises(UserError, match=r"'quantize.cand.block_size' does not apply to method dynamic"):
        _params(tmp_path, method="dynamic", block_size=32)
    with pytest.raises(UserError, match=r"'quantize.cand.calibration' must be one of MinMax, Entropy, Percentile"):
        _params(tmp_path, method="static", calibration="KL")
    with pytest.raises(UserError, match=r"'quantize.cand.method' must be one of dynamic, static, fp16, int4"):
        _params(tmp_path, method="gptq")
