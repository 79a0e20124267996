"""Embed the corpus queries and code with one model: `python -m stages.embed NAME`."""
import argparse

from stages.lib import errors, params as params_lib
from stages.lib.embedding import embed_corpus
from stages.lib.outputs import replace_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("name")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", default=None, help="output folder (default results/embed/NAME)")
    args = parser.parse_args()
    params = params_lib.load(args.params)
    files = embed_corpus(params, args.name, progress=True)
    out = replace_dir(args.out or f"results/embed/{args.name}", files)
    m = files["manifest.json"]
    print(f"{args.name}: {m['count']} queries + {m['count']} code texts -> dim {m['dim']}, pooling "
          f"{m['pooling']['mode']} ({m['pooling']['source']}), normalize={m['normalize']} -> {out}")


if __name__ == "__main__":
    errors.run(main)
