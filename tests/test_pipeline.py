"""End to end: the real `dvc repro` in a temporary git repo, on tiny models built here.

The reference keeps its weights in external data and is added with `dvc add` (the README's own-model
recipe); two candidates are made by the quantize stage, and a third is the reference's own file under
OpenVINO (two models sharing one path), so the whole DAG runs for real. Other
machines are simulated with the test-only EMBED_COMPARE_MACHINE override (stages/lib/machine.py).
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

from stages.lib import machine
from stages.lib.documents import schemas
from tests import tiny
from tests.test_documents import check, documents

ROOT = Path(__file__).resolve().parents[1]
STAGE_RE = re.compile(r"Running stage '([^']+)'")
MACHINE_FILE = "machine/dvc.yaml"  # the machine stage's own pipeline file
MACHINE_STAGE = f"{MACHINE_FILE}:machine"  # as `dvc repro` names it from the repository root
MODELS = ("tiny", "cand-a", "cand-b", "tiny-ov")
MACHINE_DEPENDENT = {f"{stage}@{m}" for stage in ("embed", "benchmark", "compare", "diagnose")
                     for m in MODELS} | {"speedup", "report"}
# compare reads the benchmark results (latency, throughput, their machine); diagnose reads the compare result
TIMING_DEPENDENT = ({f"{stage}@{m}" for stage in ("benchmark", "compare", "diagnose") for m in MODELS}
                    | {"speedup", "report"})


def _run(cwd, *args, check=True, env=None):
    full = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    full.pop(machine.OVERRIDE_ENV, None)  # this machine unless a test simulates another
    proc = subprocess.run(args, cwd=cwd, env={**full, **(env or {})}, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def _dvc(cwd, *args, check=True, env=None):
    return _run(cwd, sys.executable, "-m", "dvc", *args, check=check, env=env)


def _repro(cwd, env=None) -> set[str]:
    """Stages `dvc repro report` ran (fetch_demo is not upstream of it), less the machine stage
    (always_changed: it runs every time and rewrites its facts)."""
    ran = set(STAGE_RE.findall(_dvc(cwd, "repro", "report", env=env).stdout))
    assert MACHINE_STAGE in ran  # upstream of report, run every time: its facts decide what reruns
    return ran - {MACHINE_STAGE}


def _simulated(**facts) -> dict:
    return {machine.OVERRIDE_ENV: json.dumps(facts)}


def _flat(text: str) -> str:
    """Prose is wrapped to the report's width: compare with whitespace runs folded."""
    return " ".join(text.split())


def _git_clean(cwd) -> bool:
    return _run(cwd, "git", "status", "--porcelain").stdout.strip() == ""


def _params() -> dict:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params.update({
        "corpus": "data/corpus.jsonl", "snippets": "data/snippets.jsonl", "calibration": "data/calibration.jsonl",
        "reference": "tiny",
        "models": {"tiny": {"path": "models/tiny"}, "cand-a": {"path": "models/cand-a"},
                   "cand-b": {"path": "models/cand-b"},
                   "tiny-ov": {"path": "models/tiny", "runtime": "openvino", "precision": "auto"}},
        "quantize": {"cand-a": {"source": "models/tiny", "per_channel": False, "op_types": ["MatMul"]},
                     "cand-b": {"source": "models/tiny", "per_channel": True, "op_types": ["MatMul"]}},
    })
    params["embed"].update(batch_size=4, max_length=16, pooling="mean")
    params["benchmark"].update(warmup=1, min_iterations=3, min_seconds=0.0, max_seconds=2.0, latency_texts=5,
                               batch_sizes=[1, 4], throughput_texts=8, throughput_repeats=1,
                               seq_lengths=[4, 8, 32], sweep_batch_size=2)
    params["benchmark"].update(speedup_blocks=2, speedup_passes=1, speedup_texts=4)
    params["compare"].update(bootstrap=200)
    return params


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    repo = tmp_path_factory.mktemp("repo")
    shutil.copytree(ROOT / "stages", repo / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", ".gitignore", ".dvcignore", MACHINE_FILE):
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, repo / name)
    tiny.build_model(repo / "models" / "tiny", dim=16, external_data=True)
    tiny.write_jsonl(repo / "data" / "corpus.jsonl", tiny.corpus_rows(40))
    tiny.write_jsonl(repo / "data" / "snippets.jsonl", tiny.corpus_rows(6, seed=1))
    tiny.write_jsonl(repo / "data" / "calibration.jsonl", tiny.corpus_rows(6, seed=2))  # a dep of quantize
    (repo / "params.yaml").write_text(yaml.safe_dump(_params(), sort_keys=False))
    _run(repo, "git", "init", "-q")
    _dvc(repo, "init", "-q")
    _dvc(repo, "config", "core.analytics", "false")
    _dvc(repo, "add", "models/tiny")  # README "Compare your own model": the recipe as written
    ran = _repro(repo)
    _run(repo, "git", "add", "-A")
    _run(repo, "git", "commit", "-qm", "first run")
    return repo, ran


