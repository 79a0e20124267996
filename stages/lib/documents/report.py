"""results/report.json: every model's stage outputs gathered into one document (report/assemble.py)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..i18n import Message
from .benchmark import BenchmarkRun
from .common import CorpusSample, Environment, Load
from .compare import (
    Agreement,
    Cases,
    Consistency,
    Delta,
    EmbeddingSummary,
    MachineLabel,
    Relation,
    RuntimeSummary,
    SizeRatio,
    Snippet,
    TaskByGroup,
    Verdict,
)
from .diagnose import Layer, LayerCounts, OutputError
from .inspect import Size, Tensor
from .record import Record, omitted
from .speedup import SpeedupSummary, States


@dataclass(kw_only=True)
class MachineUse(MachineLabel):
    """A machine the report's numbers come from, tagged T1, E1...: what each model used it for."""

    used_by: list[str]  # "MODEL benchmark", "MODEL speedup", "MODEL embed"


@dataclass(kw_only=True)
class Machines(Record):
    """Which machine each kind of number comes from, and a warning per model where they differ."""

    current: MachineLabel  # the machine that wrote this report
    warning_codes: list[Message]
    embed: dict[str, MachineUse]
    timing: dict[str, MachineUse]
    warnings: list[str]


@dataclass(kw_only=True)
class SpeedControl(SpeedupSummary):
    """The A/A control: the reference timed against itself, with the run's speed states."""

    states: States
    blocks: int  # how many blocks the schedule had
    seconds: float


@dataclass(kw_only=True)
class ReportSpeed(Record):
    latency_b1: SpeedupSummary
    throughput: dict[str, float]


@dataclass(kw_only=True)
class ReportComparison(Record):
    """A candidate against the reference: its compare document's findings and its speedup."""

    verdict: Verdict
    relation: Relation
    consistency: Consistency
    agreement: Agreement
    task_delta: dict[str, Delta]
    task_by_group: TaskByGroup
    cases: Cases
    speed: ReportSpeed
    size: SizeRatio
    snippets: list[Snippet]


@dataclass(kw_only=True)
class MissedQuery(Record):
    """A query no model finds: its best relevant document (null: it has none), that document's
    rank under the reference and the best rank any model gives it."""

    query: int
    query_id: str
    query_text: str
    document_id: str | None
    reference_rank: int | None
    best_rank: int | None


@dataclass(kw_only=True)
class MissedByAll(Record):
    """Queries with no relevant document in any model's top 10, the reference's included: they
    point at the labels or the corpus, not at quantization (cases.missed_by_all)."""

    models: list[str]
    queries: int  # evaluated queries
    count: int
    first: list[MissedQuery]  # those whose document every model ranks lowest first; all: results/cases/


@dataclass(kw_only=True)
class DiagnosisEndedSummary(Record):
    status: Literal["skipped", "not_comparable"]
    reason: str
    reason_code: Message


@dataclass(kw_only=True)
class DiagnosisSummary(Record):
    """A diagnosis without its per-layer list (that stays in results/diagnose/NAME.json)."""

    status: Literal["done"]
    texts: int
    jump_factor: float
    layers: LayerCounts
    first_jump: Layer | None
    top: list[Layer]
    nodes_to_exclude: list[str]
    outputs: list[OutputError]


@dataclass(kw_only=True)
class ModelEntry(Record):
    """One model: its inspect facts, embedding, benchmark, machines, task metrics and, for a
    candidate, its comparison and diagnosis."""

    path: str
    size: Size
    parameters: int
    bytes_by_dtype: dict[str, int]
    quantization: str
    opset: dict[str, int]
    producer: str
    inputs: list[Tensor]
    outputs: list[Tensor]
    embedding: EmbeddingSummary
    benchmark: BenchmarkRun
    environment: Environment
    machines: dict[str, MachineLabel]  # embed, embed_reference, benchmark, benchmark_reference, speedup
    load: dict[str, Load | None]  # benchmark, speedup
    task: dict[str, float]
    activations: Literal["dynamic", "static", "none"] | None
    recipe: dict[str, Any] | None  # the quantize.NAME entry, op types in effect
    calibration: dict[str, Any] | None
    runtime: RuntimeSummary
    comparison: ReportComparison | None = omitted()
    diagnosis: DiagnosisEndedSummary | DiagnosisSummary | None = omitted()


@dataclass(kw_only=True)
class Report(Record):
    """The comparison of every candidate with the reference: ranking, recommendation, machines and
    every model's numbers (docs/report.md)."""

    SCHEMA_VERSION = 9  # 9: speedups are the fast state's (figure, mix, by_state intervals); 8: rerun_low,
    # rerun_high beside every speedup interval; 7: speed_control.states.processes (was blocks),
    # speed_control.blocks; 6: task_by_group, cases, randomization_p, missed_by_all; 5: sample (params
    # corpus_sample); 4: the words inside messages are messages too

    ranking: list[str]  # candidates, best first
    recommended: str | None
    schema_version: int
    reference: str
    corpus: str
    sample: CorpusSample | None  # every quality number is this quick look's subset's (null: the whole corpus)
    confidence: float
    batch_invariance_min: float
    busy_tolerance: float
    language: Literal["en", "ru"]
    batch_size: int
    machines: Machines
    speed_control: SpeedControl | None
    missed_by_all: MissedByAll | None = omitted()  # with at least one candidate
    models: dict[str, ModelEntry]
