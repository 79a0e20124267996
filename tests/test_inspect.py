"""inspect: sizes with external data and exact parameter counts, checked against independent sums."""
import dataclasses
import os

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from stages.lib.errors import UserError
from stages.lib.inspection import inspect_model
from stages.lib.modelprep import make_candidate
from stages.lib.params import QuantizeSpec
from tests import tiny


def _independent_counts(model_file):
    """Element counts and bytes by dtype, from arrays onnx itself loads (external data included)."""
    model = onnx.load(str(model_file), load_external_data=True)
    counts, nbytes = {}, {}
    for t in model.graph.initializer:
        arr = numpy_helper.to_array(t)
        key = str(arr.dtype).replace("float32", "float")
        counts[key] = counts.get(key, 0) + arr.size
        nbytes[key] = nbytes.get(key, 0) + arr.nbytes
    return counts, nbytes


def test_external_data_counted_and_not_loaded(tmp_path, monkeypatch):
    path = tiny.build_model(tmp_path / "m", external_data=True, dim=16)
    data = tmp_path / "m" / "model.onnx_data"
    assert data.is_file()
    counts, nbytes = _independent_counts(path)

    def no_weights(*args, **kwargs):
        raise AssertionError("inspect must not load external weights")
    monkeypatch.setattr(onnx, "load_external_data_for_model", no_weights)
    monkeypatch.setattr(onnx.external_data_helper, "load_external_data_for_model", no_weights)
    info = inspect_model(tmp_path / "m", "m").to_dict()

    size = info["size"]
    assert size["graph_bytes"] == os.path.getsize(path)
    assert size["external_data_bytes"] == os.path.getsize(data)
    assert size["total_bytes"] == os.path.getsize(path) + os.path.getsize(data)
    assert size["external_data_files"] == {"model.onnx_data": os.path.getsize(data)}
    assert info["parameters"]["count"] == sum(counts.values())
    emb, w = tiny.weights(len(tiny.vocab()), 16)
    assert info["parameters"]["count"] == emb.size + w.size
    assert info["parameters"]["bytes_by_dtype"]["float"] == nbytes["float"]
    assert info["parameters"]["external_initializers"] == 2
    assert info["quantization"] == "none"
    assert info["vocab_size"] == len(tiny.vocab())
    assert [i["name"] for i in info["inputs"]] == ["input_ids", "attention_mask"]
    assert info["inputs"][0]["dims"] == ["batch", "seq"] and info["inputs"][0]["dynamic"] == [True, True]
    assert info["outputs"][0]["dims"] == ["batch", "seq", 16]


def test_int8_model_counts(tmp_path):
    tiny.build_model(tmp_path / "fp32", dim=16)
    spec = QuantizeSpec(source=str(tmp_path / "fp32"), per_channel=True, op_types=["MatMul"])
    make_candidate(spec, tmp_path / "int8")
    info = inspect_model(tmp_path / "int8", "int8").to_dict()
    counts, nbytes = _independent_counts(tmp_path / "int8" / "model.onnx")
    assert info["parameters"]["count"] == sum(counts.values())
    # weights + per-channel zero points
    assert info["parameters"]["elements_by_dtype"]["int8"] == counts["int8"] == 16 * 16 + 16
    assert info["parameters"]["bytes_by_dtype"]["int8"] == nbytes["int8"]
    assert info["size"]["total_bytes"] == os.path.getsize(tmp_path / "int8" / "model.onnx")
    assert info["quantization"] == "QOperator"
    assert (tmp_path / "int8" / "tokenizer.json").is_file()  # the candidate folder is self-contained


@pytest.mark.parametrize("damage, needle", [
    ("missing_data", "external data file referenced by"),
    ("short_data", "external data is truncated"),
    ("truncated_graph", "truncated or corrupt"),
    ("empty_graph", "file is empty"),
    ("no_model", "folder has no model.onnx"),
])
def test_bad_models_give_one_clear_line(tmp_path, damage, needle):
    path = tiny.build_model(tmp_path / "m", external_data=True)
    data = tmp_path / "m" / "model.onnx_data"
    if damage == "missing_data":
        data.unlink()
    elif damage == "short_data":
        data.write_bytes(data.read_bytes()[:100])
    elif damage == "truncated_graph":
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    elif damage == "empty_graph":
        path.write_bytes(b"")
    elif damage == "no_model":
        path.unlink()
    with pytest.raises(UserError) as err:
        inspect_model(tmp_path / "m", "m")
    message = str(err.value)
    assert needle in message and "\n" not in message
    assert str(tmp_path / "m") in message