def test_every_document_the_pipeline_writes_has_its_schema(repo, tmp_path):
    """Inspect, embed manifests, benchmark, speedup, speed.json, compare, diagnose and the report,
    as the real stages wrote them: valid against docs/schemas/, and read back to the same bytes."""
    repo, _ = repo
    found = documents(repo / "results")
    assert {name for name, _ in found} == set(schemas.DOCUMENTS)
    for name, path in found:
        check(name, path, tmp_path)


def test_repro_runs_every_stage_and_reports_true_sizes(repo):
    repo, ran = repo
    per_model = {f"{stage}@{m}" for stage in ("inspect", "embed", "benchmark", "compare", "diagnose")
                 for m in MODELS}
    assert ran == per_model | {"quantize@cand-a", "quantize@cand-b", "speedup", "report"}
    assert (repo / "models" / "tiny.dvc").is_file()
    assert "models/tiny.dvc" in _run(repo, "git", "ls-files").stdout  # tracked: the own-model recipe works
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
        speed = comp["speed"]["latency_b1"]
        assert speed["ci_low"] <= speed["speedup"] <= speed["ci_high"]
        assert comp["verdict"]["scope"].startswith("holds on ")  # dynamic INT8: the instruction path is named
        diagnosis = report["models"][cand]["diagnosis"]  # PASS: skipped; otherwise its layers, matched by name
        assert diagnosis["status"] == ("skipped" if comp["verdict"]["status"] == "PASS" else "done")
        diagnosed = json.loads((repo / "results" / "diagnose" / f"{cand}.json").read_text())
        if diagnosed["status"] == "done":  # both models' weights, the need stated before, the peak measured
            assert set(diagnosed["memory"]["weights_bytes"]) == {"tiny", cand}
            assert diagnosed["memory"]["expected_peak_bytes"] > 0 and diagnosed["memory"]["peak_rss_bytes"] > 0
    for name in MODELS:  # every model stage records its own peak RSS
        files = sum(p.stat().st_size for p in (repo / "models" / name.removesuffix("-ov")).glob("model.onnx*"))
        embed_memory = json.loads((repo / "results" / "embed" / name / "memory.json").read_text())
        assert embed_memory["weights_bytes"] == files and embed_memory["peak_rss_bytes"] > 0
        assert json.loads((repo / "results" / "benchmark" / f"{name}.json").read_text())["memory"]["peak_rss_bytes"] > 0
    ov = report["models"]["tiny-ov"]
    facts = ov["runtime"]["facts"]  # from the embed manifest; benchmark and speedup record the same runner
    assert facts["runtime"] == "openvino" and facts["precision"]["requested"] == "auto"
    assert ov["environment"]["runtime"]["precision"] == facts["precision"]
    speedup = json.loads((repo / "results" / "speedup" / "tiny-ov.json").read_text())
    assert speedup["reference_runtime"]["runtime"] == "onnxruntime" and speedup["environment"]["runtime"] == facts
    assert report["models"]["tiny"]["runtime"]["facts"]["runtime"] == "onnxruntime"
    assert ov["comparison"]["agreement"]["cosine"]["mean"] > 0.999  # the same file, whatever precision it ran in
    note = f"tiny-ov: the F32 file ran in {facts['precision']['used']} under openvino"
    assert (note in _flat((repo / "results" / "report.md").read_text())) == (facts["precision"]["used"] != "f32")
    sweep = ref["benchmark"]["sweep"]
    assert any(p.get("skipped", "").startswith("beyond max_length") for p in sweep if p["seq_len"] == 32)
    text = (repo / "results" / "report.md").read_text()
    for section in ("[INFO]", "[PERF]", "[QUALITY]", "[VERDICT]", "[SUMMARY]", "[RECOMMENDATIONS]"):
        assert section in text
    assert text.isascii()
    for picture in ("tradeoff.png", "cosine.png", "latency.png", "throughput.png"):  # drawn and embedded
        assert f"(plots/{picture})" in text
        assert (repo / "results" / "plots" / picture).read_bytes().startswith(b"\x89PNG")
    here = machine.detect()
    assert _flat(f"Timed on: {machine.describe(here['timing'])}") in _flat(text)
    assert _flat(f"Embeddings computed on: {machine.describe(here['embed'])}") in _flat(text)
    assert report["machines"]["warnings"] == []
    control = report["speed_control"]
    assert control["ci_low"] <= control["speedup"] <= control["ci_high"]
    headline = json.loads((repo / "results" / "metrics" / "cand-a.json").read_text())["cand-a"]
    status = report["models"]["cand-a"]["comparison"]["verdict"]["status"]
    assert headline["verdict"] == {"PASS": 1, "WARN": 0, "FAIL": -1}[status]


