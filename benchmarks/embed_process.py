"""The whole embed stage process against a bare onnxruntime process at N texts, and where the
stage's time goes. (A benchmark, not a test: the numbers depend on the machine.)

Goal (issue 12): at 10k texts, `python -m stages.embed NAME` within 5 % of a bare script that
imports onnxruntime and tokenizers, reads the same texts, tokenizes, length-sorts, batches, pads,
runs, pools and saves the vectors. The stage also checks its inputs, hashes the model, tokenizer
and corpus, runs the batch-invariance check, embeds the snippets and writes a manifest: those are
the fixed costs the ratio includes.

The corpus is the params' corpus repeated until it has N texts (ids made unique), in a temp folder
with a copy of the params naming only that model (absolute paths). Runs alternate stage, bare, bare,
stage... and medians are compared; the two processes' vectors must agree first. Then one profiled
stage run (cProfile) says where its time goes.

    python benchmarks/embed_process.py [--texts 10000] [--model fp32] [--repeats 3]
(after `dvc repro`, so the model folders exist)
"""
from __future__ import annotations

import argparse
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stages.lib import params as params_lib  # noqa: E402
from stages.lib.embedding import open_embedder  # noqa: E402

BARE = r"""
import json, sys
import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer
cfg = json.loads(sys.argv[1])
tok = Tokenizer.from_file(cfg["tokenizer"])
tok.no_padding()
tok.enable_truncation(cfg["max_length"])
session = ort.InferenceSession(cfg["model"], providers=["CPUExecutionProvider"])
rows = [json.loads(line) for line in open(cfg["corpus"], encoding="utf-8") if line.strip()]
for kind, field in (("queries", "query"), ("codes", "code")):
    ids = [e.ids for e in tok.encode_batch([r[field] for r in rows])]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out = None
    for start in range(0, len(order), cfg["batch_size"]):
        chunk = order[start:start + cfg["batch_size"]]
        width = max(len(ids[i]) for i in chunk)
        input_ids = np.full((len(chunk), width), cfg["pad_id"], dtype=np.int64)
        mask = np.zeros((len(chunk), width), dtype=np.int64)
        for row, i in enumerate(chunk):
            input_ids[row, :len(ids[i])] = ids[i]
            mask[row, :len(ids[i])] = 1
        feed = {"input_ids": input_ids, "attention_mask": mask}
        if cfg["token_type_ids"]:
            feed["token_type_ids"] = np.zeros_like(input_ids)
        (result,) = session.run([cfg["output"]], feed)
        if not cfg["pooled"]:
            m = mask[:, :, None].astype(np.float32)
            result = (result * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
        if out is None:
            out = np.empty((len(ids), result.shape[1]), dtype=np.float32)
        out[chunk] = result
    np.save(f"{cfg['out']}/{kind}.npy", out)
"""

STEPS = {  # function name in the profile -> what it is, in the order the stage runs them
    "current": "read and check the machine facts",
    "open_embedder": "load the model and tokenizer",
    "encode_stream": "read and tokenize the corpus",
    "embed_ids": "embed the corpus (batches)",
    "file_sha256": "hash the model and corpus",
    "batch_invariance": "batch-invariance check",
    "embed_texts": "embed the snippets",
    "write_files": "write the outputs",
}


