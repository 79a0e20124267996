"""The Ray engine (stages/lib/distributed.py) against the local one: same planned batches, same bytes."""
import signal
import sys

import numpy as np
import pytest

from stages.lib import distributed
from stages.lib import params as params_lib
from stages.lib.distributed import embed_corpus_on, ray_init_options
from stages.lib.embedding import embed_corpus
from stages.lib.errors import UserError
from tests import tiny

TIMEOUT_S = 240  # a Ray that cannot start or schedule fails the test instead of hanging the suite


@pytest.fixture(autouse=True)
def deadline():
    def expire(*_):
        raise TimeoutError(f"Ray test took over {TIMEOUT_S} s")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(TIMEOUT_S)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def ray_local():
    """Ray as the stage starts it, with 2 CPUs (so 2 one-CPU actors) unless RAY_ADDRESS names a cluster."""
    import os

    import ray
    signal.alarm(TIMEOUT_S)
    ray.init(**({} if os.environ.get("RAY_ADDRESS") else {"num_cpus": 2}), **ray_init_options())
    signal.alarm(0)
    yield ray
    ray.shutdown()


def _params(tmp_path, model, engine, batch_size=5):
    corpus = tiny.write_jsonl(tmp_path / "corpus.jsonl", tiny.corpus_rows(300, seed=3))
    return params_lib.parse({"corpus": str(corpus), "reference": "m", "models": {"m": {"path": str(model)}},
                             "embed": {"pooling": "mean", "batch_size": batch_size, "invariance_sample": 4,
                                       "engine": engine}})


def _int8_copy(tmp_path):
    tiny.build_model(tmp_path / "fp32", dim=16)
    return tiny.dynamic_int8(tmp_path / "fp32", tmp_path / "int8")


@pytest.mark.parametrize("kind", ["fp32", "int8"])
def test_ray_engine_writes_the_local_engines_bytes(tmp_path, ray_local, kind):
    """300 texts in batches of 5 over 2 actors, streamed to memory maps as the stage does: every
    vector equals the local engine's bit for bit, and so does the manifest."""
    model = _int8_copy(tmp_path) if kind == "int8" else tiny.build_model(tmp_path / "fp32").parent
    local = embed_corpus(_params(tmp_path, model, "local"), "m", machine={})
    (tmp_path / "out").mkdir()
    on_ray = embed_corpus_on(_params(tmp_path, model, "ray"), "m", machine={}, stream_to=tmp_path / "out")
    for name in ("queries.npy", "codes.npy", "snippet_queries.npy", "snippet_codes.npy"):
        if name in local:
            assert np.array_equal(np.asarray(on_ray[name]), local[name]), name
    assert isinstance(on_ray["codes.npy"], np.memmap)
    assert on_ray["manifest.json"] == local["manifest.json"]
    if kind == "int8":  # the check can fail: here other batch-mates give other vectors
        other = embed_corpus(_params(tmp_path, model, "local", batch_size=7), "m", machine={})
        assert not np.array_equal(other["codes.npy"], local["codes.npy"])


def test_windows_group_consecutive_batches_under_a_token_budget():
    batches = [np.array([0, 1]), np.array([2]), np.array([3, 4]), np.array([5])]
    lengths = np.array([3, 3, 10, 2, 2, 50])  # batch tokens: 6, 10, 4, 50
    assert distributed.windows(batches, lengths, 16) == [range(2), range(2, 3), range(3, 4)]
    assert distributed.windows(batches, lengths, 10**6) == [range(4)]
    assert distributed.windows(batches, lengths, 1) == [range(k, k + 1) for k in range(4)]  # at least one batch


def test_ray_engine_in_several_windows_writes_the_same_bytes(tmp_path, ray_local, monkeypatch):
    """The driver ships a window of batches at a time (bounded memory); the vectors do not change."""
    model = tiny.build_model(tmp_path / "fp32").parent
    local = embed_corpus(_params(tmp_path, model, "local"), "m", machine={})
    total = int(local["query_lengths.npy"].sum())
    monkeypatch.setattr(distributed, "WINDOW_TOKENS", total // 2)  # two or three windows per text kind
    on_ray = embed_corpus_on(_params(tmp_path, model, "ray"), "m", machine={})
    for name in ("queries.npy", "codes.npy"):
        assert np.array_equal(on_ray[name], local[name]), name


def test_a_worker_unlike_this_machine_is_refused(tmp_path, ray_local, monkeypatch):
    """The manifest records this machine's facts; a worker with other ones (here: this machine
    pretends to have AMX) could compute other INT8 vectors, so the run stops with one line."""
    from stages.lib import machine
    real = machine.detect()["embed"]
    monkeypatch.setattr(distributed, "detect", lambda: {"embed": {**real, "int8_support": "AMX-INT8"}})
    model = tiny.build_model(tmp_path / "m").parent
    with pytest.raises(UserError, match=r"^embed.engine ray: a Ray worker's embed facts \([^\n]*\) differ from "
                                        r"this machine's \([^\n]*AMX-INT8[^\n]*\); run on nodes like this one"):
        embed_corpus_on(_params(tmp_path, model, "ray"), "m", machine={})


def test_ray_engine_without_ray_installed_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    tiny.build_model(tmp_path / "m")
    with pytest.raises(UserError, match=r"^embed.engine is ray but Ray Data is not installed: pip install "
                                        r"-r requirements-dev.txt[^\n]*$"):
        embed_corpus_on(_params(tmp_path, tmp_path / "m", "ray"), "m", machine={})


def test_a_ray_client_address_is_refused_with_what_to_use(tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    tiny.build_model(tmp_path / "m")
    with pytest.raises(UserError, match=r"^RAY_ADDRESS=ray://head:10001: Ray Data does not run over Ray Client"):
        embed_corpus_on(_params(tmp_path, tmp_path / "m", "ray"), "m", machine={})


def test_unknown_engine_is_a_params_error(tmp_path):
    with pytest.raises(UserError, match="'embed.engine' must be local or ray, got 'spark'"):
        _params(tmp_path, tmp_path / "m", "spark")


def test_a_killed_ray_embed_resumes_to_the_local_engines_bytes(tmp_path, ray_local, monkeypatch, capfd):
    """Batches come back from the actors in any order; what is saved is the leading run of finished
    ones, so a run stopped after its first save resumes on Ray to the local engine's bytes."""
    import re

    from stages.lib.resume import FAIL_ENV, Resume
    model = _int8_copy(tmp_path)  # dynamic INT8: a replayed batch with other batch-mates would show
    local = embed_corpus(_params(tmp_path, model, "local"), "m", machine={})
    resume = Resume(tmp_path / "scratch" / "m", every_s=0)
    monkeypatch.setenv(FAIL_ENV, "1")
    with pytest.raises(RuntimeError, match="stopped after saving window 1"):
        embed_corpus_on(_params(tmp_path, model, "ray"), "m", machine={}, resume=resume)
    monkeypatch.delenv(FAIL_ENV)
    capfd.readouterr()
    (tmp_path / "out").mkdir()
    on_ray = embed_corpus_on(_params(tmp_path, model, "ray"), "m", machine={}, stream_to=tmp_path / "out",
                             resume=resume)
    embedded, reused = map(int, re.search(r"(\d+) corpus batches embedded in this run, (\d+) reused",
                                          capfd.readouterr().err).groups())
    assert reused >= 1 and embedded + reused == 2 * 60  # 300 texts of each kind in batches of 5
    for name in ("queries.npy", "codes.npy"):
        assert np.array_equal(np.asarray(on_ray[name]), local[name]), name
    assert on_ray["manifest.json"] == local["manifest.json"]