def test_second_repro_does_nothing_and_rewrites_nothing(repo):
    repo, _ = repo
    lock = repo / "dvc.lock"
    written = lock.stat().st_mtime_ns
    assert _repro(repo) == set()
    # the machine stage ran, and DVC rewrote its own small lock file, not the big one (a slow rewrite)
    assert lock.stat().st_mtime_ns == written
    assert _dvc(repo, "status", "-q", "report", check=False).returncode == 0
    assert _git_clean(repo)  # the machine stage rewrote identical facts


def test_a_rerun_embed_changes_nothing_after_it_though_its_memory_record_is_new(repo):
    """memory.json (the run's peak RSS) is dvc-ignored: the embed output's hash, dvc.lock and every
    stage after it stay as they were when the vectors do, e.g. in a fresh clone without a remote."""
    repo, _ = repo
    record = repo / "results" / "embed" / "cand-a" / "memory.json"
    record.write_text("{}")
    lock = (repo / "dvc.lock").read_text()
    _dvc(repo, "repro", "-f", "-s", "embed@cand-a")
    assert json.loads(record.read_text())["peak_rss_bytes"] > 0  # written by this run
    assert (repo / "dvc.lock").read_text() == lock
    assert _dvc(repo, "status", "-q", "report", check=False).returncode == 0
    assert _git_clean(repo)


def test_handoff_through_a_remote(repo, tmp_path):
    """Push from one clone, pull into a fresh one: same facts recompute nothing; other facts
    recompute exactly the machine-dependent stages, and the report then names only that machine."""
    repo, _ = repo
    _dvc(repo, "remote", "add", "-d", "store", str(tmp_path / "store"))
    _dvc(repo, "push", "--run-cache")
    _run(repo, "git", "commit", "-qam", "remote")
    clone = tmp_path / "clone"
    _run(tmp_path, "git", "clone", "-q", str(repo), str(clone))
    _dvc(clone, "pull", "--run-cache", "--allow-missing")  # models/fp32: the demo's fetch_demo never ran here
    assert _repro(clone) == set()
    assert _git_clean(clone)

    old = machine.describe(machine.detect()["timing"])
    other = _simulated(int8_support="AMX-INT8", flags=["avx2", "avx512_vnni", "amx_int8", "amx_tile"],
                       cpu="Simulated Xeon")
    assert _repro(clone, env=other) == MACHINE_DEPENDENT  # no fetch, quantize or inspect
    report = (clone / "results" / "report.md").read_text()
    report, as_json = _flat(report), (clone / "results" / "report.json").read_text()
    assert "Simulated Xeon" in report and "simulated:" in report
    assert old not in report and old not in as_json  # no stale machine anywhere
    assert "holds on CPUs with VNNI (AVX512-VNNI, AVX-VNNI or AMX)" in report
    assert _repro(clone, env=other) == set()  # and that machine, too, reruns nothing a second time


