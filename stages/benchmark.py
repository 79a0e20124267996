"""Time one model on real corpus texts: `python -m stages.benchmark NAME` -> results/benchmark/NAME.json.

DVC runs each stage in a fresh process, so peak memory is this model's alone. The result names
the machine it was timed on (results/machine/timing.json, a dependency) and how busy it was.
"""
from stages.lib import cli
from stages.lib.benchmarking import run_benchmark
from stages.lib.corpus import sample_texts
from stages.lib.embedding import open_embedder
from stages.lib.layout import RESULTS
from stages.lib.machine import current, describe, load_cell
from stages.lib.outputs import write_json


def main() -> None:
    args, params = cli.stage_args(__doc__)
    s = params.benchmark
    machine = current("timing", RESULTS.machine("timing"), s.provider)
    # enough documents for its draws, spread over the corpus: not a million texts through the tokenizer
    codes = sample_texts(params.corpus, "documents", max(s.latency_texts, s.throughput_texts))
    embedder = open_embedder(params, args.name, s.provider, s.intra_op_threads, s.inter_op_threads)
    code_ids = embedder.tokenizer.encode(codes)  # once, outside every timed region
    embedder.check_ids(code_ids)
    result = run_benchmark(embedder, code_ids, s, args.name, machine, seed=params.compare.seed, label=args.name)
    write_json(RESULTS.benchmark(args.name), result)
    lat = result.latency_b1
    print(f"{args.name}: batch-1 latency p50 {lat.p50_ms:.2f} ms (n={lat.count}) on {describe(machine)}; "
          f"CPU used by other processes meanwhile: {load_cell(result.load)}")


if __name__ == "__main__":
    cli.run(main)
