"""Quality of one model against the reference: `python -m stages.compare NAME`
-> results/compare/NAME.json (everything), results/metrics/NAME.json (the headline numbers DVC diffs)
and results/cases/NAME.jsonl (one row per query: where its best relevant document ranks under each model).

For the reference itself it records task metrics and sanity checks (and stops the run if a text
embedded alone and in a padded batch disagree: pooling or the mask would be wrong).
"""
from stages.lib import cli
from stages.lib.comparison import compare
from stages.lib.layout import RESULTS
from stages.lib.outputs import write_json, write_jsonl


def main() -> None:
    args, params = cli.stage_args(__doc__)
    result, rows = compare(params, args.name)
    write_jsonl(RESULTS.cases(args.name), rows)
    write_json(RESULTS.compare(args.name), result)
    # under the model's name: metric names that are unique across files are what `dvc exp show`
    # prints as column headers (shared names get the whole file path prepended)
    write_json(RESULTS.metrics(args.name), {args.name: result.headline})
    line = f"{args.name}: nDCG@10 {result.task['ndcg@10']:.4f}"
    if result.verdict:
        cos = result.agreement.cosine
        line += f", mean cosine to reference {cos.mean if cos else float('nan'):.4f}, verdict {result.verdict.status}"
        if result.verdict.scope:
            line += f" ({result.verdict.scope})"
    print(line)


if __name__ == "__main__":
    cli.run(main)
