"""Static facts about one model (sizes with external data, parameters, I/O, ops, quantization).

`python -m stages.inspect NAME` (run as a module: this file's name would shadow the stdlib's as a script).
"""
from pathlib import Path

from stages.lib import cli
from stages.lib.inspection import inspect_model
from stages.lib.layout import RESULTS
from stages.lib.outputs import write_json


def main() -> None:
    args, params = cli.stage_args(__doc__)
    path = params.model(args.name).path
    info = inspect_model(path, args.name)
    write_json(RESULTS.inspect(args.name), info)
    size = info.size
    if Path(path).is_file() and size.external_data_files:
        print(f"warning: models.{args.name}.path names the graph file only, so DVC does not track its external "
              f"data ({', '.join(size.external_data_files)}); point it at the model's folder")
    print(f"{args.name}: {size.total_bytes / 1e6:.2f} MB (graph {size.graph_bytes / 1e6:.2f} MB + external "
          f"{size.external_data_bytes / 1e6:.2f} MB), {info.parameters.count:,} parameters, "
          f"quantization: {info.quantization}")


if __name__ == "__main__":
    cli.run(main)
