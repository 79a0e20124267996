"""results/benchmark/NAME.json: latency, throughput and a length sweep of one model (benchmarking.py)."""
from __future__ import annotations

from dataclasses import dataclass

from .common import Environment, Facts, Load
from .record import Record, omitted


@dataclass(kw_only=True)
class LatencyStats(Record):
    """Summary of timing samples in ms (std: ddof=1); only the count when there were none."""

    count: int
    mean_ms: float | None = omitted()
    std_ms: float | None = omitted()
    min_ms: float | None = omitted()
    max_ms: float | None = omitted()
    p50_ms: float | None = omitted()
    p90_ms: float | None = omitted()
    p99_ms: float | None = omitted()


@dataclass(kw_only=True)
class Repeatability(Record):
    """Two back-to-back runs over the same texts: how far apart their medians are."""

    median_ms_run1: float
    median_ms_run2: float
    relative_difference: float
    tolerance: float
    noisy: bool


@dataclass(kw_only=True)
class LatencyB1(LatencyStats):
    """Batch-1 latency over real corpus texts; the samples themselves stay in the benchmark file."""

    capped: bool
    texts: int
    text_order_sha256: str
    mean_tokens: float
    repeatability: Repeatability
    samples_ms: list[float] | None = omitted()
    samples_ms_repeat: list[float] | None = omitted()


@dataclass(kw_only=True)
class Pass(Record):
    """One timed pass over the throughput texts in one batch order."""

    seconds: float
    texts_per_s: float
    tokens_per_s: float
    padding_fraction: float


@dataclass(kw_only=True)
class Throughput(Record):
    batch_size: int
    sorted: Pass
    unsorted: Pass
    sort_speedup: float


@dataclass(kw_only=True)
class SweepPoint(Record):
    """Latency at one sequence length and batch size on real tokens, or why it was skipped."""

    seq_len: int
    batch_size: int
    skipped: str | None = omitted()
    count: int | None = omitted()
    mean_ms: float | None = omitted()
    std_ms: float | None = omitted()
    min_ms: float | None = omitted()
    max_ms: float | None = omitted()
    p50_ms: float | None = omitted()
    p90_ms: float | None = omitted()
    p99_ms: float | None = omitted()
    capped: bool | None = omitted()
    tokens_per_s: float | None = omitted()


@dataclass(kw_only=True)
class Memory(Record):
    rss_after_load_bytes: int
    peak_rss_bytes: int


@dataclass(kw_only=True)
class BenchmarkRun(Record):
    """What one benchmark run measured: run_benchmark's result, and the report's copy of it."""

    session_create_s: float
    memory: Memory
    latency_b1: LatencyB1
    throughput: list[Throughput]
    sweep: list[SweepPoint]


@dataclass(kw_only=True)
class Benchmark(Record):
    """Latency, throughput and a sequence-length sweep of one model on real corpus texts, with the
    machine it was timed on and how busy that machine was."""

    SCHEMA_VERSION = 1

    model: str
    machine: Facts
    environment: Environment
    session_create_s: float
    memory: Memory
    load: Load
    latency_b1: LatencyB1
    throughput: list[Throughput]
    sweep: list[SweepPoint]
