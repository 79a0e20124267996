"""results/speedup/NAME.json and results/speed.json: every model's speedup over the reference (timing.py)."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

from .common import Environment, Facts, Load
from .record import Record, flat, omitted


@dataclass(kw_only=True)
class BlockEstimate(Record):
    """One entry's estimates (one entry per block), each the reference's time / its time, geometric
    mean over texts. `speedup`: against the reference processes beside it (this run's mix);
    `state_speedup`: against the nearest reference processes in its own `state` (timing.entry_estimates)."""

    block: int
    speedup: float
    reference_ms: float  # the reference processes beside it
    model_ms: float
    state: Literal["fast", "slow"]
    state_speedup: float | None


@dataclass(kw_only=True)
class StateSpeed(Record):
    """The speedup in one state of the machine, from the entries that ran in it; the interval's
    spread pooled over every model (timing.pooled_intervals; null bounds: too few entries)."""

    entries: int
    speedup: float
    ci_low: float | None
    ci_high: float | None
    rerun_low: float | None
    rerun_high: float | None


@dataclass(kw_only=True)
class MixSpeed(Record):
    """The speedup over every entry against the reference processes beside it, whatever their state:
    the mix of states this run met, which changes from run to run (t interval over blocks)."""

    speedup: float
    ci_low: float | None
    ci_high: float | None


@dataclass(kw_only=True)
class Variance(Record):
    """Between- and within-process standard deviations of log pass times (null: too few)."""

    between_sd: float
    within_sd: float


@dataclass(kw_only=True)
class Process(Record):
    """One fresh process that timed this model."""

    block: int
    position: int
    started_s: float
    pass_ms: list[float]
    peak_rss_bytes: int
    session_create_s: float
    other_fraction: float


@dataclass(kw_only=True)
class Spread(Record):
    min: float
    median: float
    max: float


@dataclass(kw_only=True)
class States(Record):
    """The machine's speed states as the reference model's processes saw them (timing.speed_states)."""

    reference_ms: Spread
    gap: float
    threshold_ms: float | None  # between the fast and slow processes, when two or more were slow
    state_ms: dict[str, float] | None  # {fast, slow} when there were two states
    processes: list[Literal["fast", "slow"]]  # each of the reference model's processes, in run order


@dataclass(kw_only=True)
class SpeedupSummary(Record):
    """A speedup, its interval and how it was measured (the report keeps this much of each file)."""

    speedup: float
    ci_low: float
    ci_high: float
    rerun_low: float  # where another run's estimate should land (timing.rerun_interval)
    rerun_high: float
    measurable: bool
    method: str
    texts: int
    passes: int
    figure: Literal["fast", "mix"]  # which estimate `speedup` is: the fast state's, or the mix when none
    by_state: dict[str, StateSpeed]
    mix: MixSpeed


@dataclass(kw_only=True)
class Speedup(Record):
    """One model's speedup over the reference in the machine's fast state, every model timed one per
    fresh process in blocks interleaved over time; the slow state's and the whole run's mix beside it.
    The reference's own file is the A/A control and holds the run's schedule and speed states."""

    SCHEMA_VERSION = 4  # 4: the headline is the fast state's speedup (figure, mix, StateSpeed intervals,
    # BlockEstimate.state_speedup); 3: rerun_low, rerun_high; 2: reference processes between the entries

    model: str
    reference: str
    control: bool
    speedup: float
    ci_low: float
    ci_high: float
    rerun_low: float  # where another run's estimate should land (timing.rerun_interval)
    rerun_high: float
    confidence: float
    measurable: bool
    method: str
    texts: int
    passes: int
    figure: Literal["fast", "mix"]  # which estimate `speedup` is: the fast state's, or the mix when none
    blocks: list[BlockEstimate]
    by_state: dict[str, StateSpeed]
    mix: MixSpeed
    variance: Variance
    processes: list[Process]
    load: Load
    memory: dict[str, int]  # {peak_rss_bytes}: the largest of its processes
    environment: Environment
    reference_runtime: Facts
    states: States | None = omitted()
    schedule: list[list[str]] | None = omitted()
    reference_processes: list[Process] | None = omitted()  # the reference-role processes, in run order
    seconds: float | None = omitted()
    machine: Facts | None = omitted()  # the timing machine's facts (the stage always records them)

    def summary(self) -> SpeedupSummary:
        """What the report keeps of it (the per-block and per-process detail stays in the file)."""
        return SpeedupSummary(**{f.name: getattr(self, f.name) for f in fields(SpeedupSummary)})


@dataclass(kw_only=True)
class SpeedHeadline(Record):
    speedup: float
    speedup_low: float
    speedup_high: float


@dataclass(kw_only=True)
class SpeedHeadlines(Record):
    """results/speed.json: each candidate's speedup and interval under its name (DVC metrics)."""

    SCHEMA_VERSION = 1

    models: dict[str, SpeedHeadline] = flat(r"[A-Za-z0-9_-]+")
