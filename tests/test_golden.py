"""The refactor's proof: reports rendered from fixed inputs are byte-identical to committed golden files.

Three inputs: `tests/fixtures/demo-results/` (every stage's output from a real `dvc repro` of the
demo, seven models, with its params.yaml: its golden report.en.md is that run's results/report.md)
and `tests/fixtures/tiny-results/` (the same from the end-to-end test's tiny pipeline, an OpenVINO
model and embed manifests included), each assembled by the report stage's own library function;
and `tests/fixtures/report.json` (an older demo report the rendering tests grow from) rendered
in every format and language. Pictures are compared by their SHA-256 (same report, same bytes).

A commit that means to change the report regenerates the golden files with
`python -m tests.test_golden` and says why; any other commit leaves them as they are.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

from stages.lib import params as params_lib
from stages.lib.documents.record import read
from stages.lib.documents.report import Report
from stages.lib.layout import Results
from stages.lib.outputs import write_json
from stages.lib.report.assemble import build_report, plot_series
from stages.lib.report.pictures import render_plots
from stages.lib.report.sections import render

FIXTURES = Path(__file__).parent / "fixtures"
GOLDEN = FIXTURES / "golden"
STAGE_OUTPUTS = {"demo": FIXTURES / "demo-results", "tiny": FIXTURES / "tiny-results"}
CASES = ("demo", "tiny", "demo-report")


def _json_bytes(obj, tmp: Path) -> bytes:
    """What the report stage writes for `obj` (outputs.write_json), as bytes."""
    return write_json(tmp / "x.json", obj).read_bytes()


def outputs(case: str, tmp: Path) -> dict[str, bytes]:
    """Every file the report stage would write for this case, plus the console text, by golden file name."""
    if case == "demo-report":
        report = read(Report, json.loads((FIXTURES / "report.json").read_text(encoding="utf-8")))
    else:
        params = params_lib.load(STAGE_OUTPUTS[case] / "params.yaml")
        report = build_report(params, Results(STAGE_OUTPUTS[case]))
    files = {} if case == "demo-report" else {"report.json": _json_bytes(report, tmp)}
    pictures = {}
    for lang in ("en", "ru"):
        files[f"report.{lang}.md"] = render(report, "md", lang).encode()
        files[f"report.{lang}.txt"] = render(report, "text", lang).encode()
        pictures |= {f"{lang}/{name}": hashlib.sha256(png).hexdigest()
                     for name, png in render_plots(report, lang).items()}
    pictures |= {name: hashlib.sha256(_json_bytes(rows, tmp)).hexdigest() for name, rows in plot_series(report).items()}
    files["pictures.sha256.json"] = (json.dumps(pictures, indent=2, sort_keys=True) + "\n").encode()
    return files


@pytest.mark.parametrize("case", CASES)
def test_report_bytes_match_the_golden_files(case, tmp_path):
    made = outputs(case, tmp_path)
    golden = sorted(p.name for p in (GOLDEN / case).iterdir())
    assert golden == sorted(made), "golden files and outputs differ in names"
    for name, data in made.items():
        assert data == (GOLDEN / case / name).read_bytes(), f"{case}/{name} differs from the golden file"


def main() -> None:
    """Rewrite the golden files from the current code (only in a commit that means to change the report)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for case in CASES:
            folder = GOLDEN / case
            folder.mkdir(parents=True, exist_ok=True)
            for name, data in outputs(case, Path(tmp)).items():
                (folder / name).write_bytes(data)
                print(f"{folder / name}", file=sys.stderr)


if __name__ == "__main__":
    main()
