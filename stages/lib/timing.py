"""Speedups that survive a rerun: every model timed in fresh processes, interleaved over time.

Measured on the 2-core dev VM (docs/timing.md): timings vary more between processes than between
rounds inside one, and the machine has speed states lasting from one process to minutes that a
guest cannot see (the reference ran at about 5.3 or 7.5 ms per text, and int8-pc's speedup was
about 2.2 in one and 1.85 in the other). An interval from rounds inside one process is silent
about both. So:

- One model per process, as deployed: two sessions in one process slowed each other (the
  candidate more than the reference), and at 1.5B parameters two models in one process double
  the memory. Each process loads its model, tokenizes the texts, runs one untimed pass, then
  `passes` timed passes; a text's time is its median over the passes.
- Processes run one at a time in blocks. A block times the control (the reference again, timed as
  a candidate: the A/A control) and every candidate once each, in a shuffled order, with a process
  of the reference before, between and after them: R e1 R e2 ... R en R, so each entry has
  reference processes a few seconds away and a linear drift cancels. (The first version put the
  reference only at a block's two ends, about 40 s apart: the A/A control's interval was +-23%.)
- Each process ran in the machine's fast state or was slowed from outside, and the share of slowed
  ones changed from run to run (9 % to 65 %). So each process is told fast or slow against its own
  model's fast level (fast_flags), and the headline compares each model's fast processes with the
  nearest fast reference processes: the geometric mean over texts of (reference time / its time),
  a Student t interval whose spread is pooled over every model's fast entries (the processes and
  blocks are the independent units, Kalibera and Jones, ISMM 2013). The slow state's speedup and
  the run's mix (every entry against its two neighbours, t over blocks) are kept beside it.
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
    MixSpeed,
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


def level_ms(process: dict) -> float:
    """A process's speed as one number: the geometric mean over texts of its time per text."""
    return float(np.exp(np.mean(np.log(process["per_text_ms"]))))


STATE_GAP = 0.15  # processes in one state differ by a few %; the dev VM's slow state is 40-65 % slower


def fast_flags(levels) -> np.ndarray:
    """Which processes of one model ran in the machine's fast state: those within STATE_GAP of the
    model's fast level, the median of its processes within STATE_GAP of its fastest. Anchored on a
    median, not on the fastest process, so a model with 54 processes and one with 6 are cut alike
    (the fastest of 54 lies further out). A slowdown comes from outside the process and only ever
    adds time, so the fast state is the lower end, whatever share of the run it held."""
    logs = np.log(np.asarray(levels, dtype=np.float64))
    gap = math.log1p(STATE_GAP)
    fast_level = np.median(logs[logs <= logs.min() + gap])
    return logs <= fast_level + gap


def process_states(processes: list[dict]) -> list[str]:
    """Each process's state ('fast' or 'slow'), in run order, by fast_flags over its own model's
    processes (the reference's: its reference and control processes together)."""
    out = [""] * len(processes)
    for name in dict.fromkeys(p["model"] for p in processes):
        idx = [i for i, p in enumerate(processes) if p["model"] == name]
        for i, fast in zip(idx, fast_flags([level_ms(processes[i]) for i in idx])):
            out[i] = "fast" if fast else "slow"
    return out


def speed_states(processes: list[dict], reference: str) -> dict:
    """The machine's speed states as the reference model saw them: its processes' levels (ms per
    text), each process fast or slow by fast_flags (a process that straddles a change is slow when
    it lost more than STATE_GAP). Two states (threshold_ms, state_ms) when two processes or more
    were slow; one slow process is an outlier, not a state (it is still left out of the fast
    figure)."""
    mine = [p for p in processes if p["model"] == reference]
    ms = np.array([level_ms(p) for p in mine])
    fast = fast_flags(ms)
    out = {"reference_ms": {"min": float(ms.min()), "median": float(np.median(ms)), "max": float(ms.max())},
           "gap": STATE_GAP, "threshold_ms": None, "state_ms": None,
           "processes": ["fast" if f else "slow" for f in fast]}
    if (~fast).sum() >= 2:
        out["threshold_ms"] = float(ms[fast].max() + (ms[~fast].min() - ms[fast].max()) / 2)
        out["state_ms"] = {"fast": float(np.median(ms[fast])), "slow": float(np.median(ms[~fast]))}
    return out