def test_changing_one_candidate_reruns_only_its_stages_and_metrics_diff_stays_readable(repo):
    repo, _ = repo
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["quantize"]["cand-b"]["reduce_range"] = True
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    ran = _repro(repo)
    # the speedup stage times every model together (docs/timing.md); other candidates' compare stays
    assert ran == {f"{stage}@cand-b" for stage in ("quantize", "inspect", "embed", "benchmark", "compare",
                                                   "diagnose")} | {"speedup", "report"}
    diff = json.loads(_dvc(repo, "metrics", "diff", "--json").stdout or "{}")
    changed = {path for path, metrics in diff.items() if metrics}
    assert changed <= {"results/metrics/cand-b.json", "results/speed.json"}  # only headline files are metrics
    assert "results/metrics/cand-b.json" in changed
    table = _dvc(repo, "metrics", "diff", "--md", "--all").stdout.strip().splitlines()
    # every headline of every model: 8 for the reference, 17 per candidate, no more
    assert len(table) <= 2 + 8 + 17 * (len(MODELS) - 1) and max(map(len, table)) <= 120, "\n".join(table)
    _run(repo, "git", "commit", "-qam", "reduce_range")


def test_a_timing_fact_reruns_only_the_timing_stages(repo):
    repo, _ = repo
    assert _repro(repo, env=_simulated(cpu="Simulated EPYC")) == TIMING_DEPENDENT  # embeddings stay
    _run(repo, "git", "checkout", "-q", ".")  # back to the committed results: they are this machine's
    assert _repro(repo) == set()


def test_a_report_mixing_machines_says_so_per_model(repo):
    """`dvc repro -s` re-times one model only: the report must not lend the other machine's name to it."""
    repo, _ = repo
    other = _simulated(cpu="Simulated EPYC")
    _dvc(repo, "repro", MACHINE_FILE, env=other)
    for stage in ("benchmark@cand-a", "speedup", "compare@cand-a", "report"):
        _dvc(repo, "repro", "-s", stage, env=other)
    text = (repo / "results" / "report.md").read_text()
    assert "[!] Timed on 2 different machines" in text
    assert re.search(r"\[!\] cand-a: timing numbers from benchmark on T\d, speedup on T\d", text)
    assert "Simulated EPYC" in text and machine.describe(machine.detect()["timing"]) in _flat(text)
    console = _run(repo, sys.executable, "-m", "stages.report", env=other).stdout
    assert "[!] Timed on 2 different machines" in console


def test_a_quick_look_on_a_corpus_sample_reruns_only_what_reads_it_and_says_so(repo, tmp_path):
    """docs/corpora-and-metrics.md "A quick look": `dvc exp run -S corpus_sample=N`. Embed and compare
    read the sample, so they rerun, and diagnose (it reads compare's verdict and the reference's
    manifest) and the report; models, inspect, the benchmark and the speedup stage (timing texts
    drawn from the whole corpus) stay. The report says it is a sample, first, and on every verdict."""
    repo, _ = repo
    _run(repo, "git", "checkout", "-q", ".")  # the committed results: this machine's, all of the corpus
    assert _repro(repo) == set()
    ran = set(STAGE_RE.findall(_dvc(repo, "exp", "run", "-S", "corpus_sample=10", "report").stdout)) - {MACHINE_STAGE}
    assert ran == {f"{stage}@{m}" for stage in ("embed", "compare", "diagnose") for m in MODELS} | {"report"}, ran
    report = json.loads((repo / "results" / "report.json").read_text())
    sample = report["sample"]
    assert (sample["queries"], sample["of_queries"], sample["documents"], sample["of_documents"]) == (10, 40, 10, 40)
    for name in MODELS:
        manifest = json.loads((repo / "results" / "embed" / name / "manifest.json").read_text())
        assert manifest["count"] == manifest["documents"] == 10 and manifest["sample"] == sample
        assert json.loads((repo / "results" / "compare" / f"{name}.json").read_text())["sample"] == sample
    text = _flat((repo / "results" / "report.md").read_text())
    assert text.index("[!] QUICK LOOK: a sample of 10 of 40 queries (10 of 40 documents;") < text.index("[INFO]")
    for cand in MODELS[1:]:
        assert f"{cand}: {report['models'][cand]['comparison']['verdict']['status']} (sample)" in text
    for name, path in documents(repo / "results"):  # the sample's facts have their schema too
        check(name, path, tmp_path)
