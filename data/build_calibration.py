"""Build the calibration texts static INT8 recipes calibrate on: data/calibration.jsonl.

Calibrating on the texts the metrics use would flatter the candidate, so these are documented
CPython standard-library functions (the same extraction as build_corpus.py) that are *not* in the
corpus or the snippets: every text whose query or code (whitespace-normalised) appears there is
dropped, then a seeded sample is kept. The quantize stage checks the same disjointness again
before it calibrates, whatever file params.calibration names.

Usage (from the repo root):  python data/build_calibration.py [--out data/calibration.jsonl] [--count 200]
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build_corpus as bc

SEED = 1  # not build_corpus's seed: a different sample


def evaluation_texts(paths: list[Path]) -> set[str]:
    texts = set()
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                texts |= {" ".join(row["query"].split()), " ".join(row["code"].split())}
    return texts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="data/calibration.jsonl")
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--exclude", nargs="*", default=["data/corpus.jsonl", "data/snippets.jsonl"])
    args = ap.parse_args(argv)
    taken = evaluation_texts([Path(p) for p in args.exclude])
    stdlib, info = bc.python_source()
    pool = [r for r in bc.dedupe(bc.python_candidates(stdlib), set(), set())
            if " ".join(r["query"].split()) not in taken and " ".join(r["code"].split()) not in taken]
    if len(pool) < args.count:
        bc.die(f"only {len(pool)} standard-library functions are not evaluation texts (need {args.count})")
    rows = sorted(random.Random(SEED).sample(pool, args.count), key=lambda r: r["id"])
    out = Path(args.out)
    bc.write_atomic(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    meta = {"script": "data/build_calibration.py", "output": out.as_posix(), "total": len(rows), "seed": SEED,
            "excluded": args.exclude, "pool_after_exclusion": len(pool), "source": info}
    bc.write_atomic(out.with_name(out.name.split(".")[0] + ".meta.json"), json.dumps(meta, indent=2) + "\n")
    print(f"wrote {out} ({len(rows)} texts, none in {', '.join(args.exclude)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
