"""stages/lib/benchmarking.py: summaries, the measuring loop (by counting calls, never by timing), CPU facts."""
from __future__ import annotations

import math
import platform
import statistics
import time

import numpy as np
import onnxruntime
import pytest

from stages.lib import benchmarking
from stages.lib.benchmarking import Latency, environment, measure, synthetic_ids
from stages.lib.runtimes import open_runner
from tests import tiny


def linear_percentile(values, q):
    v = sorted(values)
    pos = (len(v) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


# ---------------------------------------------------------------- Latency

def test_latency_summary_by_hand():
    seconds = [0.010, 0.012, 0.011, 0.030, 0.009]
    ms = [10.0, 12.0, 11.0, 30.0, 9.0]
    s = Latency.from_seconds(seconds).summary()
    assert s["count"] == 5
    assert s["mean_ms"] == pytest.approx(72.0 / 5)
    # sample variance: sum((x - 14.4)^2) / 4
    var = sum((x - 14.4) ** 2 for x in ms) / 4
    assert s["std_ms"] == pytest.approx(math.sqrt(var))
    assert s["std_ms"] == pytest.approx(statistics.stdev(ms))
    assert s["min_ms"] == pytest.approx(9.0)
    assert s["max_ms"] == pytest.approx(30.0)
    # sorted: 9, 10, 11, 12, 30 -> p50 = 11; p90 at position 3.6 = 12 + 0.6 * 18; p99 at 3.96
    assert s["p50_ms"] == pytest.approx(11.0)
    assert s["p90_ms"] == pytest.approx(12 + 0.6 * 18)
    assert s["p99_ms"] == pytest.approx(12 + 0.96 * 18)
    for q in (50, 90, 99):
        assert s[f"p{q}_ms"] == pytest.approx(np.percentile(ms, q))
        assert s[f"p{q}_ms"] == pytest.approx(linear_percentile(ms, q))


def test_latency_converts_seconds_to_milliseconds():
    lat = Latency.from_seconds(np.array([0.5, 0.25]))
    assert lat.samples_ms == (500.0, 250.0)
    assert all(type(x) is float for x in lat.samples_ms)


def test_latency_single_sample_and_empty():
    s = Latency.from_seconds([0.002]).summary()
    assert s["count"] == 1 and s["std_ms"] == 0.0
    assert s["mean_ms"] == s["min_ms"] == s["max_ms"] == s["p50_ms"] == s["p99_ms"] == pytest.approx(2.0)
    assert Latency.from_seconds([]).summary() == {"count": 0}


# ---------------------------------------------------------------- measure

class Counter:
    def __init__(self, sleep: float = 0.0):
        self.calls = 0
        self.sleep = sleep

    def __call__(self, _x=None):
        self.calls += 1
        if self.sleep:
            time.sleep(self.sleep)


@pytest.mark.parametrize("warmup,min_iterations", [(0, 1), (3, 7), (10, 50), (5, 0)])
def test_measure_calls_warmup_plus_min_iterations(warmup, min_iterations):
    fn = Counter()
    samples, capped = measure(fn, [None], warmup=warmup, min_iterations=min_iterations, min_seconds=0.0,
                              max_seconds=60.0)
    assert fn.calls == warmup + min_iterations
    assert len(samples) == min_iterations
    assert capped is False
    assert all(isinstance(x, float) and x >= 0 for x in samples)


def test_measure_cap_stops_early_with_at_least_three_samples():
    fn = Counter(sleep=0.001)
    samples, capped = measure(fn, [None], warmup=2, min_iterations=10**9, min_seconds=0.0, max_seconds=0.005)
    assert capped is True
    assert len(samples) >= 3
    assert fn.calls == 2 + len(samples)
    assert len(samples) < 10**9


def test_measure_cap_of_zero_still_takes_three_samples():
    fn = Counter()
    samples, capped = measure(fn, [None], warmup=0, min_iterations=100, min_seconds=10.0, max_seconds=0.0)
    assert capped is True
    assert len(samples) == 3 and fn.calls == 3


# ---------------------------------------------------------------- environment

def test_environment_fields(tmp_path):
    tiny.build_model(tmp_path / "m")
    env = environment(open_runner(tmp_path / "m"), 4, 0).to_dict()
    assert env["provider"] == "CPUExecutionProvider"
    assert env["runtime"]["runtime"] == "onnxruntime" and env["runtime"]["version"] == onnxruntime.__version__
    assert env["intra_op_threads"] == 4
    assert isinstance(env["inter_op_threads"], str) and "default" in env["inter_op_threads"]
    assert env["os"] == platform.platform()
    assert env["memory_bytes"] > 0


def test_peak_rss_is_positive():
    assert benchmarking.peak_rss_bytes() > 1 << 20


# ---------------------------------------------------------------- synthetic_ids

def test_synthetic_ids_prefix_of_real_ids():
    pool = [[101, 5, 6, 7, 102], [101, 8, 9, 102], [101, 10, 11, 12, 13, 102]]
    concat = [t for ids in pool for t in ids]
    for length in (1, 4, 5, 9, 15):
        out = synthetic_ids(pool, length)
        assert len(out) == length
        assert out == concat[:length]


def test_synthetic_ids_tiles_a_short_pool():
    pool = [[1, 2, 3], [4, 5]]
    concat = [1, 2, 3, 4, 5]
    for length in (6, 11, 16, 64):
        out = synthetic_ids(pool, length)
        assert len(out) == length
        assert out == [concat[i % len(concat)] for i in range(length)]
        assert set(out) <= set(concat)


def test_synthetic_ids_random_pools():
    rng = np.random.default_rng(0)
    for _ in range(30):
        pool = [list(rng.integers(0, 1000, size=int(rng.integers(1, 9)))) for _ in range(int(rng.integers(1, 5)))]
        concat = [t for ids in pool for t in ids]
        length = int(rng.integers(1, 80))
        out = synthetic_ids(pool, length)
        assert len(out) == length
        assert out == [concat[i % len(concat)] for i in range(length)]


def test_synthetic_ids_refuses_an_empty_pool():
    for pool in ([], [[]]):
        with pytest.raises(ValueError, match="non-empty"):
            synthetic_ids(pool, 5)


def test_measure_cycles_inputs_after_warmup():
    seen = []
    samples, _ = measure(seen.append, ["a", "b", "c"], warmup=2, min_iterations=4, min_seconds=0.0, max_seconds=60.0)
    assert seen == ["a", "b", "c", "a", "b", "c"]  # warmup a, b; then samples start at input 2 ("c")
    assert len(samples) == 4
