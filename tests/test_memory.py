"""The onnxruntime memory options (params `onnxruntime`) reach every session and are recorded with
what it made."""
from pathlib import Path

import onnxruntime as ort
import pytest

from stages.lib import params as params_lib
from stages.lib.embedding import open_embedder
from stages.lib.params import OnnxRuntimeSettings
from stages.lib.runtimes import open_runner
from tests import tiny


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


def test_openvino_records_the_options_as_not_applicable(tmp_path):
    pytest.importorskip("openvino")
    tiny.build_model(tmp_path / "m")
    facts = open_runner(tmp_path / "m", "openvino").facts()
    assert facts["memory_options"] == {"enable_cpu_mem_arena": "not applicable", "enable_mem_pattern": "not applicable"}
