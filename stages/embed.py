"""Embed the corpus queries and code with one model: `python -m stages.embed NAME`.

The manifest names the machine's embed facts (results/machine/embed.json, a dependency): INT8
vectors depend on the CPU's instruction set, so another machine's facts rerun this stage.
"""
from stages.lib import cli
from stages.lib.embedding import embed_corpus
from stages.lib.layout import RESULTS
from stages.lib.machine import current
from stages.lib.outputs import replace_dir


def main() -> None:
    args, params = cli.stage_args(__doc__, extra=lambda p: p.add_argument(
        "--out", default=None, help="output folder (default results/embed/NAME)"))
    machine = current("embed", RESULTS.machine("embed"))
    files = embed_corpus(params, args.name, machine, progress=True)
    out = replace_dir(args.out or RESULTS.embed(args.name), files)
    m = files["manifest.json"]
    print(f"{args.name}: {m['count']} queries + {m['count']} code texts -> dim {m['dim']}, pooling "
          f"{m['pooling']['mode']} ({m['pooling']['source']}), normalize={m['normalize']} -> {out}")


if __name__ == "__main__":
    cli.run(main)
