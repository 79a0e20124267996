"""Speedup of one model over the reference, both timed in this one process in alternating rounds:
`python -m stages.speedup NAME` -> results/speedup/NAME.json. The two may run under different
runtimes (an onnxruntime reference, an OpenVINO candidate); both runners' facts are recorded.

For the reference itself this is an A/A control (two sessions of the same model): its interval
shows the noise floor of the method on this machine.
"""
from stages.lib import cli
from stages.lib.benchmarking import environment, interleaved_speedup
from stages.lib.corpus import sample_texts
from stages.lib.embedding import open_embedder
from stages.lib.layout import RESULTS
from stages.lib.machine import current, load_cell
from stages.lib.outputs import write_json


def main() -> None:
    args, params = cli.stage_args(__doc__)
    s = params.benchmark
    machine = current("timing", RESULTS.machine("timing"), s.provider)
    codes = sample_texts(params.corpus, "documents", s.interleave_texts)  # spread over the corpus, not all of it
    ref = open_embedder(params, params.reference, s.provider, s.intra_op_threads, s.inter_op_threads)
    cand = open_embedder(params, args.name, s.provider, s.intra_op_threads, s.inter_op_threads)
    ref_ids, cand_ids = ref.tokenizer.encode(codes), cand.tokenizer.encode(codes)
    ref.check_ids(ref_ids)
    cand.check_ids(cand_ids)
    result = {"model": args.name, "reference": params.reference, "control": args.name == params.reference,
              **interleaved_speedup(ref, cand, ref_ids, cand_ids, s, params.compare.confidence, params.compare.seed,
                                   label=f"{args.name} vs {params.reference}"),
              "machine": machine,
              "environment": environment(cand.runner, s.intra_op_threads, s.inter_op_threads),
              "reference_runtime": ref.runner.facts()}
    write_json(RESULTS.speedup(args.name), result)
    print(f"{args.name} vs {params.reference}: {result['speedup']:.2f}x [{result['ci_low']:.2f}, {result['ci_high']:.2f}] "
          f"over {len(result['rounds'])} interleaved rounds; CPU used by other processes meanwhile: "
          f"{load_cell(result['load'])}")


if __name__ == "__main__":
    cli.run(main)
