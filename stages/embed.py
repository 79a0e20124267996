"""Embed the corpus queries and code with one model: `python -m stages.embed NAME`.

The manifest names the machine's embed facts (results/machine/embed.json, a dependency): INT8
vectors depend on the CPU's instruction set, so another machine's facts rerun this stage.
"""
from stages.lib import cli
from stages.lib.distributed import embed_corpus_on
from stages.lib.layout import RESULTS
from stages.lib.machine import current
from stages.lib.outputs import staged_dir, write_files


def main() -> None:
    args, params = cli.stage_args(__doc__, extra=lambda p: p.add_argument(
        "--out", default=None, help="output folder (default results/embed/NAME)"))
    machine = current("embed", RESULTS.machine("embed"))
    out = args.out or RESULTS.embed(args.name)
    with staged_dir(out) as tmp:  # vectors stream into it batch by batch; swapped in when complete
        files = embed_corpus_on(params, args.name, machine, progress=True, stream_to=tmp)
        write_files(tmp, files)
    m = files["manifest.json"]
    print(f"{args.name} ({params.embed.engine} engine): {m['count']} queries + {m['documents']} documents -> dim "
          f"{m['dim']}, pooling {m['pooling']['mode']} ({m['pooling']['source']}), normalize={m['normalize']} -> {out}")


if __name__ == "__main__":
    cli.run(main)