def _graph_with(tmp_path, name, nodes, inits, opset=21):
    from onnx import TensorProto, helper
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 4])
    model = helper.make_model(helper.make_graph(nodes, name, [x], [y], inits),
                              opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid("com.microsoft", 1)])
    folder = tmp_path / name
    folder.mkdir()
    onnx.save_model(model, str(folder / "model.onnx"))
    return folder


@pytest.mark.parametrize("kind", ["FP16", "weight-only int8", "QDQ", "4-bit"])
def test_quantization_format_detection(tmp_path, kind):
    from onnx import TensorProto, helper
    w = np.arange(16, dtype=np.float32).reshape(4, 4)
    scale = numpy_helper.from_array(np.array(0.1, dtype=np.float32), "scale")
    zero = numpy_helper.from_array(np.array(0, dtype=np.int8), "zero")
    if kind == "FP16":
        inits = [numpy_helper.from_array(w.astype(np.float16), "w16")]
        nodes = [helper.make_node("Cast", ["w16"], ["w"], to=TensorProto.FLOAT),
                 helper.make_node("MatMul", ["x", "w"], ["y"])]
    elif kind == "weight-only int8":
        inits = [numpy_helper.from_array(w.astype(np.int8), "wq"), scale, zero]
        nodes = [helper.make_node("DequantizeLinear", ["wq", "scale", "zero"], ["w"]),
                 helper.make_node("MatMul", ["x", "w"], ["y"])]
    elif kind == "QDQ":
        inits = [numpy_helper.from_array(w.astype(np.int8), "wq"), scale, zero]
        nodes = [helper.make_node("QuantizeLinear", ["x", "scale", "zero"], ["xq"]),
                 helper.make_node("DequantizeLinear", ["xq", "scale", "zero"], ["xd"]),
                 helper.make_node("DequantizeLinear", ["wq", "scale", "zero"], ["w"]),
                 helper.make_node("MatMul", ["xd", "w"], ["y"])]
    else:
        packed = helper.make_tensor("w4", TensorProto.INT4, [4, 4], np.zeros(16, dtype=np.int8).tolist())
        inits = [packed, scale, helper.make_tensor("zero4", TensorProto.INT4, [], [0])]
        nodes = [helper.make_node("DequantizeLinear", ["w4", "scale", "zero4"], ["w"]),
                 helper.make_node("MatMul", ["x", "w"], ["y"])]
    info = inspect_model(_graph_with(tmp_path, kind.replace(" ", "_"), nodes, inits), "m").to_dict()
    assert info["quantization"] == kind
    if kind == "4-bit":
        assert info["parameters"]["bytes_by_dtype"]["int4"] == 8 + 1  # 16 weights two per byte + the zero point
    if kind == "FP16":
        assert info["parameters"]["bytes_by_dtype"] == {"float16": 32}


def test_quantizing_a_bare_onnx_file_takes_only_its_companion_files(tmp_path):
    tiny.build_model(tmp_path / "src")
    (tmp_path / "src" / "unrelated-model").mkdir()
    (tmp_path / "src" / "notes.txt").write_text("not part of the model")
    spec = QuantizeSpec(source=str(tmp_path / "src" / "model.onnx"), op_types=["MatMul"])
    make_candidate(spec, tmp_path / "q")
    assert sorted(p.name for p in (tmp_path / "q").iterdir()) == ["QUANTIZE.json", "model.onnx", "tokenizer.json"]
    spec = dataclasses.replace(spec, source=str(tmp_path / "src"))  # a folder source is copied whole
    make_candidate(spec, tmp_path / "q")
    assert (tmp_path / "q" / "notes.txt").is_file() and (tmp_path / "q" / "unrelated-model").is_dir()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp or old folders left
