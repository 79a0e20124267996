"""results/compare/NAME.json: one model against the reference (comparison.py)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..i18n import Message
from ..status import Status
from .common import CorpusSample, Facts, Load
from .embed import BatchInvariance, Pooling, Truncated
from .record import Record, flat, omitted


@dataclass(kw_only=True)
class MachineLabel(Record):
    """The machine behind a result: id of its facts (null: recorded without), description in English
    and as a message (any language), INT8 support (machine_words.label)."""

    id: str | None
    description: str
    description_code: Message
    int8_support: str | None


@dataclass(kw_only=True)
class EmbeddingSummary(Record):
    """The embedding settings a model's vectors were made with (from its manifest)."""

    dim: int
    pooling: Pooling
    normalize: bool
    query_prompt: str
    max_length: int
    batch_size: int
    padding_side: str
    truncated: Truncated
    batch_invariance: BatchInvariance
    model_sha256: str


@dataclass(kw_only=True)
class Norms(Record):
    mean: float
    min: float
    max: float


@dataclass(kw_only=True)
class Sanity(Record):
    finite: bool
    dim: int
    norms_codes: Norms
    norms_queries: Norms
    batch_invariance: BatchInvariance


@dataclass(kw_only=True)
class RuntimeSummary(Record):
    """How the model ran (its manifest's runner facts), and a sentence when it computed in another
    float type than its file stores."""

    facts: Facts | None
    stored_precision: str | None
    note: str | None
    note_code: Message | None


@dataclass(kw_only=True)
class Delta(Record):
    """A task metric's relative change against the reference, its paired bootstrap interval,
    Wilcoxon p and paired randomization p."""

    reference: float
    candidate: float
    delta: float
    relative: float
    relative_ci_low: float
    relative_ci_high: float
    wilcoxon_p: float
    randomization_p: float


@dataclass(kw_only=True)
class GroupDelta(Record):
    """A task metric inside one group of queries: its size and both means; where the group is
    measurable (enough queries, a reference mean above 0, a bounded interval) also the relative
    change, its paired bootstrap interval, Wilcoxon p and randomization p, else the reason."""

    queries: int
    reference: float
    candidate: float
    delta: float
    relative: float | None = omitted()
    relative_ci_low: float | None = omitted()
    relative_ci_high: float | None = omitted()
    wilcoxon_p: float | None = omitted()
    randomization_p: float | None = omitted()
    measurable: bool
    reason: Literal["too_few_queries", "reference_zero", "interval_unbounded"] | None = omitted()


@dataclass(kw_only=True)
class TaskByGroup(Record):
    """A task metric's change by the queries' language (the corpus's labels) and by their length in
    the reference's tokens; groups of fewer than min_queries get no interval."""

    metric: str
    min_queries: int
    lang: dict[str, GroupDelta]
    length: dict[str, GroupDelta]


@dataclass(kw_only=True)
class CaseRow(Record):
    """One query of results/cases/NAME.jsonl: its best relevant document (the relevant one the
    reference ranks highest; null when it has none), that document's rank under the reference and
    under NAME over every document, the reciprocal-rank change 1/candidate - 1/reference, the
    document each model ranked first, and whether any relevant document is in each top 10."""

    SCHEMA_VERSION = 1

    query: int
    query_id: str
    lang: str
    length: int
    document: int | None
    grade: int | None
    reference_rank: int | None
    candidate_rank: int | None
    rr_change: float | None
    reference_first: int
    candidate_first: int
    hits: dict[str, bool] = flat(r"(reference|candidate)_hit@10")
    document_id: str | None
    reference_first_id: str
    candidate_first_id: str
    query_text: str  # whitespace folded, shortened (cases.short_text)


@dataclass(kw_only=True)
class Case(CaseRow):
    """A case shown in the report: its row, and the documents' texts, shortened."""

    document_text: str
    reference_first_text: str
    candidate_first_text: str


@dataclass(kw_only=True)
class CaseCounts(Record):
    """Queries whose best relevant document the candidate ranks lower, higher, the same, and
    queries without a relevant document."""

    lost: int
    gained: int
    same: int
    no_relevant: int