def entry_estimates(processes: list[dict], role: str, name: str, states: list[str]) -> list[dict]:
    """One estimate per entry of `name` in `role` (one per block), each a geometric mean over texts
    of reference time / its time. `speedup`: against the reference processes right before and
    after it, whatever their state (this run's mix). `state_speedup`: against the nearest reference
    processes before and after it that ran in the entry's own state (`states`: process_states), so
    a fast entry is compared with fast reference processes; None when the run has none."""
    refs = [i for i, p in enumerate(processes) if p["role"] == "reference"]
    out = []
    for k, p in enumerate(processes):
        if p["role"] != role or p["model"] != name:
            continue
        near = [processes[i] for i in refs if processes[i]["block"] == p["block"]
                and abs(processes[i]["position"] - p["position"]) == 1]
        if not near:
            continue
        same = [i for i in refs if states[i] == states[k]]
        before, after = [i for i in same if i < k][-1:], [i for i in same if i > k][:1]
        my_t = _geomean_texts([p])
        ref_t = _geomean_texts(near)
        entry = {"block": p["block"], "speedup": float(np.exp(np.mean(np.log(ref_t / my_t)))),
                 "reference_ms": float(np.median(ref_t)), "model_ms": float(np.median(my_t)), "state": states[k],
                 "state_speedup": None}
        if before or after:
            same_t = _geomean_texts([processes[i] for i in before + after])
            entry["state_speedup"] = float(np.exp(np.mean(np.log(same_t / my_t))))
        out.append(entry)
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


def pooled_intervals(groups: dict[str, list[float]], confidence: float) -> dict[str, dict]:
    """Per group of log ratios (one group per model: its entries in one state), the geometric mean
    with a Student t interval whose spread is pooled over all the groups (one-way ANOVA's residual
    standard deviation, sum(n - 1) degrees of freedom): every model's processes in a state share
    the machine's noise, so a model that ran only one or two processes in the fast state still gets
    an honest interval. `rerun_low/high`: where another run's mean of as many entries should land
    (sqrt(2) wider). Bounds are None when no group has two entries; empty groups are left out."""
    from scipy import stats

    logs = {k: np.asarray(v, dtype=np.float64) for k, v in groups.items() if len(v)}
    df = sum(len(v) - 1 for v in logs.values())
    sd = math.sqrt(sum(float(((v - v.mean()) ** 2).sum()) for v in logs.values()) / df) if df else None
    out = {}
    for k, v in logs.items():
        m = float(v.mean())
        row = {"entries": len(v), "speedup": math.exp(m), "ci_low": None, "ci_high": None,
               "rerun_low": None, "rerun_high": None}
        if sd is not None:
            half = stats.t.ppf(0.5 + confidence / 2, df) * sd / math.sqrt(len(v))
            row.update(ci_low=math.exp(m - half), ci_high=math.exp(m + half),
                       rerun_low=math.exp(m - half * math.sqrt(2)), rerun_high=math.exp(m + half * math.sqrt(2)))
        out[k] = row
    return out


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


def _combined_load(loads: list[dict], tolerance: float) -> Load:
    """Other processes' CPU over all timed passes of several processes, as one share of all cores."""
    seconds = sum(x["seconds"] for x in loads)
    cores = loads[0]["cores"]
    others = sum(x["other_cpu_s"] for x in loads)
    frac = others / (seconds * cores) if seconds >= 0.5 else None
    return Load(seconds=seconds, cores=cores, own_cpu_s=sum(x["own_cpu_s"] for x in loads), other_cpu_s=others,
                other_fraction=frac, tolerance=tolerance, busy=bool(frac is not None and frac > tolerance))


