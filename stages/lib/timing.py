"""Speedups that survive a rerun: every model timed in fresh processes, interleaved over time.

Measured on the 2-core dev VM (docs/timing.md): timings vary more between processes than between
rounds inside one, and the machine has speed states lasting seconds to minutes that a guest cannot
see (the reference ran at 8.9 or 12.9 ms per text, and the INT8-to-FP32 ratio was 2.07 in one and
1.90 in the other). An interval from rounds inside one process is silent about both. So:

- One model per process, as deployed: two sessions in one process slowed each other (the
  candidate more than the reference), and at 1.5B parameters two models in one process double
  the memory. Each process loads its model, tokenizes the texts, runs one untimed pass, then
  `passes` timed passes; a text's time is its median over the passes.
- Processes run one at a time in blocks. A block times the control (the reference again, timed as
  a candidate: the A/A control) and every candidate once each, in a shuffled order, with a process
  of the reference before, between and after them: R e1 R e2 ... R en R. Each entry is compared
  with the reference processes right beside it (a few seconds away), so a linear drift cancels
  and a speed state of the machine (they last tens of seconds) almost always holds both sides of
  a comparison. The first version put the reference only at a block's two ends, about 40 s apart:
  most blocks then straddled a change of state and the A/A control's interval was +-23%.
- An entry's estimate is the geometric mean over texts of (reference time / its time), the
  reference side the per-text geometric mean of its two neighbours. The interval is a Student t
  over blocks (rounds nested in processes nested in blocks; the blocks are the independent units,
  Kalibera and Jones, ISMM 2013), so a slow or fast process moves the interval, not the answer.
"""
from __future__ import annotations

import math
import multiprocessing
import time
from dataclasses import dataclass

import numpy as np

from .documents.common import Load
from .documents.speedup import (
    BlockEstimate,
    Process,
    SpeedHeadline,
    SpeedHeadlines,
    Speedup,
    Spread,
    States,
    StateSpeed,
    Variance,
)
from .errors import UserError, first_line
from .progress import Progress

CONTROL = "control"  # the role of the reference timed as a candidate (A/A)


@dataclass(frozen=True)
class Job:
    """What one fresh process times: one model over the texts."""

    params: object  # params.Params (picklable: plain dataclasses)
    name: str
    texts: list
    passes: int


def schedule(reference: str, candidates: list[str], blocks: int, seed: int) -> list[list[tuple[str, str]]]:
    """Per block, the (role, model) of each process in order: the control and the candidates in a
    shuffled (seeded) order, with a reference process before, between and after them."""
    rng = np.random.default_rng(seed)
    inner = [(CONTROL, reference)] + [("candidate", c) for c in candidates]
    out = []
    for _ in range(blocks):
        block = [("reference", reference)]
        for i in rng.permutation(len(inner)):
            block += [inner[i], ("reference", reference)]
        out.append(block)
    return out


def time_model(job: Job) -> dict:
    """Runs in the fresh process: load, tokenize, one untimed pass, `passes` timed passes."""
    from .benchmarking import environment, measure, peak_rss_bytes, timing_call
    from .embedding import open_embedder
    from .machine import LoadMonitor

    s = job.params.benchmark
    embedder = open_embedder(job.params, job.name, s.provider, s.intra_op_threads, s.inter_op_threads)
    ids = embedder.tokenizer.encode(job.texts)
    embedder.check_ids(ids)
    call = timing_call(embedder)
    feeds = [embedder.feed([x])[0] for x in ids]
    measure(call, feeds, 0, len(feeds), 0.0, math.inf)  # untimed: arena, caches, lazy initialisation
    with LoadMonitor() as load:
        passes = [measure(call, feeds, 0, len(feeds), 0.0, math.inf)[0] for _ in range(job.passes)]
    times = np.asarray(passes) * 1e3
    return {"per_text_ms": np.median(times, axis=0).tolist(), "pass_ms": times.sum(axis=1).tolist(),
            "load": load.result, "peak_rss_bytes": peak_rss_bytes(), "session_create_s": embedder.runner.create_seconds,
            "environment": environment(embedder.runner, s.intra_op_threads, s.inter_op_threads)}


