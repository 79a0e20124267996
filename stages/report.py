"""Render the comparison: `python -m stages.report` -> console, results/report.json, results/report.md."""
import argparse
import sys

from stages.lib import errors, params as params_lib
from stages.lib.outputs import write_json, write_text
from stages.lib.reporting import build_report, plot_series, render


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    report = build_report(params_lib.load(args.params))
    text = render(report, "text")
    write_json("results/report.json", report)
    write_text("results/report.md", render(report, "md"))
    for name, rows in plot_series(report).items():
        write_json(f"results/plots/{name}", rows)
    sys.stdout.write(text.encode("ascii", "replace").decode("ascii") if sys.stdout.encoding.lower() not in ("utf-8", "utf8") else text)


if __name__ == "__main__":
    errors.run(main)
