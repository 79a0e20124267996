"""End to end: the real `dvc repro` in a temporary git repo, on tiny models built here.

The reference keeps its weights in external data, and two candidates are made by the quantize
stage, so the whole DAG (quantize, inspect, embed, benchmark, compare, report) runs for real.
"""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests import tiny

ROOT = Path(__file__).resolve().parents[1]
STAGE_RE = re.compile(r"Running stage '([^']+)'")


def _run(cwd, *args, check=True):
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def _dvc(cwd, *args, check=True):
    return _run(cwd, sys.executable, "-m", "dvc", *args, check=check)


def _repro(cwd) -> set[str]:
    return set(STAGE_RE.findall(_dvc(cwd, "repro", "report").stdout))


def _params() -> dict:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params.update({
        "corpus": "data/corpus.jsonl", "snippets": "data/snippets.jsonl", "reference": "tiny",
        "models": {"tiny": {"path": "models/tiny"}, "cand-a": {"path": "models/cand-a"},
                   "cand-b": {"path": "models/cand-b"}},
        "quantize": {"cand-a": {"source": "models/tiny", "per_channel": False, "op_types": ["MatMul"]},
                     "cand-b": {"source": "models/tiny", "per_channel": True, "op_types": ["MatMul"]}},
    })
    params["embed"].update(batch_size=4, max_length=16, pooling="mean")
    params["benchmark"].update(warmup=1, min_iterations=3, min_seconds=0.0, max_seconds=2.0, latency_texts=5,
                               batch_sizes=[1, 4], throughput_texts=8, throughput_repeats=1,
                               seq_lengths=[4, 8, 32], sweep_batch_size=2)
    params["benchmark"].update(interleave_rounds=3, interleave_texts=4)
    params["compare"].update(bootstrap=200)
    return params


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    repo = tmp_path_factory.mktemp("repo")
    shutil.copytree(ROOT / "stages", repo / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", ".gitignore"):
        shutil.copy(ROOT / name, repo / name)
    tiny.build_model(repo / "models" / "tiny", dim=16, external_data=True)
    tiny.write_jsonl(repo / "data" / "corpus.jsonl", tiny.corpus_rows(40))
    tiny.write_jsonl(repo / "data" / "snippets.jsonl", tiny.corpus_rows(6, seed=1))
    (repo / "params.yaml").write_text(yaml.safe_dump(_params(), sort_keys=False))
    (repo / ".gitignore").write_text((repo / ".gitignore").read_text().replace("/models\n", "/models/cand-*\n"))
    _run(repo, "git", "init", "-q")
    _dvc(repo, "init", "-q")
    _dvc(repo, "config", "core.analytics", "false")
    ran = _repro(repo)
    _run(repo, "git", "add", "-A")
    _run(repo, "git", "commit", "-qm", "first run")
    return repo, ran


def test_repro_runs_every_stage_and_reports_true_sizes(repo):
    repo, ran = repo
    per_model = {f"{stage}@{m}" for stage in ("inspect", "embed", "benchmark", "speedup", "compare")
                 for m in ("tiny", "cand-a", "cand-b")}
    assert ran == per_model | {"quantize@cand-a", "quantize@cand-b", "report"}
    report = json.loads((repo / "results" / "report.json").read_text())
    ref = report["models"]["tiny"]
    graph = (repo / "models" / "tiny" / "model.onnx").stat().st_size
    data = (repo / "models" / "tiny" / "model.onnx_data").stat().st_size
    assert ref["size"]["total_bytes"] == graph + data
    assert ref["size"]["external_data_bytes"] == data > graph
    for cand in ("cand-a", "cand-b"):
        comp = report["models"][cand]["comparison"]
        assert comp["verdict"]["status"] in ("PASS", "WARN", "FAIL")
        assert comp["size"]["candidate_bytes"] == report["models"][cand]["size"]["total_bytes"]
        assert 0.5 < comp["agreement"]["cosine"]["mean"] <= 1.0 + 1e-9
        assert comp["speed"]["latency_b1"]["ci_low"] <= comp["speed"]["latency_b1"]["speedup"] <= comp["speed"]["latency_b1"]["ci_high"]
    sweep = ref["benchmark"]["sweep"]
    assert any(p.get("skipped", "").startswith("beyond max_length") for p in sweep if p["seq_len"] == 32)
    text = (repo / "results" / "report.md").read_text()
    for section in ("[INFO]", "[PERF]", "[QUALITY]", "[VERDICT]", "[SUMMARY]", "[RECOMMENDATIONS]"):
        assert section in text
    assert text.isascii()
    control = report["speed_control"]
    assert control["ci_low"] <= control["speedup"] <= control["ci_high"]


def test_second_repro_does_nothing(repo):
    repo, _ = repo
    assert _repro(repo) == set()
    assert _dvc(repo, "status", "-q", "report", check=False).returncode == 0


def test_changing_one_candidate_reruns_only_its_stages(repo):
    repo, _ = repo
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["quantize"]["cand-b"]["reduce_range"] = True
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    ran = _repro(repo)
    assert ran == {f"{stage}@cand-b" for stage in ("quantize", "inspect", "embed", "benchmark", "speedup", "compare")} | {"report"}
    diff = json.loads(_dvc(repo, "metrics", "diff", "--json").stdout or "{}")
    changed = {path for path, metrics in diff.items() if metrics}
    assert "results/compare/cand-b.json" in changed
    assert not any("tiny" in p or "cand-a" in p for p in changed)
