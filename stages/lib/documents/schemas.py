"""The JSON Schema of every document a stage writes, generated from the types: docs/schemas/NAME.schema.json
(for a JSONL file, the schema of each of its lines).

`python -m stages.lib.documents.schemas` rewrites them; tests/test_documents.py checks they are
current, that every fixture and every committed result written by this code validates, and that
each reads back into its type with the same bytes. A change of shape bumps the type's
SCHEMA_VERSION (the report also carries it as schema_version) and regenerates the schemas.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..layout import Results
from .benchmark import Benchmark
from .compare import CaseRow, Comparison
from .diagnose import Diagnosis, DiagnosisDone
from .embed import EmbedManifest, EmbedMemory
from .inspect import Inspection
from .record import json_schema
from .report import Report
from .speedup import SpeedHeadlines, Speedup

_ANY = Results(Path())  # layout.Results names every path; "*" for the model gives the pattern
# name -> (type, version, the files of that type under results/, as a glob pattern)
DOCUMENTS = {
    "inspect": (Inspection, Inspection.SCHEMA_VERSION, str(_ANY.inspect("*"))),
    "embed-manifest": (EmbedManifest, EmbedManifest.SCHEMA_VERSION, str(_ANY.embed("*") / "manifest.json")),
    "embed-memory": (EmbedMemory, EmbedMemory.SCHEMA_VERSION, str(_ANY.embed("*") / "memory.json")),
    "benchmark": (Benchmark, Benchmark.SCHEMA_VERSION, str(_ANY.benchmark("*"))),
    "speedup": (Speedup, Speedup.SCHEMA_VERSION, str(_ANY.speedup("*"))),
    "speed": (SpeedHeadlines, SpeedHeadlines.SCHEMA_VERSION, str(_ANY.speed_headline)),
    "compare": (Comparison, Comparison.SCHEMA_VERSION, str(_ANY.compare("*"))),
    "cases": (CaseRow, CaseRow.SCHEMA_VERSION, str(_ANY.cases("*"))),  # JSONL: the schema of one line
    "diagnose": (Diagnosis, DiagnosisDone.SCHEMA_VERSION, str(_ANY.diagnose("*"))),
    "report": (Report, Report.SCHEMA_VERSION, str(_ANY.report_json)),
}
FOLDER = Path(__file__).resolve().parents[3] / "docs" / "schemas"


def schema(name: str) -> dict:
    tp, version, _ = DOCUMENTS[name]
    return json_schema(tp, name, version)


def schema_text(name: str) -> str:
    return json.dumps(schema(name), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    FOLDER.mkdir(parents=True, exist_ok=True)
    for name in DOCUMENTS:
        (FOLDER / f"{name}.schema.json").write_text(schema_text(name), encoding="utf-8")
        print(FOLDER / f"{name}.schema.json", file=sys.stderr)


if __name__ == "__main__":
    main()
