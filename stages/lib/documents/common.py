"""Pieces several documents share: facts as recorded, how busy the machine was, the timing environment.
No messages here: the timing stages' documents must not depend on the catalog (i18n.py)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .record import Record

Facts = dict[str, Any]  # facts recorded as they are: a machine's (machine.py), a runner's (runtimes.py)


@dataclass(kw_only=True)
class CorpusSample(Record):
    """A quick look's subset of the corpus (params corpus_sample, corpus.draw_sample): its queries and
    documents out of the corpus's, how many documents the qrels name for those queries and how many
    unjudged ones were drawn beside them, and the subset's SHA-256 (which ids it holds)."""

    queries: int
    of_queries: int
    documents: int
    of_documents: int
    judged_documents: int
    distractors: int
    sha256: str


@dataclass(kw_only=True)
class Load(Record):
    """CPU time other processes used while timing, as a share of all cores (machine.LoadMonitor)."""

    seconds: float
    cores: int
    own_cpu_s: float
    other_cpu_s: float
    other_fraction: float  # null: timed for too short a time to tell
    tolerance: float
    busy: bool


@dataclass(kw_only=True)
class Environment(Record):
    """What else a reader needs to judge a timing (benchmarking.environment)."""

    provider: str
    runtime: Facts
    intra_op_threads: int | str  # a number, or "<runtime> default"
    inter_op_threads: int | str
    memory_bytes: int
    os: str
    python: str
    numpy: str
