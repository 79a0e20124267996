"""Where a non-PASS candidate's error comes from: `python -m stages.diagnose NAME` -> results/diagnose/NAME.json.

Runs the reference and the candidate on a few corpus texts with their weighted layers' outputs
exposed and names the layers where the error first jumps, with a ready `nodes_to_exclude` list.
The reference and PASS candidates get a short "skipped" file (no model is opened). INT8 errors
depend on the CPU's instruction set, so the embed machine facts are recorded and are a dependency.
Before opening the two models it prints the memory it expects to need; the result records that
and the measured peak.
"""
from stages.lib import cli
from stages.lib.diagnosis import diagnose
from stages.lib.documents.compare import Comparison
from stages.lib.documents.record import read_document
from stages.lib.layout import RESULTS
from stages.lib.machine import current
from stages.lib.memory import mib
from stages.lib.outputs import write_json


def main() -> None:
    args, params = cli.stage_args(__doc__)
    machine = current("embed", RESULTS.machine("embed"))
    verdict = read_document(RESULTS.compare(args.name), Comparison).verdict
    # say: the expected memory need, before any model is opened
    result = diagnose(params, args.name, verdict and verdict.status, machine, say=print)
    write_json(RESULTS.diagnose(args.name), result)
    if result.status != "done":
        print(f"{args.name}: {result.status}: {result.reason}")
        return
    first = result.first_jump
    where = f"error first jumps at {first.node} ({first.op}, relative error {first.rel_error:.4f})" \
        if first else f"no layer's error jumps {result.jump_factor:g}x"
    mem = result.memory
    print(f"{args.name}: {result.layers.compared} layers compared on {result.texts} texts; {where}; "
          f"nodes_to_exclude: {result.nodes_to_exclude}; peak memory {mib(mem.peak_rss_bytes)} "
          f"(expected {mib(mem.expected_peak_bytes)})")


if __name__ == "__main__":
    cli.run(main)
