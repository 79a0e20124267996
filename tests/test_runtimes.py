"""runtimes.py: onnxruntime and OpenVINO behind one runner interface, on tiny onnx.helper models.
Agreement against onnxruntime and numpy, precision read back from the compiled model, the one-line
errors; timing across runtimes is checked by structure, never by wall clock."""

import numpy as np
import pytest

from stages.lib.benchmarking import run_benchmark
from stages.lib.embedding import Embedder, batch_invariance
from stages.lib.errors import UserError
from stages.lib.runtimes import OnnxRuntimeRunner, OpenVinoRunner, open_runner
from stages.lib.tokenizing import find_tokenizer, load_tokenizer
from tests import tiny
from tests.test_benchmark_run import SETTINGS

ov = pytest.importorskip("openvino")
TEXTS = [r["code"] for r in tiny.corpus_rows(24)]


def _embedder(folder, runtime="onnxruntime", precision=None, pooling="mean"):
    runner = open_runner(folder, runtime, precision)
    return Embedder(runner, load_tokenizer(find_tokenizer(runner.model_file, None), 32), pooling, False)


@pytest.mark.parametrize("pooled", [None, "masked_mean"])
def test_openvino_f32_agrees_with_onnxruntime_and_numpy(tmp_path, pooled):
    tiny.build_model(tmp_path / "m", pooled=pooled, external_data=True)  # external data read directly
    pooling = "auto" if pooled else "mean"
    ref, cand = _embedder(tmp_path / "m", pooling=pooling), _embedder(tmp_path / "m", "openvino", "f32", pooling)
    assert isinstance(ref.runner, OnnxRuntimeRunner) and isinstance(cand.runner, OpenVinoRunner)
    assert cand.pooling == ref.pooling  # same output chosen from the same metadata
    a, b = ref.embed_texts(TEXTS, 5), cand.embed_texts(TEXTS, 5)
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)
    ids = ref.tokenizer.encode(TEXTS[:1])[0]
    np.testing.assert_allclose(b[0], tiny.expected_tokens(ids).mean(axis=0), rtol=1e-5, atol=1e-5)
    assert batch_invariance(cand, ref.tokenizer.encode(TEXTS), 6)["min"] > 0.99999


def test_openvino_metadata_looks_like_onnxruntimes(tmp_path):
    tiny.build_model(tmp_path / "m", pooled="masked_mean")
    a, b = open_runner(tmp_path / "m"), open_runner(tmp_path / "m", "openvino")
    assert [(i.name, i.type, len(i.shape)) for i in a.inputs] == [(i.name, i.type, len(i.shape)) for i in b.inputs]
    assert [o.name for o in b.outputs] == ["last_hidden_state", "sentence_embedding"]  # graph names, not internal ones
    assert [o.shape for o in b.outputs] == [[None, None, 8], [None, 8]]  # dynamic dims are not ints
    assert [o.type for o in b.outputs] == [o.type for o in a.outputs] == ["tensor(float)"] * 2


@pytest.mark.parametrize("precision", ["auto", "f32", "bf16"])
def test_recorded_precision_is_what_the_compiled_model_reports(tmp_path, precision):
    tiny.build_model(tmp_path / "m")
    runner = open_runner(tmp_path / "m", "openvino", precision, intra_op_threads=1)
    facts = runner.facts()
    reported = runner.compiled.get_property("INFERENCE_PRECISION_HINT")
    assert facts["precision"] == {"requested": precision, "used": reported.get_type_name()}
    assert facts["threads"]["intra_op"] == runner.compiled.get_property("INFERENCE_NUM_THREADS") == 1
    if precision == "f32":
        assert facts["precision"]["used"] == "f32"
    assert facts["runtime"] == "openvino" and facts["build"] == ov.get_version()
    assert ov.get_version().startswith(facts["version"]) and facts["version"].count(".") == 2
    assert facts["device_name"] == ov.Core().get_property("CPU", "FULL_DEVICE_NAME")
    ort = open_runner(tmp_path / "m").facts()
    assert ort["runtime"] == "onnxruntime" and ort["precision"]["used"] == "as stored in the file"


