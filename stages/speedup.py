"""Speedup of every model over the reference: `python -m stages.speedup` -> results/speedup/NAME.json
and the headline numbers in results/speed.json.

Every model is timed one model per fresh process, the processes interleaved over time in blocks
(stages/lib/timing.py; docs/timing.md says why, from measurements): the candidates share each
block's moment, so a state of the machine moves them together instead of deciding between them.
The reference's own file is the A/A control: the reference timed as a candidate, whose interval
is the method's noise floor on this machine.
"""
from stages.lib import cli
from stages.lib.corpus import sample_texts
from stages.lib.layout import RESULTS
from stages.lib.machine import current, load_cell
from stages.lib.outputs import staged_dir, write_json
from stages.lib.timing import Job, run_schedule, schedule, speed_headline, speedup_results


def main() -> None:
    _, params = cli.stage_args(__doc__, model=False)
    s = params.benchmark
    machine = current("timing", RESULTS.machine("timing"), s.provider)
    texts = sample_texts(params.corpus, "documents", s.speedup_texts)  # spread over the corpus, not all of it
    candidates = [n for n in params.models if n != params.reference]
    plan = schedule(params.reference, candidates, s.speedup_blocks, params.compare.seed)
    processes = run_schedule(plan, lambda name: Job(params, name, texts, s.speedup_passes), label="speedup")
    results = speedup_results(processes, params.reference, params.compare.confidence, s.busy_tolerance, machine)
    with staged_dir(RESULTS.speedup_dir) as tmp:  # every model's file, or none
        for name, result in results.items():
            write_json(tmp / RESULTS.speedup(name).name, result)
    write_json(RESULTS.speed_headline, speed_headline(results))
    for name, result in results.items():
        print(f"{name} vs {params.reference}{' (A/A control)' if result.control else ''}: {result.speedup:.2f}x "
              f"[{result.ci_low:.2f}, {result.ci_high:.2f}] over {len(result.blocks)} blocks; CPU used by other "
              f"processes meanwhile: {load_cell(result.load)}")


if __name__ == "__main__":
    cli.run(main)
