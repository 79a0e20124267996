"""Make one candidate by dynamic INT8 quantization: `python -m stages.quantize NAME` -> models/NAME/."""
from stages.lib import cli
from stages.lib.errors import UserError
from stages.lib.modelprep import quantize_dynamic_int8


def main() -> None:
    args, params = cli.stage_args(__doc__)
    if args.name not in params.quantize:
        raise UserError(f"{args.params}: no entry 'quantize.{args.name}'")
    spec = params.quantize[args.name]
    out = quantize_dynamic_int8(spec, params.model(args.name).path)
    options = ", ".join(f"{k}={v}" for k, v in spec.__dict__.items() if k not in ("name", "source"))
    print(f"{args.name}: dynamic INT8 of {spec.source} ({options}) -> {out}")


if __name__ == "__main__":
    cli.run(main)
