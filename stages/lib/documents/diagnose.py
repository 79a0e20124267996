"""results/diagnose/NAME.json: where a non-PASS candidate's error comes from (diagnosis.py)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..i18n import Message
from ..status import Status
from .common import Facts
from .record import Record, omitted


@dataclass(kw_only=True)
class Layer(Record):
    """One weighted layer's output compared: relative error, SQNR (null: identical), the largest
    error before it in graph order, and whether it jumps."""

    tensor: str
    node: str
    op: str
    rel_error: float
    sqnr_db: float
    max_before: float
    increase: float
    jump: bool


@dataclass(kw_only=True)
class OutputError(Record):
    tensor: str
    rel_error: float
    sqnr_db: float


@dataclass(kw_only=True)
class LayerCounts(Record):
    weighted: int
    matched: int
    compared: int


@dataclass(kw_only=True)
class DiagnosisMemory(Record):
    """What the diagnosis expected to need before opening a model (diagnosis.memory_plan) and the
    peak it measured, with the onnxruntime memory options its sessions ran with."""

    weights_bytes: dict[str, int]  # model -> bytes of its weights
    longest_text_tokens: int
    exposed_bytes: int
    groups: int
    group_bytes: int
    before_models_bytes: int
    expected_peak_bytes: int
    peak_rss_bytes: int
    memory_options: Facts | None


@dataclass(kw_only=True)
class DiagnosisEnded(Record):
    """A diagnosis that stopped early (the reference, a PASS, layers that cannot be compared): why."""

    SCHEMA_VERSION = 2  # 2: reason is English and reason_code the message (were reason_text and reason)

    model: str
    reference: str
    verdict: Status | None
    status: Literal["skipped", "not_comparable"]
    reason: str
    reason_code: Message


@dataclass(kw_only=True)
class DiagnosisDone(Record):
    """The layers of a candidate compared with the reference's, in graph order: where error enters."""

    SCHEMA_VERSION = 2

    model: str
    reference: str
    verdict: Status | None
    status: Literal["done"]
    texts: int
    tokens: int
    op_types: list[str]
    jump_factor: float
    layers: LayerCounts
    unmatched: list[str]
    first_jump: Layer | None
    top: list[Layer]
    nodes_to_exclude: list[str]
    outputs: list[OutputError]
    tensors: list[Layer]
    machine: Facts | None
    memory: DiagnosisMemory | None = omitted()  # absent in files written before memory was recorded


Diagnosis = DiagnosisEnded | DiagnosisDone
