"""Latency and throughput of one model on real corpus texts, with the facts needed to trust them.

Inputs are tokenized and fed arrays built before any clock starts; only the runner's `run` is timed
(runtimes.py: the same for every runtime).
The loop runs warmup calls untimed, then until both a minimum count and a minimum duration are
reached (a maximum duration caps slow models, and the result says so). Throughput points are
whole passes over a text set: one untimed pass, then `throughput_repeats` timed ones (median).
"""
from __future__ import annotations

import functools
import hashlib
import json
import platform
import time
from dataclasses import dataclass

import numpy as np

from .documents.benchmark import Benchmark, LatencyB1, Memory, Pass, Repeatability, SweepPoint, Throughput
from .documents.common import Environment, Facts
from .errors import UserError
from .machine import LoadMonitor
from .memory import peak_rss_bytes
from .progress import Progress


@dataclass(frozen=True)
class Latency:
    """Summary of timing samples in milliseconds; std is the sample std (ddof=1)."""

    samples_ms: tuple

    @classmethod
    def from_seconds(cls, samples) -> Latency:
        return cls(tuple(float(s) * 1e3 for s in samples))

    def summary(self) -> dict:
        a = np.asarray(self.samples_ms, dtype=np.float64)
        if a.size == 0:
            return {"count": 0}
        p50, p90, p99 = np.percentile(a, [50, 90, 99])
        return {"count": int(a.size), "mean_ms": float(a.mean()), "std_ms": float(a.std(ddof=1)) if a.size > 1 else 0.0,
                "min_ms": float(a.min()), "max_ms": float(a.max()), "p50_ms": float(p50), "p90_ms": float(p90),
                "p99_ms": float(p99)}


def measure(call, inputs: list, warmup: int, min_iterations: int, min_seconds: float,
            max_seconds: float) -> tuple[list[float], bool]:
    """Seconds of each `call(x)`, x cycling through `inputs` (sample j gets inputs[(warmup + j) % n]).

    Only the call sits between the two clock reads; the input is picked before. Returns
    (samples, capped): capped when max_seconds stopped the loop before the minimums were met.
    """
    n = len(inputs)
    for j in range(warmup):
        call(inputs[j % n])
    samples: list[float] = []
    clock = time.perf_counter
    start = clock()
    while True:
        elapsed = clock() - start
        if len(samples) >= min_iterations and elapsed >= min_seconds:
            return samples, False
        if elapsed >= max_seconds and len(samples) >= 3:
            return samples, True
        x = inputs[(warmup + len(samples)) % n]
        t0 = clock()
        call(x)
        samples.append(clock() - t0)


def timing_call(embedder):
    """`call(feed)` running the model on one prebuilt feed: all a timed region holds.
    Models with a fixed batch size are refused: the timing plans use batch sizes of their own."""
    if embedder.fixed_batch:
        raise UserError(f"{embedder.runner.model_file}: timing a model with a fixed batch size "
                        f"({embedder.fixed_batch}) is not supported; export it with a dynamic batch axis")
    return functools.partial(embedder.runner.run, [embedder.pooling.output])


def repeatability(first, second, tolerance: float) -> Repeatability:
    """Two back-to-back runs over the same texts: how far apart are their medians?

    Compared on the common prefix, so both medians cover the same texts. Above `tolerance` the
    machine was not quiet enough, and the report says the measurement is noisy.
    """
    n = min(len(first), len(second))
    a, b = float(np.median(first[:n])), float(np.median(second[:n]))
    diff = abs(a - b) / min(a, b)
    return Repeatability(median_ms_run1=a * 1e3, median_ms_run2=b * 1e3, relative_difference=diff,
                         tolerance=tolerance, noisy=bool(diff > tolerance))


def environment(runner, intra: int, inter: int) -> Environment:
    """What else a reader needs to judge a timing, beside the machine facts (which are a
    dependency, machine.py): the runtime, device and precision that really ran, threads, memory,
    OS, versions."""
    import psutil

    return Environment(provider=runner.device, runtime=runner.facts(),
                       intra_op_threads=intra if intra else f"{runner.runtime} default",
                       inter_op_threads=inter if inter else f"{runner.runtime} default",
                       memory_bytes=psutil.virtual_memory().total, os=platform.platform(),
                       python=platform.python_version(), numpy=np.__version__)


def synthetic_ids(pool: list[list[int]], length: int) -> list[int]:
    """Exactly `length` real token ids, taken by concatenating corpus texts (no random tokens)."""
    if not any(pool):
        raise ValueError("synthetic_ids needs at least one non-empty token sequence")
    flat: list[int] = []
    for ids in pool:
        flat.extend(ids)
        if len(flat) >= length:
            break
    while len(flat) < length:
        flat.extend(flat)
    return flat[:length]


