"""Make one candidate by a quantization recipe: `python -m stages.quantize NAME` -> models/NAME/.

Recipes (params `quantize.NAME.method`): dynamic INT8, static INT8 in QDQ format calibrated on
`params.calibration` (never on evaluation texts), FP16 with FP32 inputs/outputs, 4-bit MatMulNBits.
"""
from stages.lib import cli
from stages.lib.calibration import calibration_feeds
from stages.lib.errors import UserError
from stages.lib.modelprep import make_candidate


def main() -> None:
    args, params = cli.stage_args(__doc__)
    if args.name not in params.quantize:
        raise UserError(f"{args.params}: no entry 'quantize.{args.name}'")
    spec = params.quantize[args.name]
    calibration = calibration_feeds(params, args.name) if spec.method == "static" else None
    out = make_candidate(spec, params.model(args.name).path, calibration)
    options = ", ".join(f"{k}={v}" for k, v in spec.__dict__.items() if k not in ("name", "source", "method"))
    line = f"{args.name}: {spec.method} of {spec.source} ({options}, op_types in effect={spec.ops}) -> {out}"
    if calibration:
        info = calibration[1]
        line += f"; calibrated on {info['texts']} texts of {info['file']}, none of them evaluation texts"
    print(line)


if __name__ == "__main__":
    cli.run(main)