@dataclass(kw_only=True)
class Cases(Record):
    """Where the candidate loses and gains: the largest reciprocal-rank losses and gains, largest
    first (the full list is results/cases/NAME.jsonl)."""

    losses: list[Case]
    gains: list[Case]
    counts: CaseCounts


@dataclass(kw_only=True)
class Consistency(Record):
    same_dim: bool
    same_prompt: bool
    same_tokenizer: bool
    same_batches: bool
    same_pooling: bool
    same_embed_machine: bool
    same_timing_machine: bool


@dataclass(kw_only=True)
class CosineStats(Record):
    count: int
    mean: float
    min: float
    p1: float
    p5: float


@dataclass(kw_only=True)
class Histogram(Record):
    edges: list[float]
    counts: list[int]


@dataclass(kw_only=True)
class CosineAgreement(CosineStats):
    """Per-text cosine between the two models' vectors, overall, by language and by token length."""

    histogram: Histogram
    by_lang: dict[str, CosineStats]
    by_length: dict[str, CosineStats]


@dataclass(kw_only=True)
class Similarity(Record):
    """Agreement of the two query x code similarity matrices; overlap@1, @10 and @k, RBO@k."""

    pairs: int
    pearson: float
    spearman: float
    spearman_pairs: int
    score_drift_mean_abs: float
    overlap: dict[str, float] = flat(r"overlap@\d+")
    top1_agreement: float
    rbo: dict[str, float] = flat(r"rbo@\d+")


@dataclass(kw_only=True)
class Agreement(Record):
    """Per-text cosine needs one embedding space; CKA and the similarity metrics work across dimensions."""

    cka_linear: float
    cosine: CosineAgreement | None = omitted()
    cosine_codes_mean: float | None = omitted()
    cosine_queries_mean: float | None = omitted()
    similarity: Similarity


@dataclass(kw_only=True)
class Relation(Record):
    """Is the candidate the reference in another precision (agreement counts) or another network?"""

    related: bool
    parameter_ratio: float
    reason: str
    reason_code: Message


@dataclass(kw_only=True)
class SizeRatio(Record):
    reference_bytes: int
    candidate_bytes: int
    ratio: float
    quantization: str


@dataclass(kw_only=True)
class Snippet(Record):
    """One hand-written snippet: agreement (null across dimensions) and own code ranked first or not."""

    id: str
    lang: str
    cosine_code: float
    cosine_query: float
    reference_top1: bool
    candidate_top1: bool


@dataclass(kw_only=True)
class Verdict(Record):
    """PASS / WARN / FAIL with every reason, and for INT8 kernels the instruction path it holds on."""

    status: Status
    reasons: list[str]
    reason_codes: list[Message]
    scope: str | None
    scope_code: Message | None


@dataclass(kw_only=True)
class CompareSpeed(Record):
    throughput: dict[str, float]  # batch size -> candidate / reference texts per second


@dataclass(kw_only=True)
class Comparison(Record):
    """One model against the reference; for the reference itself, its task metrics and sanity."""

    SCHEMA_VERSION = 4  # 4: cases, task_by_group, randomization_p; 3: sample (params corpus_sample);
    # 2: machine labels' description_code, relation's reason_code, codes in codes

    model: str
    reference: str
    is_reference: bool
    sample: CorpusSample | None  # the quick look's subset both models were measured on (null: the whole corpus)
    embedding: EmbeddingSummary
    machines: dict[str, MachineLabel]  # embed, embed_reference, benchmark, benchmark_reference
    load: dict[str, Load | None]  # benchmark
    sanity: Sanity
    task: dict[str, float]  # ndcg@10, mrr@10, recall@1, recall@10
    runtime: RuntimeSummary
    task_delta: dict[str, Delta] | None = omitted()  # candidates only, from here to verdict
    task_by_group: TaskByGroup | None = omitted()
    cases: Cases | None = omitted()
    consistency: Consistency | None = omitted()
    agreement: Agreement | None = omitted()
    relation: Relation | None = omitted()
    speed: CompareSpeed | None = omitted()
    size: SizeRatio | None = omitted()
    snippets: list[Snippet] | None = omitted()
    verdict: Verdict | None = omitted()
    headline: dict[str, Any]  # the flat numbers of results/metrics/NAME.json
