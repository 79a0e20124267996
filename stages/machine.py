"""Record this machine's facts: `python -m stages.machine` -> results/machine/embed.json, timing.json.

DVC runs it on every `dvc repro` (always_changed). The files change only on a machine whose facts
differ, and then exactly the stages that depend on them rerun (see stages/lib/machine.py).
"""
from stages.lib import cli
from stages.lib.layout import RESULTS
from stages.lib.machine import KINDS, describe, detect
from stages.lib.outputs import write_json


def main() -> None:
    _, params = cli.stage_args(__doc__, model=False)
    facts = detect(params.benchmark.provider)  # a GPU provider adds the GPUs to the timing facts
    for kind in KINDS:
        write_json(RESULTS.machine(kind), facts[kind])
    print(f"machine: {describe(facts['timing'])}")


if __name__ == "__main__":
    cli.run(main)