def _child(conn, job: Job) -> None:
    try:
        conn.send(("ok", time_model(job)))
    except UserError as exc:
        conn.send(("error", str(exc)))
    except BaseException as exc:  # the parent turns it into one line naming the model
        conn.send(("error", f"{job.name}: timing process failed: {type(exc).__name__}: {first_line(exc)}"))
    finally:
        conn.close()


def in_fresh_process(job: Job) -> dict:
    """`time_model(job)` in a new interpreter (spawn: its own address-space layout and memory
    placement, nothing inherited from this process), one at a time."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, job), daemon=True)
    proc.start()
    child.close()
    try:
        status, payload = parent.recv()
    except EOFError:
        proc.join()
        raise UserError(f"{job.name}: timing process died (exit code {proc.exitcode}; out of memory?)") from None
    finally:
        parent.close()
    proc.join()
    if status == "error":
        raise UserError(payload)
    return payload


def run_schedule(plan: list[list[tuple[str, str]]], make_job, label: str | None = None,
                 runner=in_fresh_process) -> list[dict]:
    """Every process of every block, in order: (block, position, role, model, seconds since the
    first process started, its result). `runner(job)` is in_fresh_process (tests may pass another)."""
    total = sum(len(b) for b in plan)
    progress = Progress(total, label or "speedup", unit="process", enabled=label is not None)
    start, out = time.monotonic(), []
    for b, block in enumerate(plan):
        for pos, (role, name) in enumerate(block):
            began = time.monotonic() - start
            out.append({"block": b, "position": pos, "role": role, "model": name, "started_s": began,
                        **runner(make_job(name))})
            progress.update()
    progress.close()
    return out


def _geomean_texts(rows: list[dict]) -> np.ndarray:
    """Per text, the geometric mean of several processes' times."""
    return np.exp(np.mean(np.log([r["per_text_ms"] for r in rows]), axis=0))


def block_estimates(processes: list[dict], role: str, name: str, states: dict | None = None) -> list[dict]:
    """One estimate per entry of `name` in `role` (one per block): reference time / its time, per
    text, geometric mean over texts; the reference side the per-text geometric mean of the
    reference processes right before and after it in its block. `states` (speed_states) gives
    each estimate the state of those neighbours: fast or slow when both agree, else mixed."""
    ref_at = {(p["block"], p["position"]): p for p in processes if p["role"] == "reference"}
    state_of = dict(zip(states["processes_at"], states["processes"])) if states else {}
    out = []
    for p in processes:
        if p["role"] != role or p["model"] != name:
            continue
        b, pos = p["block"], p["position"]
        near = [ref_at[k] for k in ((b, pos - 1), (b, pos + 1)) if k in ref_at]
        if not near:
            continue
        ref_t, my_t = _geomean_texts(near), _geomean_texts([p])
        seen = {state_of.get((q["block"], q["position"]), "one") for q in near}
        out.append({"block": b, "speedup": float(np.exp(np.mean(np.log(ref_t / my_t)))),
                    "reference_ms": float(np.median(ref_t)), "model_ms": float(np.median(my_t)),
                    "state": seen.pop() if len(seen) == 1 else "mixed"})
    return out


def t_interval(log_estimates, confidence: float) -> tuple[float, float | None, float | None]:
    """Geometric mean of independent estimates and its Student t interval, on the log scale
    (ratios are log-normal-ish); None bounds when there are fewer than 2 estimates."""
    from scipy import stats

    logs = np.asarray(log_estimates, dtype=np.float64)
    mean = float(logs.mean())
    if len(logs) < 2:
        return math.exp(mean), None, None
    half = stats.t.ppf(0.5 + confidence / 2, len(logs) - 1) * logs.std(ddof=1) / math.sqrt(len(logs))
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)


