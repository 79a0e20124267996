"""Make one candidate by dynamic INT8 quantization: `python -m stages.quantize NAME` -> models/NAME/."""
import argparse

from stages.lib import errors, params as params_lib
from stages.lib.modelprep import quantize_dynamic_int8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("name")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    params = params_lib.load(args.params)
    if args.name not in params.quantize:
        raise errors.UserError(f"{args.params}: no entry 'quantize.{args.name}'")
    spec = params.quantize[args.name]
    out = quantize_dynamic_int8(spec, params.model(args.name).path)
    print(f"{args.name}: dynamic {spec.weight_type} (per_channel={spec.per_channel}) of {spec.source} -> {out}")


if __name__ == "__main__":
    errors.run(main)