def test_a_fresh_timing_process_runs_an_openvino_model_and_records_its_runtime(tmp_path):
    """The speedup stage never branches on the runtime: one model per process, whatever runs it."""
    import yaml

    from stages.lib.params import parse
    from stages.lib.timing import Job, in_fresh_process

    tiny.build_model(tmp_path / "m")
    tiny.write_jsonl(tmp_path / "corpus.jsonl", tiny.corpus_rows(10))
    raw = yaml.safe_load(open("params.yaml"))
    raw.update(corpus=str(tmp_path / "corpus.jsonl"), reference="m", quantize={},
               models={"m": {"path": str(tmp_path / "m")},
                       "m-ov": {"path": str(tmp_path / "m"), "runtime": "openvino", "precision": "f32"}})
    raw["embed"].update(pooling="mean", max_length=32)
    out = in_fresh_process(Job(parse(raw), "m-ov", TEXTS[:3], passes=1))
    facts = out["environment"].runtime
    assert facts["runtime"] == "openvino" and facts["precision"] == {"requested": "f32", "used": "f32"}
    assert len(out["per_text_ms"]) == 3


def test_benchmark_runs_an_openvino_model(tmp_path):
    tiny.build_model(tmp_path / "m")
    emb = _embedder(tmp_path / "m", "openvino", "f32")
    out = run_benchmark(emb, emb.tokenizer.encode(TEXTS), SETTINGS, "m", None).to_dict()
    assert out["latency_b1"]["count"] >= SETTINGS.min_iterations and out["session_create_s"] > 0


def test_missing_runtime_is_one_line_naming_what_to_install(tmp_path, monkeypatch):
    import sys
    tiny.build_model(tmp_path / "m")
    monkeypatch.setitem(sys.modules, "openvino", None)  # makes `import openvino` raise ImportError
    with pytest.raises(UserError) as info:
        open_runner(tmp_path / "m", "openvino")
    assert str(info.value) == f"{tmp_path / 'm' / 'model.onnx'}: runtime openvino is not installed; pip install " \
                              "openvino (or set the model's runtime to onnxruntime)"


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_file_checks_come_before_any_runtime(tmp_path, runtime):
    tiny.build_model(tmp_path / "m", external_data=True)
    (tmp_path / "m" / "model.onnx_data").unlink()
    with pytest.raises(UserError, match=r"model.onnx_data: external data file referenced by .* is missing$"):
        open_runner(tmp_path / "m", runtime)
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "model.onnx").write_bytes(b"\x08\x07garbage")
    with pytest.raises(UserError, match="not a readable ONNX model"):
        open_runner(tmp_path / "t", runtime)


def test_a_provider_that_falls_back_to_cpu_is_an_error(tmp_path, monkeypatch):
    """onnxruntime-gpu lists CUDA even where it cannot start, then runs on CPU with a log line:
    no CPU number may be labelled CUDAExecutionProvider."""
    import onnxruntime as ort

    tiny.build_model(tmp_path / "m")
    real_session = ort.InferenceSession

    def session_without_cuda(source, sess_options=None, providers=()):
        assert providers == ["CUDAExecutionProvider", "CPUExecutionProvider"]
        return real_session(source, sess_options=sess_options, providers=["CPUExecutionProvider"])

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", session_without_cuda)
    with pytest.raises(UserError, match=r"model\.onnx: benchmark\.provider CUDAExecutionProvider is installed but "
                                        r"did not start \(onnxruntime fell back to CPUExecutionProvider\)"):
        open_runner(tmp_path / "m", provider="CUDAExecutionProvider")


def test_a_provider_this_onnxruntime_lacks_is_an_error(tmp_path):
    tiny.build_model(tmp_path / "m")
    with pytest.raises(UserError, match=r"provider CUDAExecutionProvider is not available in this onnxruntime"):
        open_runner(tmp_path / "m", provider="CUDAExecutionProvider")
