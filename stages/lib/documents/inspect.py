"""results/inspect/NAME.json: static facts about one model (inspection.py)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from .record import Record


@dataclass(kw_only=True)
class Size(Record):
    """Bytes on disk: the graph file and its external data apart."""

    graph_bytes: int
    external_data_bytes: int
    total_bytes: int
    external_data_files: dict[str, int]


@dataclass(kw_only=True)
class Parameters(Record):
    """The exact element count of all initializers (int8 ones included), by dtype."""

    count: int
    initializers: int
    external_initializers: int
    constant_node_elements: int
    elements_by_dtype: dict[str, int]
    bytes_by_dtype: dict[str, int]


@dataclass(kw_only=True)
class Tensor(Record):
    """A graph input or output: its dims are numbers or symbolic names."""

    name: str
    dtype: str
    dims: list[int | str]
    dynamic: list[bool]


@dataclass(kw_only=True)
class Inspection(Record):
    """Static facts about one model, read from the graph without loading its weights."""

    SCHEMA_VERSION = 1

    model: str
    path_sha256: str
    model_file: str
    size: Size
    parameters: Parameters
    inputs: list[Tensor]
    outputs: list[Tensor]
    opset: dict[str, int]
    ir_version: int
    producer: str
    ops: dict[str, int]
    quantization: str  # none | QOperator | QDQ | weight-only int8 | 4-bit | FP16
    activations: Literal["dynamic", "static", "none"]
    recipe: dict[str, Any] | None  # the QUANTIZE.json the quantize stage wrote beside the model
    vocab_size: int | None
