"""How much does the pipeline's embedder cost over a bare onnxruntime loop? (A benchmark, not a test.)

Both paths tokenize the corpus code texts with the same tokenizer, sort by length, batch, pad,
run the same session and pool; the pipeline path is `Embedder.embed_texts` (what the embed stage
runs), the bare path is the few lines below. Runs alternate (ABC, CBA, ...) to share machine
drift; medians are compared. It refuses to time the two paths if their vectors differ.
Targets: pipeline/bare throughput >= 0.95; length-sorted over corpus-order
batching >= 1.5x at batch 32.

    python benchmarks/embed_overhead.py [--model fp32] [--repeats 5] [--batch-size 32]
(after `dvc repro`, so the model folders exist)
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stages.lib import params as params_lib
from stages.lib.corpus import load_corpus
from stages.lib.embedding import open_embedder
from stages.lib.pooling import mean_pool


def bare_loop(session, tokenizer, texts: list[str], batch_size: int, output: str, pooled: bool,
              pad_id: int) -> np.ndarray:
    ids = [e.ids for e in tokenizer.encode_batch(texts)]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out = [None] * len(ids)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        width = max(len(ids[i]) for i in chunk)
        input_ids = np.full((len(chunk), width), pad_id, dtype=np.int64)
        mask = np.zeros((len(chunk), width), dtype=np.int64)
        for row, i in enumerate(chunk):
            input_ids[row, :len(ids[i])] = ids[i]
            mask[row, :len(ids[i])] = 1
        (result,) = session.run([output], {"input_ids": input_ids, "attention_mask": mask})
        vectors = result if pooled else mean_pool(result, mask)
        for row, i in enumerate(chunk):
            out[i] = vectors[row]
    return np.vstack(out)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--model", default=None, help="model name (default: the reference)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    params = params_lib.load(args.params)
    name = args.model or params.reference
    embedder = open_embedder(params, name)
    if (set(embedder.inputs) != {"input_ids", "attention_mask"} or embedder.normalize
            or embedder.pooling.mode not in ("output", "mean")):
        sys.exit("this comparison covers models with input_ids/attention_mask, mean or pooled output, no normalisation")
    texts = load_corpus(params.corpus).codes
    session, tok = embedder.runner, embedder.tokenizer  # a runner runs like an onnxruntime session
    pooled = embedder.pooling.mode == "output"

    def pipeline():
        return embedder.embed_texts(texts, args.batch_size)

    def bare():
        return bare_loop(session, tok.tokenizer, texts, args.batch_size, embedder.pooling.output, pooled, tok.pad_id)

    diff = float(np.abs(pipeline() - bare()).max())  # warms both, and proves they compute the same thing
    if diff > 1e-4:
        sys.exit(f"pipeline and bare loop disagree (max |difference| {diff:.2e}): the comparison would be meaningless")

    def unsorted():
        return embedder.embed_texts(texts, args.batch_size, sort=False)

    times = {pipeline: [], bare: [], unsorted: []}
    for r in range(args.repeats):  # ABC, CBA, ...: each path sees early and late slots alike
        for fn in (pipeline, bare, unsorted) if r % 2 == 0 else (unsorted, bare, pipeline):
            times[fn].append(timed(fn))
    pipe_t, bare_t, unsorted_t = times[pipeline], times[bare], times[unsorted]
    n = len(texts)
    ratio = statistics.median(bare_t) / statistics.median(pipe_t)
    sort_gain = statistics.median(unsorted_t) / statistics.median(pipe_t)  # the pipeline path sorts
    print(f"model {name}, {n} code texts, batch {args.batch_size}, {args.repeats} alternating repeats; "
          f"max |pipeline - bare| = {diff:.2e}")
    for label, times in (("pipeline embedder", pipe_t), ("bare onnxruntime ", bare_t)):
        print(f"{label}: {n / statistics.median(times):8.1f} texts/s (median of {[round(t, 3) for t in times]} s)")
    print(f"pipeline / bare throughput: {ratio:.3f}  (target >= 0.95: {'met' if ratio >= 0.95 else 'NOT met'})")
    print(f"length-sorted vs corpus order at batch {args.batch_size}: {sort_gain:.2f}x  "
          f"(target >= 1.5x: {'met' if sort_gain >= 1.5 else 'NOT met'})")


if __name__ == "__main__":
    main()
