"""Embed the corpus queries and code with one model: `python -m stages.embed NAME`."""
from stages.lib import cli
from stages.lib.embedding import embed_corpus
from stages.lib.outputs import replace_dir


def main() -> None:
    args, params = cli.stage_args(__doc__, extra=lambda p: p.add_argument(
        "--out", default=None, help="output folder (default results/embed/NAME)"))
    files = embed_corpus(params, args.name, progress=True)
    out = replace_dir(args.out or f"results/embed/{args.name}", files)
    m = files["manifest.json"]
    print(f"{args.name}: {m['count']} queries + {m['count']} code texts -> dim {m['dim']}, pooling "
          f"{m['pooling']['mode']} ({m['pooling']['source']}), normalize={m['normalize']} -> {out}")


if __name__ == "__main__":
    cli.run(main)
