"""run_benchmark on tiny models: structure, pairing, and skipped sweep points for static shapes.
No wall-clock assertions: only what the measurement must contain."""
from dataclasses import replace

import numpy as np

from stages.lib.benchmarking import run_benchmark
from stages.lib.embedding import Embedder
from stages.lib.params import BenchmarkSettings
from stages.lib.runtimes import open_runner
from stages.lib.tokenizing import find_tokenizer, load_tokenizer
from tests import tiny

SETTINGS = BenchmarkSettings(warmup=1, min_iterations=4, min_seconds=0.0, max_seconds=5.0, latency_texts=6,
                             batch_sizes=[1, 4], throughput_texts=12, throughput_repeats=1,
                             seq_lengths=[4, 8, 64], sweep_batch_size=3)


def _setup(folder, max_length=16, **model_kw):
    tiny.build_model(folder, **model_kw)
    session = open_runner(folder)
    tok = load_tokenizer(find_tokenizer(session.model_file, None), max_length)
    emb = Embedder(session, tok, "mean", False)
    ids = tok.encode([r["code"] for r in tiny.corpus_rows(20)])
    return emb, ids


def test_benchmark_contents(tmp_path):
    emb, ids = _setup(tmp_path / "m")
    out = run_benchmark(emb, ids, SETTINGS, "m", None).to_dict()
    lat = out["latency_b1"]
    assert lat["count"] == len(lat["samples_ms"]) >= SETTINGS.min_iterations
    assert lat["min_ms"] <= lat["p50_ms"] <= lat["p90_ms"] <= lat["p99_ms"] <= lat["max_ms"]
    assert set(lat["repeatability"]) >= {"median_ms_run1", "median_ms_run2", "relative_difference", "noisy"}
    assert [t["batch_size"] for t in out["throughput"]] == [1, 4]
    for t in out["throughput"]:
        assert t["sorted"]["padding_fraction"] <= t["unsorted"]["padding_fraction"]
        assert t["sort_speedup"] == t["unsorted"]["seconds"] / t["sorted"]["seconds"]
    assert out["throughput"][0]["sorted"]["padding_fraction"] == 0.0  # batch 1 never pads
    points = {(p["seq_len"], p["batch_size"]): p for p in out["sweep"]}
    assert set(points) == {(4, 1), (4, 3), (8, 1), (8, 3), (64, 1), (64, 3)}
    assert points[(64, 1)]["skipped"] == "beyond max_length 16"
    assert points[(8, 3)]["tokens_per_s"] > 0 and "skipped" not in points[(8, 3)]
    # kernel RSS counters are approximate: no ordering asserted
    assert out["memory"]["peak_rss_bytes"] > 0 and out["memory"]["rss_after_load_bytes"] > 0


def test_two_models_time_the_same_texts_in_the_same_order(tmp_path):
    a, ids = _setup(tmp_path / "a")
    b, _ = _setup(tmp_path / "b", seed=3)
    ha = run_benchmark(a, ids, SETTINGS, "m", None).latency_b1.text_order_sha256
    hb = run_benchmark(b, ids, replace(SETTINGS, min_iterations=7), "m", None).latency_b1.text_order_sha256
    assert ha == hb
    other = run_benchmark(b, ids, replace(SETTINGS, warmup=2), "m", None).latency_b1.text_order_sha256
    assert other != ha  # a different warmup shifts which text each sample timed


def test_static_sequence_length_skips_impossible_points(tmp_path):
    emb, ids = _setup(tmp_path / "m", max_length=8, fixed_seq=8)
    out = run_benchmark(emb, ids, SETTINGS, "m", None).to_dict()
    for p in out["sweep"]:
        if p["seq_len"] == 8:
            assert "skipped" not in p and np.isfinite(p["p50_ms"])
        else:
            assert p["skipped"] == "model input has a fixed sequence length 8"


def test_fixed_batch_model_is_refused_with_one_line(tmp_path):
    import pytest

    from stages.lib.errors import UserError

    emb, ids = _setup(tmp_path / "m", fixed_batch=2)
    assert emb.fixed_batch == 2
    with pytest.raises(UserError, match="fixed batch size"):
        run_benchmark(emb, ids, SETTINGS, "m", None)
    # embedding still works: the last partial batch is padded with copies and cut back
    assert emb.embed_ids(ids[:5], batch_size=4).shape == (5, 8)