def run_benchmark(embedder, code_ids: list[list[int]], settings, model: str, machine: Facts | None, seed: int = 0,
                  label: str | None = None) -> Benchmark:
    """Batch-1 latency over real texts, throughput per batch size sorted vs unsorted, a length sweep,
    and how much CPU other processes used meanwhile (a busy machine's numbers are flagged): the
    benchmark document of `model`, timed on `machine` (its timing facts). `label`: show progress."""
    import psutil

    s = settings
    rng = np.random.default_rng(seed)
    call = timing_call(embedder)
    rss_loaded = psutil.Process().memory_info().rss
    steps = 2 + 2 * len(s.batch_sizes) + 2 * len(s.seq_lengths)  # latency runs, throughput, sweep points
    progress = Progress(steps, f"benchmark {label}", unit="measurement", enabled=label is not None)
    with LoadMonitor() as load:
        latency, throughput, sweep = _timed_runs(embedder, call, code_ids, s, rng, progress)
    progress.close()
    return Benchmark(model=model, machine=machine,
                     environment=environment(embedder.runner, s.intra_op_threads, s.inter_op_threads),
                     session_create_s=embedder.runner.create_seconds,
                     memory=Memory(rss_after_load_bytes=int(rss_loaded), peak_rss_bytes=peak_rss_bytes()),
                     load=load.summary(s.busy_tolerance), latency_b1=latency, throughput=throughput,
                     sweep=sweep)


def _timed_runs(embedder, call, code_ids: list[list[int]], s, rng,
                progress: Progress) -> tuple[LatencyB1, list[Throughput], list[SweepPoint]]:
    # 1. batch-1 latency, cycling through a fixed sample of real texts: sample j times text
    #    pick[(warmup + j) % len(pick)], so two models' runs pair up text by text
    pick = rng.choice(len(code_ids), size=min(s.latency_texts, len(code_ids)), replace=False)
    feeds = [embedder.feed([code_ids[i]])[0] for i in pick]
    samples, capped = measure(call, feeds, s.warmup, s.min_iterations, s.min_seconds, s.max_seconds)
    progress.update()
    # the same measurement again, back to back: sample j of both runs is the same text
    repeat, _ = measure(call, feeds, s.warmup, s.min_iterations, s.min_seconds, s.max_seconds)
    progress.update()
    latency = LatencyB1(**Latency.from_seconds(samples).summary(), capped=capped, texts=len(feeds),
                        text_order_sha256=hashlib.sha256(
                            json.dumps([s.warmup, [code_ids[i] for i in pick]]).encode()).hexdigest(),
                        mean_tokens=float(np.mean([len(code_ids[i]) for i in pick])),
                        repeatability=repeatability(samples, repeat, s.noise_tolerance),
                        samples_ms=[x * 1e3 for x in samples], samples_ms_repeat=[x * 1e3 for x in repeat])

    # 2. throughput: one pass over the same texts, length-sorted vs corpus order
    subset = [code_ids[i] for i in rng.permutation(len(code_ids))[:s.throughput_texts]]
    real_tokens = sum(len(x) for x in subset)
    throughput = []
    for bs in s.batch_sizes:
        passes = {}
        for order, sort in (("sorted", True), ("unsorted", False)):
            groups = embedder.batches(subset, int(bs), sort=sort)
            pass_feeds = [embedder.feed([subset[i] for i in g])[0] for g in groups]
            padded = sum(f["input_ids"].size for f in pass_feeds)
            def one_pass(feeds):
                for f in feeds:
                    call(f)
            times, _ = measure(one_pass, [pass_feeds], 1, s.throughput_repeats, 0.0, s.max_seconds)
            sec = float(np.median(times))
            passes[order] = Pass(seconds=sec, texts_per_s=len(subset) / sec, tokens_per_s=real_tokens / sec,
                                 padding_fraction=1 - real_tokens / padded)
            progress.update()
        throughput.append(Throughput(batch_size=int(bs), **passes,
                                     sort_speedup=passes["unsorted"].seconds / passes["sorted"].seconds))

    # 3. sequence-length sweep on real tokens, at batch 1 and at a larger batch
    sweep = []
    max_len = embedder.tokenizer.max_length
    for length in s.seq_lengths:
        for bs in (1, s.sweep_batch_size):
            at = {"seq_len": int(length), "batch_size": int(bs)}
            if embedder.fixed_seq and length != embedder.fixed_seq:
                point = SweepPoint(**at, skipped=f"model input has a fixed sequence length {embedder.fixed_seq}")
            elif embedder.fixed_batch and bs != embedder.fixed_batch:
                point = SweepPoint(**at, skipped=f"model input has a fixed batch size {embedder.fixed_batch}")
            elif length > max_len:
                point = SweepPoint(**at, skipped=f"beyond max_length {max_len}")
            else:
                ids = synthetic_ids(code_ids, int(length))
                feed = embedder.feed([ids] * int(bs))[0]
                times, capped = measure(call, [feed], s.warmup, s.min_iterations, s.min_seconds, s.max_seconds)
                summary = Latency.from_seconds(times).summary()
                point = SweepPoint(**at, **summary, capped=capped,
                                   tokens_per_s=bs * length / (summary["mean_ms"] / 1e3))
            sweep.append(point)
            progress.update()

    return latency, throughput, sweep
