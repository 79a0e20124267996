"""The one place that knows where each stage's files live under `results/` (dvc.yaml spells the same
paths), and where unfinished work waits outside them (`.scratch/`)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Results:
    root: Path = Path("results")

    def machine(self, kind: str) -> Path:
        """Facts of the machine the pipeline runs on: kind 'embed' or 'timing' (see machine.py)."""
        return self.root / "machine" / f"{kind}.json"

    def inspect(self, name: str) -> Path:
        return self.root / "inspect" / f"{name}.json"

    def embed(self, name: str) -> Path:
        """A folder: queries.npy, codes.npy, lengths, snippets, manifest.json, memory.json."""
        return self.root / "embed" / name

    def benchmark(self, name: str) -> Path:
        return self.root / "benchmark" / f"{name}.json"

    @property
    def speedup_dir(self) -> Path:
        """One stage times every model (timing.py): one file per model, written together."""
        return self.root / "speedup"

    def speedup(self, name: str) -> Path:
        return self.speedup_dir / f"{name}.json"

    @property
    def speed_headline(self) -> Path:
        """The speedups as DVC metrics ({model: {speedup, speedup_low, speedup_high}})."""
        return self.root / "speed.json"

    def compare(self, name: str) -> Path:
        return self.root / "compare" / f"{name}.json"

    def cases(self, name: str) -> Path:
        """One row per query: where its best relevant document ranks under the reference and under
        NAME (cases.py). A DVC output (about 20 MB at 100k queries), not in git; the report reads it."""
        return self.root / "cases" / f"{name}.jsonl"

    def diagnose(self, name: str) -> Path:
        """Where a non-PASS candidate's error comes from, layer by layer (or why it was skipped)."""
        return self.root / "diagnose" / f"{name}.json"

    def metrics(self, name: str) -> Path:
        """The headline numbers DVC shows in `metrics diff` and `exp show`."""
        return self.root / "metrics" / f"{name}.json"

    @property
    def report_json(self) -> Path:
        return self.root / "report.json"

    @property
    def report_md(self) -> Path:
        return self.root / "report.md"

    def plot(self, name: str) -> Path:
        return self.root / "plots" / name


RESULTS = Results()


@dataclass(frozen=True)
class Scratch:
    """Work that must outlive a killed stage. DVC deletes a stage's outputs before running it, so
    this lies outside every output; it is git- and dvc-ignored, no stage's dependency, and each
    stage deletes its own part when it completes (`rm -rf .scratch` clears it by hand)."""

    root: Path = Path(".scratch")

    def embed(self, name: str) -> Path:
        """A killed embed's finished batches and its progress (resume.py)."""
        return self.root / "embed" / name


SCRATCH = Scratch()
