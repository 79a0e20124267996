"""Static facts about an ONNX model, read from the graph without loading external weights."""
from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from .documents.inspect import Inspection, Parameters, Size, Tensor
from .errors import UserError
from .hashing import tree_sha256
from .onnxmodel import all_initializers, embedding_vocab_size, iter_graphs, model_files
from .outputs import read_json
from .readers import json_type

# Bits per element for the element types a quantized model may hold.
_SUB_BYTE_BITS = {"INT4": 4, "UINT4": 4, "FLOAT4E2M1": 4, "INT2": 2, "UINT2": 2}

QOPERATOR_OPS = {"QLinearMatMul", "QLinearConv", "QLinearAdd", "QLinearMul", "QAttention", "QGemm",
                 "QEmbedLayerNormalization", "MatMulInteger", "ConvInteger", "DynamicQuantizeMatMul",
                 "MatMulIntegerToFloat", "DynamicQuantizeLinear", "DynamicQuantizeLSTM"}
FOUR_BIT_OPS = {"MatMulNBits", "GatherBlockQuantized", "MatMulBnb4"}


def dtype_name(elem_type: int) -> str:
    return onnx.TensorProto.DataType.Name(elem_type)


def tensor_elements(tensor: onnx.TensorProto) -> int:
    return int(math.prod(tensor.dims)) if tensor.dims else 1


def tensor_bytes(tensor: onnx.TensorProto) -> int:
    """Stored bytes of a tensor: the element count times the element width (sub-byte types packed)."""
    name = dtype_name(tensor.data_type)
    if name in _SUB_BYTE_BITS:
        return math.ceil(tensor_elements(tensor) * _SUB_BYTE_BITS[name] / 8)
    if name == "STRING":
        return sum(len(s) for s in tensor.string_data)
    itemsize = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize
    return tensor_elements(tensor) * itemsize


def _value_info(value: onnx.ValueInfoProto) -> Tensor:
    tensor = value.type.tensor_type
    dims = []
    for d in tensor.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        else:
            dims.append(d.dim_param or "?")
    return Tensor(name=value.name, dtype=dtype_name(tensor.elem_type).lower(), dims=dims,
                  dynamic=[not isinstance(d, int) for d in dims])


def quantization_format(ops: Counter, dtype_bytes: dict[str, int], initializer_names_feeding_dq: bool,
                        has_quantize_linear: bool) -> str:
    """Name the quantization scheme from the ops and weight dtypes present."""
    if FOUR_BIT_OPS & ops.keys() or any(k in dtype_bytes for k in ("int4", "uint4")):
        return "4-bit"
    if QOPERATOR_OPS & ops.keys():
        return "QOperator"
    if ops.get("DequantizeLinear"):
        if has_quantize_linear:
            return "QDQ"
        if initializer_names_feeding_dq:
            return "weight-only int8"
        return "QDQ"
    total = sum(dtype_bytes.values()) or 1
    if dtype_bytes.get("float16", 0) + dtype_bytes.get("bfloat16", 0) > total / 2:
        return "FP16"
    return "none"


DYNAMIC_ACTIVATION_OPS = {"DynamicQuantizeLinear", "DynamicQuantizeMatMul", "MatMulIntegerToFloat",
                          "DynamicQuantizeLSTM"}


def activation_quantization(model: onnx.ModelProto, ops: Counter) -> str:
    """How activations are quantized, which decides whether a text's vector depends on its
    batch-mates: 'dynamic' (scales computed per batch at run time), 'static' (calibrated scales
    stored in the graph) or 'none' (float activations: weight-only, FP16, FP32)."""
    if DYNAMIC_ACTIVATION_OPS & ops.keys():
        return "dynamic"
    for graph in iter_graphs(model.graph):
        for node in graph.node:
            if node.op_type == "MatMulNBits" and any(a.name == "accuracy_level" and a.i == 4 for a in node.attribute):
                return "dynamic"  # MatMulNBits with accuracy_level 4 quantizes its input per block at run time
    if ops.get("QuantizeLinear") or QOPERATOR_OPS & ops.keys():
        return "static"
    return "none"


def _recipe(model_file: Path) -> dict | None:
    """What the quantize stage wrote next to a candidate it made (recipe, calibration facts)."""
    path = model_file.parent / "QUANTIZE.json"
    if not path.is_file():
        return None
    facts = read_json(path)
    if not isinstance(facts, dict):
        raise UserError(f"{path}: expected a JSON object, got {json_type(facts)}")
    if not isinstance(facts.get("recipe", {}), dict):  # the report reads it as one
        raise UserError(f"{path}: 'recipe' must be an object, got {json_type(facts['recipe'])}")
    return facts


def inspect_model(path: str | Path, name: str) -> Inspection:
    """Sizes (graph and external data apart), exact parameter count, dtypes, I/O, ops, quantization,
    and the files' identity (the speedup stage, which times every model, depends on results/inspect).
    The files are checked first: a missing one is one line, not an empty hash."""
    model_file, model, data_files = model_files(path)
    inits = all_initializers(model)
    by_dtype: Counter = Counter()
    elems_by_dtype: Counter = Counter()
    external_tensors = 0
    for t in inits:
        dtype = dtype_name(t.data_type).lower()
        by_dtype[dtype] += tensor_bytes(t)
        elems_by_dtype[dtype] += tensor_elements(t)
        external_tensors += t.data_location == onnx.TensorProto.EXTERNAL
    ops: Counter = Counter()
    constant_elements = 0
    for graph in iter_graphs(model.graph):
        for node in graph.node:
            ops[node.op_type] += 1
            if node.op_type == "Constant":
                for attr in node.attribute:
                    if attr.type == onnx.AttributeProto.TENSOR:
                        constant_elements += tensor_elements(attr.t)
    init_names = {t.name for t in inits}
    dq_from_init = any(n.op_type == "DequantizeLinear" and n.input and n.input[0] in init_names
                       for g in iter_graphs(model.graph) for n in g.node)
    graph_bytes = model_file.stat().st_size
    data_bytes = sum(data_files.values())
    graph_inputs = [i for i in model.graph.input if i.name not in init_names]
    return Inspection(
        model=name,
        path_sha256=tree_sha256(path),
        model_file=str(model_file),
        size=Size(graph_bytes=graph_bytes, external_data_bytes=data_bytes, total_bytes=graph_bytes + data_bytes,
                  external_data_files=data_files),
        parameters=Parameters(count=int(sum(elems_by_dtype.values())), initializers=len(inits),
                              external_initializers=external_tensors, constant_node_elements=constant_elements,
                              elements_by_dtype=dict(sorted(elems_by_dtype.items())),
                              bytes_by_dtype=dict(sorted(by_dtype.items()))),
        inputs=[_value_info(i) for i in graph_inputs],
        outputs=[_value_info(o) for o in model.graph.output],
        opset={op.domain or "ai.onnx": int(op.version) for op in model.opset_import},
        ir_version=int(model.ir_version),
        producer=f"{model.producer_name} {model.producer_version}".strip(),
        ops=dict(sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))),
        quantization=quantization_format(ops, by_dtype, dq_from_init, bool(ops.get("QuantizeLinear"))),
        activations=activation_quantization(model, ops),
        recipe=_recipe(model_file),
        vocab_size=embedding_vocab_size(model),
    )
