"""How do embed and compare grow with the corpus? Wall time and peak RSS at 1k, 10k (, 100k) texts.
(A benchmark, not a test: the numbers depend on the machine.)

Each size gets a temp folder with the tiny test model (tests/tiny.py, dim 8), a synthetic paired
corpus of N queries and N documents, and a params.yaml; then, each in its own process, measured
with os.wait4 (the peak RSS of that process alone):
  embed:   python -m stages.machine && python -m stages.embed m   (the real stage command line)
  compare: the compare stage's quality work on those files: retrieval metrics and agreement of the
           model against itself (every queries x documents product, in blocks)

    python benchmarks/scale.py [--sizes 1000 10000 100000]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Built in a child process too: a child's peak RSS (ru_maxrss) starts from its parent's RSS at the
# fork (Linux carries the pre-exec high-water mark over), so this process must stay small.
BUILD = """
import sys, yaml
from pathlib import Path
from tests import tiny
n = int(sys.argv[1])
tiny.build_model(Path("models/m"))
tiny.write_jsonl(Path("corpus.jsonl"), tiny.corpus_rows(n, seed=1))
Path("params.yaml").write_text(yaml.safe_dump({
    "corpus": "corpus.jsonl", "reference": "m", "models": {"m": {"path": "models/m"}},
    "embed": {"pooling": "mean", "max_length": 32, "batch_size": 32}}))
"""

COMPARE = """
from stages.lib import params as params_lib
from stages.lib.comparison import agreement_metrics, load_embeddings, task_metrics
from stages.lib.corpus import load_corpus
p = params_lib.load("params.yaml")
c = load_corpus(p.corpus, with_texts=False)
e = load_embeddings("results/embed/m")
_, ref_rank, rank = agreement_metrics(e, e, c.query_langs + c.doc_langs, p.compare)
task_metrics(e, p.compare.k, c.qrels, rank)
task_metrics(e, p.compare.k, c.qrels, ref_rank)
"""


def measured(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one child process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.read().decode()[-500:]}")
    return wall, usage.ru_maxrss / 1024  # Linux reports KiB


def run_size(n: int, folder: Path) -> dict:
    py = sys.executable
    measured([py, "-c", BUILD, str(n)], folder)
    measured([py, "-m", "stages.machine"], folder)
    embed = measured([py, "-m", "stages.embed", "m"], folder)
    compare = measured([py, "-c", COMPARE], folder)
    return {"n": n, "embed": embed, "compare": compare}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    args = parser.parse_args()
    rows = []
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(run_size(n, Path(tmp)))
        r = rows[-1]
        print(f"n={n}: embed {r['embed'][0]:.1f} s {r['embed'][1]:.0f} MiB; "
              f"compare {r['compare'][0]:.1f} s {r['compare'][1]:.0f} MiB", flush=True)
    print("\n| queries + documents | embed wall s | embed peak RSS MiB | compare wall s | compare ns per pair "
          "| compare peak RSS MiB |")
    print("|---|---|---|---|---|---|")
    for r in rows:  # compare scores every query against every document: n x n pairs
        print(f"| {r['n']:,} + {r['n']:,} | {r['embed'][0]:.1f} | {r['embed'][1]:.0f} | {r['compare'][0]:.1f} | "
              f"{r['compare'][0] / r['n'] ** 2 * 1e9:.1f} | {r['compare'][1]:.0f} |")
    for a, b in zip(rows, rows[1:]):
        f = b["n"] / a["n"]
        print(f"x{f:g} texts: embed time x{b['embed'][0] / a['embed'][0]:.1f}, "
              f"RSS x{b['embed'][1] / a['embed'][1]:.2f}; "
              f"compare time x{b['compare'][0] / a['compare'][0]:.1f}, RSS x{b['compare'][1] / a['compare'][1]:.2f}")


if __name__ == "__main__":
    main()