def rerun_interval(log_estimates, confidence: float) -> tuple[float | None, float | None]:
    """Where another run's estimate (a mean of as many blocks) should land: the prediction interval
    for the difference of two means, sqrt(2) wider than the interval for the mean. A correct 95%
    interval for the mean holds a rerun's estimate only about 87% of the time over 6 blocks (83%
    over many)."""
    from scipy import stats

    logs = np.asarray(log_estimates, dtype=np.float64)
    if len(logs) < 2:
        return None, None
    half = stats.t.ppf(0.5 + confidence / 2, len(logs) - 1) * logs.std(ddof=1) * math.sqrt(2 / len(logs))
    return math.exp(logs.mean() - half), math.exp(logs.mean() + half)


def variance_components(groups: list[list[float]]) -> dict:
    """Between- and within-group standard deviations of log values (one-way random effects,
    method of moments). With groups = processes and values = their passes' log times, this says
    where the variance is, which decides whether to add processes or passes inside them (Kalibera
    and Jones). Groups of unequal size use the smallest size (the schedule makes them equal)."""
    g = [np.asarray(x, dtype=np.float64) for x in groups if len(x)]
    if len(g) < 2 or min(len(x) for x in g) < 2:
        return {"between_sd": None, "within_sd": None}
    n = min(len(x) for x in g)
    within = float(np.mean([x.var(ddof=1) for x in g]))
    means = np.array([x.mean() for x in g])
    between = max(float(means.var(ddof=1)) - within / n, 0.0)
    return {"between_sd": math.sqrt(between), "within_sd": math.sqrt(within)}


STATE_GAP = 0.15  # processes in one state differ by a few %; the dev VM's two states, by 40 %


def _two_groups(logs: np.ndarray) -> int | None:
    """Where sorted log times split best into two groups (least squares within them, as Otsu's
    threshold): the index of the first slow one; None when the best split leaves a group of one
    (an outlier, not a state) or there are fewer than 4."""
    if len(logs) < 4:
        return None
    cost = [logs[:i].var() * i + logs[i:].var() * (len(logs) - i) for i in range(1, len(logs))]
    i = 1 + int(np.argmin(cost))
    return i if 2 <= i <= len(logs) - 2 else None


def speed_states(processes: list[dict], reference: str) -> dict:
    """The machine's speed states as the reference model saw them: each of its processes' median
    time per text (the reference's and the control's), split where two groups fit best (a process
    that straddles a change lands between them, so the largest gap would not find it) when their
    medians differ by more than STATE_GAP and each holds two processes or more (one outlier is not
    a state). `processes` lists each one's state in run order ('one' when there was one state)."""
    mine = [p for p in processes if p["model"] == reference]
    ms = np.array([float(np.median(p["per_text_ms"])) for p in mine])
    out = {"reference_ms": {"min": float(ms.min()), "median": float(np.median(ms)), "max": float(ms.max())},
           "gap": STATE_GAP, "threshold_ms": None, "state_ms": None}
    logs = np.sort(np.log(ms))
    i = _two_groups(logs)
    if i is not None and np.median(logs[i:]) - np.median(logs[:i]) > math.log1p(STATE_GAP):
        out["threshold_ms"] = float(np.exp((logs[i - 1] + logs[i]) / 2))
        out["state_ms"] = {"fast": float(np.exp(np.median(logs[:i]))), "slow": float(np.exp(np.median(logs[i:])))}
    limit = out["threshold_ms"]
    out["processes"] = ["one" if limit is None else "slow" if t > limit else "fast" for t in ms]
    out["processes_at"] = [(p["block"], p["position"]) for p in mine]
    return out


def by_state(estimates: list[dict]) -> dict:
    """A candidate's speedup in each state the machine was seen in (its estimates whose reference
    neighbours were both in that state)."""
    out = {}
    for state in ("fast", "slow"):
        logs = [math.log(e["speedup"]) for e in estimates if e["state"] == state]
        if logs:
            out[state] = {"blocks": len(logs), "speedup": math.exp(float(np.mean(logs)))}
    return out


