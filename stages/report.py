"""Render the comparison: `python -m stages.report` -> console, results/report.json, results/report.md,
and the pictures it embeds (results/plots/*.png) with the JSON series `dvc plots` reads."""
import sys

from stages.lib import cli
from stages.lib.layout import RESULTS
from stages.lib.outputs import write_bytes, write_json, write_text
from stages.lib.report.assemble import build_report, plot_series
from stages.lib.report.pictures import render_plots
from stages.lib.report.sections import render


def main() -> None:
    _, params = cli.stage_args(__doc__, model=False)
    report = build_report(params)
    text = render(report, "text")
    write_json(RESULTS.report_json, report)
    for name, png in render_plots(report, params.report.language).items():
        write_bytes(RESULTS.plot(name), png)
    write_text(RESULTS.report_md, render(report, "md"))
    for name, rows in plot_series(report).items():
        write_json(RESULTS.plot(name), rows)
    sys.stdout.reconfigure(errors="replace")  # a model name a Windows console cannot print must not crash it
    sys.stdout.write(text)


if __name__ == "__main__":
    cli.run(main)
