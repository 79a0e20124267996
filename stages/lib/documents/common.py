"""Pieces several documents share: facts as recorded, how busy the machine was, the timing environment.
No messages here: the timing stages' documents must not depend on the catalog (i18n.py)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .record import Record

Facts = dict[str, Any]  # facts recorded as they are: a machine's (machine.py), a runner's (runtimes.py)


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
