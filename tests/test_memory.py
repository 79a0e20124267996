"""What stages hold in memory: the peak RSS they record is their own, the weights' bytes are the
model's files, and the onnxruntime memory options (params `onnxruntime`) reach every session and
are recorded with what it made."""
import json
import subprocess
import sys
from pathlib import Path

import onnxruntime as ort
import pytest

from stages.lib import memory
from stages.lib import params as params_lib
from stages.lib.embedding import embed_corpus, open_embedder
from stages.lib.params import OnnxRuntimeSettings
from stages.lib.runtimes import open_runner
from tests import tiny

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, resource
from stages.lib.memory import peak_rss_bytes
print(json.dumps({"peak": peak_rss_bytes(), "ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="VmHWM is Linux's")
def test_peak_rss_is_the_processs_own_not_its_parents():
    """Linux starts a vfork'd child's ru_maxrss at its parent's RSS: a stage started by a big process
    (pytest, DVC) would report the parent's memory. VmHWM is the child's own."""
    ballast = bytearray(400 << 20)
    ballast[::4096] = b"\1" * len(range(0, len(ballast), 4096))  # touched: resident
    child = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, capture_output=True, text=True, check=True)
    got = json.loads(child.stdout)
    assert got["ru_maxrss"] > 400 << 20  # what getrusage says, inherited from this process
    assert got["peak"] < 200 << 20  # a Python importing one small module
    assert memory.peak_rss_bytes() > 400 << 20 and memory.rss_bytes() > 400 << 20  # here, with the ballast
    del ballast


def test_weights_bytes_are_the_graph_and_its_external_data(tmp_path):
    tiny.build_model(tmp_path / "m", external_data=True)
    runner = open_runner(tmp_path / "m")
    on_disk = sum(p.stat().st_size for p in (tmp_path / "m").glob("model.onnx*"))
    assert [p.name for p in runner.files] == ["model.onnx", "model.onnx_data"]
    assert memory.weights_bytes(runner.files) == on_disk > (tmp_path / "m" / "model.onnx_data").stat().st_size


@pytest.mark.parametrize("arena, pattern", [(False, False), (False, True), (True, False)])
def test_memory_options_reach_the_session_and_its_recorded_facts(tmp_path, arena, pattern):
    tiny.build_model(tmp_path / "m")
    default = open_runner(tmp_path / "m")
    own = ort.SessionOptions()
    assert default.facts()["memory_options"] == {"enable_cpu_mem_arena": own.enable_cpu_mem_arena,
                                                 "enable_mem_pattern": own.enable_mem_pattern}
    runner = open_runner(tmp_path / "m", memory=OnnxRuntimeSettings(arena, pattern))
    used = runner.session.get_session_options()  # read back from onnxruntime, not from our record
    assert (used.enable_cpu_mem_arena, used.enable_mem_pattern) == (arena, pattern)
    assert runner.facts()["memory_options"] == {"enable_cpu_mem_arena": arena, "enable_mem_pattern": pattern}


def _params(tmp_path: Path, **onnxruntime) -> params_lib.Params:
    tiny.build_model(tmp_path / "m", external_data=True)
    corpus = tiny.write_jsonl(tmp_path / "corpus.jsonl", tiny.corpus_rows(20))
    return params_lib.parse({"corpus": str(corpus), "reference": "m", "models": {"m": {"path": str(tmp_path / "m")}},
                             "embed": {"pooling": "mean", "batch_size": 8, "invariance_sample": 2},
                             "onnxruntime": onnxruntime})


def test_params_options_reach_every_embedder(tmp_path):
    params = _params(tmp_path, enable_cpu_mem_arena=False)
    used = open_embedder(params, "m", expose=["h"]).runner.session.get_session_options()  # diagnose's kind too
    assert (used.enable_cpu_mem_arena, used.enable_mem_pattern) == (False, True)


def test_embed_records_its_peak_rss_and_weights_beside_the_manifest(tmp_path):
    params = _params(tmp_path, enable_mem_pattern=False)
    files = embed_corpus(params, "m", machine={})
    record = files["memory.json"]
    assert set(record) == {"model", "engine", "weights_bytes", "peak_rss_bytes"}
    assert record["weights_bytes"] == sum(p.stat().st_size for p in (tmp_path / "m").glob("model.onnx*"))
    assert record["peak_rss_bytes"] >= 20 << 20  # this process: Python with numpy and onnxruntime loaded
    assert "peak_rss_bytes" not in json.dumps(files["manifest.json"])  # the manifest stays the same every run
    assert files["manifest.json"]["runtime"]["memory_options"] == {"enable_cpu_mem_arena": True,
                                                                   "enable_mem_pattern": False}


def test_openvino_records_the_options_as_not_applicable(tmp_path):
    pytest.importorskip("openvino")
    tiny.build_model(tmp_path / "m")
    facts = open_runner(tmp_path / "m", "openvino").facts()
    assert facts["memory_options"] == {"enable_cpu_mem_arena": "not applicable", "enable_mem_pattern": "not applicable"}
