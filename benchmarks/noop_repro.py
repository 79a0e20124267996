"""How long does a `dvc repro` that has nothing to do take? (A benchmark, not a test.)

Runs `dvc repro` (one untimed warm-up, then N timed runs, each a fresh process) and prints the
median, min and max of the wall time and of the CPU time the dvc process used. It refuses, before
running anything, when `dvc status` says a stage other than the always-run machine stage would
run, and stops if one ran: that is not a no-op.
The CPU the rest of the machine used meanwhile is printed too: a shared machine's wall times are
only comparable at a similar load.

    python benchmarks/noop_repro.py [--runs 7] [--repo .] [-- extra dvc repro arguments]
(after a first full `dvc repro`, so every output exists)
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stages.lib.machine import LoadMonitor

STAGE_RE = re.compile(r"Running stage '([^']+)'")
MACHINE_STAGE = re.compile(r"(^|:)machine$")  # `machine`, or `machine/dvc.yaml:machine`


def _dvc(repo: str, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, capture_output=True, text=True,
                          env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    if proc.returncode != 0:
        sys.exit(f"dvc {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return proc


def refuse_stale(repo: str) -> None:
    """Checked before anything runs: on a stale pipeline `dvc repro` would do real work (re-time
    models, even), and its time would not be a no-op's."""
    stale = {name for name in json.loads(_dvc(repo, "status", "--json").stdout or "{}")
             if not MACHINE_STAGE.search(name)}
    if stale:
        sys.exit(f"not a no-op: {', '.join(sorted(stale))} would run; run `dvc repro` first")


def run_once(repo: str, extra: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, dvc and its children) of one no-op repro."""
    before = os.times()
    start = time.perf_counter()
    proc = _dvc(repo, "repro", *extra)
    wall = time.perf_counter() - start
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    ran = {s for s in STAGE_RE.findall(proc.stdout) if not MACHINE_STAGE.search(s)}
    if ran:  # the machine stage found other facts (or a file changed meanwhile)
        sys.exit(f"not a no-op: {', '.join(sorted(ran))} ran")
    return wall, cpu


def summary(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f} s (min {min(values):.2f}, max {max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--repo", default=".", help="the DVC repository to run in")
    parser.add_argument("extra", nargs="*", help="more `dvc repro` arguments (after --)")
    args = parser.parse_args()

    refuse_stale(args.repo)
    run_once(args.repo, args.extra)  # warm-up: the OS file cache and DVC's state database
    walls, cpus = [], []
    with LoadMonitor() as load:
        for _ in range(args.runs):
            wall, cpu = run_once(args.repo, args.extra)
            walls.append(wall)
            cpus.append(cpu)
    # the monitor counts our dvc children as other processes: take their CPU out
    seen = load.result
    others = max(seen["other_cpu_s"] - sum(cpus), 0.0) / (seen["seconds"] * seen["cores"])
    print(f"no-op dvc repro {' '.join(args.extra)}".rstrip() + f", {args.runs} runs")
    print(f"  wall: {summary(walls)}")
    print(f"  CPU (user + system): {summary(cpus)}")
    print(f"  other processes used {others:.0%} of the machine's {seen['cores']} cores meanwhile")


if __name__ == "__main__":
    main()