def _combined_load(loads: list[dict], tolerance: float) -> Load:
    """Other processes' CPU over all timed passes of several processes, as one share of all cores."""
    seconds = sum(x["seconds"] for x in loads)
    cores = loads[0]["cores"]
    others = sum(x["other_cpu_s"] for x in loads)
    frac = others / (seconds * cores) if seconds >= 0.5 else None
    return Load(seconds=seconds, cores=cores, own_cpu_s=sum(x["own_cpu_s"] for x in loads), other_cpu_s=others,
                other_fraction=frac, tolerance=tolerance, busy=bool(frac is not None and frac > tolerance))


METHOD = ("one model per fresh process; blocks of processes run one at a time: the control and every candidate "
          "once, shuffled, with a reference process before, between and after them; per entry the geometric mean "
          "over texts of (time of the reference processes beside it / its time); Student t interval over blocks")


def speedup_results(processes: list[dict], reference: str, confidence: float, tolerance: float,
                    machine: dict | None = None) -> dict[str, Speedup]:
    """Each model's speedup over the reference from the processes of one schedule: the reference's
    entry is the A/A control (its timings as a candidate against its timings as the reference).
    `machine`: the timing facts of the machine that ran them, recorded in each document."""
    states = speed_states(processes, reference)
    passes = len(processes[0]["pass_ms"])
    ref_env = next(p["environment"] for p in processes if p["role"] == "reference")
    out = {}
    for name in dict.fromkeys(p["model"] for p in processes):  # schedule order, each once
        role = CONTROL if name == reference else "candidate"
        mine = [p for p in processes if p["model"] == name and p["role"] == role]
        blocks = block_estimates(processes, role, name, states)
        logs = [math.log(b["speedup"]) for b in blocks]
        point, lo, hi = t_interval(logs, confidence)
        rerun_lo, rerun_hi = rerun_interval(logs, confidence)
        out[name] = Speedup(
            model=name, reference=reference, control=name == reference,
            speedup=point, ci_low=lo, ci_high=hi, rerun_low=rerun_lo, rerun_high=rerun_hi, confidence=confidence,
            measurable=bool(lo is not None and (lo > 1.0 or hi < 1.0)),
            method=METHOD, texts=len(mine[0]["per_text_ms"]), passes=passes,
            blocks=[BlockEstimate(**b) for b in blocks],
            by_state={state: StateSpeed(**v) for state, v in by_state(blocks).items()},
            variance=Variance(**variance_components([np.log(p["pass_ms"]) for p in mine])),
            processes=_processes(mine),
            load=_combined_load([p["load"] for p in mine], tolerance),
            memory={"peak_rss_bytes": max(p["peak_rss_bytes"] for p in mine)},
            environment=mine[0]["environment"], reference_runtime=ref_env.runtime, machine=machine,
        )
    control = out[reference]
    control.states = States(**{k: v for k, v in states.items() if k not in ("processes_at", "reference_ms")},
                            reference_ms=Spread(**states["reference_ms"]))
    control.schedule = [[f"{p['role']}:{p['model']}" for p in processes if p["block"] == b]
                        for b in sorted({p["block"] for p in processes})]
    control.reference_processes = _processes([p for p in processes if p["role"] == "reference"])
    control.seconds = processes[-1]["started_s"]
    return out


PROCESS_KEYS = ("block", "position", "started_s", "pass_ms", "peak_rss_bytes", "session_create_s")


def _processes(rows: list[dict]) -> list[Process]:
    return [Process(**{k: p[k] for k in PROCESS_KEYS}, other_fraction=p["load"].get("other_fraction")) for p in rows]


def speed_headline(results: dict[str, Speedup]) -> SpeedHeadlines:
    """What DVC shows (`metrics diff`, `exp show`): each candidate's speedup and its interval under
    the model's name, so the columns read `int8-pc.speedup`; the A/A control stays in its file."""
    def r(x):
        return None if x is None else round(x, 3)
    return SpeedHeadlines(models={name: SpeedHeadline(speedup=r(x.speedup), speedup_low=r(x.ci_low),
                                                      speedup_high=r(x.ci_high))
                                  for name, x in results.items() if not x.control})
