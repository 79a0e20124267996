"""Do the speed figures survive a rerun? Reruns the timing stages N times and compares.

    python benchmarks/speed_stability.py [--runs 5] [--stages speedup benchmark] [--out DIR]

Run from the repository root after `dvc repro` (the models and embeddings must exist). Each run is
`dvc repro -f -s` of the timing stages (the speedup stage; with `benchmark`, every benchmark@M
stage too), then `dvc repro report`. After each run it keeps the speedup results and the report's
ship line in --out (default .scratch/speed-stability/: runN.json, and runN/ with the speedup
documents themselves, every process's pass times, so other estimators can be checked offline).
Then it prints, per candidate: the committed estimate and interval (the results at git HEAD), each
rerun's estimate, how many reruns land inside the committed interval, and how often a rerun's
interval holds another rerun's estimate; and the ship line of each rerun. At the end the committed
results/ and dvc.lock are restored (git checkout) unless --keep.

A benchmark, not a test: it takes minutes per run (the cost is printed) and needs an idle machine.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stages.lib import params as params_lib
from stages.lib.layout import RESULTS


def _dvc(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"dvc {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def _committed(name: str) -> dict | None:
    proc = subprocess.run(["git", "show", f"HEAD:{RESULTS.speedup(name).as_posix()}"], capture_output=True, text=True)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def _ship(report: dict) -> str:
    """The ship line's answer: the candidate named, or why none."""
    from stages.lib.documents.record import read
    from stages.lib.documents.report import Report
    from stages.lib.report.advice import ship_line  # the report's own rule

    _, sentences = ship_line(read(Report, report))
    return " ".join(m.text() for m in sentences)


def one_run(stages: list[str], names: list[str]) -> dict:
    start = time.monotonic()
    if "benchmark" in stages:
        for name in names:
            _dvc("repro", "-f", "-s", f"benchmark@{name}")
    if "speedup" in stages:
        _dvc("repro", "-f", "-s", "speedup")
    _dvc("repro", "report")
    report = json.loads(RESULTS.report_json.read_text())
    speed = {n: json.loads(RESULTS.speedup(n).read_text()) for n in names}
    return {"seconds": time.monotonic() - start, "ship": _ship(report), "recommended": report["recommended"],
            "speed": {n: {k: s.get(k) for k in ("speedup", "ci_low", "ci_high", "rerun_low", "rerun_high", "by_state",
                                                "mix", "control")} for n, s in speed.items()},
            "states": speed[report["reference"]]["states"],
            "load": {n: s["load"]["other_fraction"] for n, s in speed.items()}}


def _inside(x: float, s: dict, low: str = "ci_low", high: str = "ci_high") -> bool:
    return s.get(low) is not None and s[low] <= x <= s[high]


def summarize(runs: list[dict], committed: dict[str, dict | None]) -> list[str]:
    """Per model: the committed estimate, interval and rerun interval, each rerun's estimate, how
    many land inside the committed interval / rerun interval, and how often one rerun's interval /
    rerun interval holds another rerun's estimate. Totals over the candidates (the A/A control apart)."""
    names = list(runs[0]["speed"])
    out = [f"{'model':<12} {'committed [rerun]':<36} {'reruns':<32} {'in committed':>14} {'pairwise':>16}"]
    pairs = [(i, j) for i in range(len(runs)) for j in range(len(runs)) if i != j]
    totals = dict.fromkeys(("in", "in_rerun", "n", "pw", "pw_rerun", "pn"), 0)
    for n in names:
        c = committed.get(n) or {}
        points = [r["speed"][n]["speedup"] for r in runs]
        cell = "-"
        if c.get("ci_low") is not None:
            cell = f"{c['speedup']:.2f} [{c['ci_low']:.2f}, {c['ci_high']:.2f}]"
            if c.get("rerun_low") is not None:
                cell += f" [{c['rerun_low']:.2f}, {c['rerun_high']:.2f}]"
        inside = sum(_inside(x, c) for x in points)
        inside_rerun = sum(_inside(x, c, "rerun_low", "rerun_high") for x in points)
        held = sum(_inside(runs[j]["speed"][n]["speedup"], runs[i]["speed"][n]) for i, j in pairs)
        held_rerun = sum(_inside(runs[j]["speed"][n]["speedup"], runs[i]["speed"][n], "rerun_low", "rerun_high")
                         for i, j in pairs)
        out.append(f"{n:<12} {cell:<36} {', '.join(f'{x:.2f}' for x in points):<32} "
                   f"{f'{inside} [{inside_rerun}] of {len(runs)}':>14} {f'{held} [{held_rerun}] of {len(pairs)}':>16}")
        if not runs[0]["speed"][n].get("control"):
            for k, v in (("in", inside), ("in_rerun", inside_rerun), ("n", len(runs)), ("pw", held),
                         ("pw_rerun", held_rerun), ("pn", len(pairs))):
                totals[k] += v
    t = totals
    out.append(f"candidates: {t['in']} of {t['n']} rerun estimates inside the committed interval, {t['in_rerun']} "
               f"inside the committed rerun interval; a rerun's interval held another rerun's estimate {t['pw']} of "
               f"{t['pn']} times, its rerun interval {t['pw_rerun']}")
    for i, r in enumerate(runs, 1):
        st = r["states"]
        states = "one state" if st["threshold_ms"] is None else \
            f"two states ({st['state_ms']['fast']:.2f} / {st['state_ms']['slow']:.2f} ms per text; " \
            f"{st['processes'].count('slow')} of the reference's {len(st['processes'])} processes slow)"
        out.append(f"run {i} ({r['seconds']:.0f} s, {states}): {r['ship']}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--stages", nargs="+", default=["speedup"], choices=["speedup", "benchmark"])
    ap.add_argument("--out", type=Path, default=Path(".scratch/speed-stability"))
    ap.add_argument("--keep", action="store_true", help="keep the last run's results instead of restoring git HEAD's")
    args = ap.parse_args()
    params = params_lib.load()
    names = list(params.models)
    committed = {n: _committed(n) for n in names}
    args.out.mkdir(parents=True, exist_ok=True)
    runs = []
    try:
        for i in range(args.runs):
            runs.append(one_run(args.stages, names))
            (args.out / f"run{i + 1}.json").write_text(json.dumps(runs[-1], indent=1))
            shutil.copytree(RESULTS.speedup_dir, args.out / f"run{i + 1}", dirs_exist_ok=True)
            print(f"run {i + 1}/{args.runs}: {runs[-1]['seconds']:.0f} s; {runs[-1]['ship']}", flush=True)
    finally:
        if not args.keep:
            subprocess.run(["git", "checkout", "-q", "HEAD", "--", "results", "dvc.lock"], check=False)
    print("\n".join(summarize(runs, committed)))


if __name__ == "__main__":
    main()