METHOD = ("one model per fresh process; blocks of processes run one at a time: the control and every candidate "
          "once, shuffled, with a reference process before, between and after them; each process fast or slow by "
          "its time against its own model's fast level; speedup: per fast entry the geometric mean over texts of "
          "(time of the nearest fast reference processes / its time), Student t interval with the spread pooled "
          "over all models; mix: per entry against the reference processes beside it, t interval over blocks")


def _state_figures(entries: dict[str, list[dict]], state: str, confidence: float) -> dict[str, dict]:
    """Every model's speedup in one state, from its entries that ran in it (pooled_intervals)."""
    return pooled_intervals({name: [math.log(e["state_speedup"]) for e in es
                                    if e["state"] == state and e["state_speedup"] is not None]
                             for name, es in entries.items()}, confidence)


def speedup_results(processes: list[dict], reference: str, confidence: float, tolerance: float,
                    machine: dict | None = None) -> dict[str, Speedup]:
    """Each model's speedup over the reference from the processes of one schedule: the reference's
    entry is the A/A control (its timings as a candidate against its timings as the reference).

    The headline is the speedup in the machine's fast state. On the dev VM each process ran in the
    fast or the slow state and the share of slow ones went from 9 % to 65 % between runs minutes
    apart, so a speedup over every process (`mix`, kept) moved with that share; the fast-state
    one moved by about 2 % (docs/timing.md). The slow state's speedup is in `by_state`. When a
    model has no fast entry to compare (only in schedules too short to have fast reference
    processes), the headline is the mix and `figure` says so.
    `machine`: the timing facts of the machine that ran them, recorded in each document."""
    states = speed_states(processes, reference)
    each = process_states(processes)
    passes = len(processes[0]["pass_ms"])
    ref_env = next(p["environment"] for p in processes if p["role"] == "reference")
    names = list(dict.fromkeys(p["model"] for p in processes))  # schedule order, each once
    role = {name: CONTROL if name == reference else "candidate" for name in names}
    entries = {name: entry_estimates(processes, role[name], name, each) for name in names}
    per_state = {state: _state_figures(entries, state, confidence) for state in ("fast", "slow")}
    out = {}
    for name in names:
        mine = [p for p in processes if p["model"] == name and p["role"] == role[name]]
        logs = [math.log(e["speedup"]) for e in entries[name]]
        mix_point, mix_lo, mix_hi = t_interval(logs, confidence)
        mix = {"speedup": mix_point, "ci_low": mix_lo, "ci_high": mix_hi}
        fast = per_state["fast"].get(name)
        if fast is not None:
            head = {k: fast[k] for k in ("speedup", "ci_low", "ci_high", "rerun_low", "rerun_high")}
        else:
            head = dict(mix, **dict(zip(("rerun_low", "rerun_high"), rerun_interval(logs, confidence))))
        lo, hi = head["ci_low"], head["ci_high"]
        out[name] = Speedup(
            model=name, reference=reference, control=name == reference, **head, confidence=confidence,
            figure="fast" if fast is not None else "mix", measurable=bool(lo is not None and (lo > 1.0 or hi < 1.0)),
            method=METHOD, texts=len(mine[0]["per_text_ms"]), passes=passes,
            blocks=[BlockEstimate(**e) for e in entries[name]],
            by_state={state: StateSpeed(**per_state[state][name]) for state in per_state if name in per_state[state]},
            mix=MixSpeed(**mix),
            variance=Variance(**variance_components([np.log(p["pass_ms"]) for p in mine])),
            processes=_processes(mine),
            load=_combined_load([p["load"] for p in mine], tolerance),
            memory={"peak_rss_bytes": max(p["peak_rss_bytes"] for p in mine)},
            environment=mine[0]["environment"], reference_runtime=ref_env.runtime, machine=machine,
        )
    control = out[reference]
    control.states = States(**{k: v for k, v in states.items() if k != "reference_ms"},
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