def run(cmd: list[str], cwd: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode:
        sys.exit(f"{' '.join(cmd[:3])} failed: {proc.stderr[-800:]}")
    return wall


def setup(params, raw: dict, name: str, n_texts: int, folder: Path) -> dict:
    rows = [json.loads(line) for line in open(params.corpus, encoding="utf-8") if line.strip()]
    pairs = [{**r, "id": f"{r['id']}#{k}"} for k in range(-(-n_texts // (2 * len(rows)))) for r in rows][:n_texts // 2]
    corpus = folder / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in pairs), encoding="utf-8")
    spec = dict(raw["models"][name])
    spec["path"] = str((ROOT / spec["path"]).resolve())
    if spec.get("tokenizer"):
        spec["tokenizer"] = str((ROOT / spec["tokenizer"]).resolve())
    raw = {k: v for k, v in raw.items() if k not in ("quantize", "calibration", "demo")}
    raw.update(corpus=str(corpus), reference=name, models={name: spec})
    if raw.get("snippets"):
        raw["snippets"] = str((ROOT / raw["snippets"]).resolve())
    (folder / "params.yaml").write_text(yaml.safe_dump(raw))
    return {"pairs": len(pairs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default=str(ROOT / "params.yaml"))
    parser.add_argument("--model", default=None, help="model name (default: the reference)")
    parser.add_argument("--texts", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    raw = yaml.safe_load(Path(args.params).read_text())
    params = params_lib.load(args.params)
    name = args.model or params.reference
    os.chdir(ROOT)
    embedder = open_embedder(params, name)
    if set(embedder.inputs) - {"input_ids", "attention_mask", "token_type_ids"} or embedder.normalize \
            or embedder.pooling.mode not in ("output", "mean") or params.embed_for(name).query_prompt \
            or params.model(name).runtime != "onnxruntime":
        sys.exit("the bare script covers onnxruntime models with input_ids/attention_mask(/token_type_ids), "
                 "mean or pooled output, no normalisation, no query prompt")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        info = setup(params, raw, name, args.texts, folder)
        (folder / "bare").mkdir()
        cfg = json.dumps({"model": str(embedder.runner.model_file.resolve()),
                          "tokenizer": str(embedder.tokenizer.path.resolve()),
                          "max_length": embedder.tokenizer.max_length, "batch_size": params.embed.batch_size,
                          "pad_id": embedder.tokenizer.pad_id, "output": embedder.pooling.output,
                          "pooled": embedder.pooling.mode == "output",
                          "token_type_ids": "token_type_ids" in embedder.inputs,
                          "corpus": str(folder / "corpus.jsonl"), "out": str(folder / "bare")})
        py = sys.executable
        stage_cmd, bare_cmd = [py, "-m", "stages.embed", name], [py, "-c", BARE, cfg]
        run([py, "-m", "stages.machine"], folder)
        times = {"stage": [], "bare": []}
        for r in range(args.repeats):  # stage, bare, bare, stage, ...: both see early and late slots
            for kind in ("stage", "bare") if r % 2 == 0 else ("bare", "stage"):
                times[kind].append(run(stage_cmd if kind == "stage" else bare_cmd, folder))
        for kind in ("queries", "codes"):
            diff = float(np.abs(np.load(folder / "results" / "embed" / name / f"{kind}.npy")
                                - np.load(folder / "bare" / f"{kind}.npy")).max())
            if diff > 1e-4:
                sys.exit(f"stage and bare script disagree on {kind} (max |difference| {diff:.2e}): "
                         "timing them would mean nothing")
        profile = folder / "stage.prof"
        run([py, "-m", "cProfile", "-o", str(profile), "-m", "stages.embed", name], folder)
        stats = pstats.Stats(str(profile))
    stage_t, bare_t = statistics.median(times["stage"]), statistics.median(times["bare"])
    n = 2 * info["pairs"]
    print(f"model {name}, {info['pairs']:,} queries + {info['pairs']:,} documents ({n:,} texts), batch "
          f"{params.embed.batch_size}, {args.repeats} alternating repeats; vectors agree (max |diff| <= 1e-4)")
    for label, secs, runs in (("embed stage process", stage_t, times["stage"]),
                              ("bare script process", bare_t, times["bare"])):
        print(f"{label} : {secs:7.2f} s  {n / secs:7.1f} texts/s  (runs: {[round(t, 2) for t in runs]})")
    ratio = bare_t / stage_t
    print(f"stage / bare throughput: {ratio:.3f}  (goal >= 0.95: {'met' if ratio >= 0.95 else 'NOT met'})")
    total = max(v[3] for v in stats.stats.values())  # the outermost frame's cumulative time
    print(f"\nwhere the stage's time goes (one cProfile run, {total:.2f} s in Python's view; imports are the rest):")
    for func, what in STEPS.items():
        cum = sum(v[3] for (_, _, fname), v in stats.stats.items() if fname == func)
        print(f"  {what:<36} {cum:7.2f} s  ({func})")


if __name__ == "__main__":
    main()
