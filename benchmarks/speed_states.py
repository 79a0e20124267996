"""What moves a speedup on this machine: its speed states, and what the timing method adds.

    python benchmarks/speed_states.py monitor [--seconds 900] [--candidate int8-pc]
    python benchmarks/speed_states.py method [--rounds 8] [--candidate int8-pc]

Run from the repository root after `dvc repro` (the models must exist), on an idle machine.

`monitor`: one process holds the reference twice (an A/A twin) and the candidate, and times a pass
of each over the speedup stage's texts (batch 1), in turn, for --seconds. The reference's pass time
shows the machine's state; the script tells fast from slow passes as stages/lib/timing.py tells processes
and prints how often each state occurred, how long its episodes lasted, and the candidate's and
the A/A twin's ratio in each.

`method`: fresh processes in turn, --rounds times each: the reference alone, the candidate alone
(one model per process: what the speedup stage does and a deployment sees), both in one process as
two sessions timed in alternating passes (the old method), the same with onnxruntime's
`session.intra_op.allow_spinning` off, and the candidate with an OpenVINO session of the reference
loaded beside it. It prints each configuration's median pass time per model and the ratios.

A benchmark, not a test: minutes of an idle machine.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stages.lib import params as params_lib
from stages.lib import timing
from stages.lib.corpus import sample_texts

CONFIGS = ("ref", "cand", "both", "both-nospin", "cand+ov")


def _embedder(params, name: str, spinning: bool = True):
    from stages.lib.embedding import open_embedder

    s = params.benchmark
    emb = open_embedder(params, name, s.provider, s.intra_op_threads, s.inter_op_threads)
    if not spinning:  # a session's options are fixed at creation: make it again with spinning off
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        emb.runner.session = ort.InferenceSession(str(emb.runner.model_file), options, providers=[s.provider])
        emb.runner.run = emb.runner.session.run
    return emb


def _pass_fn(emb, texts):
    from stages.lib.benchmarking import timing_call

    call = timing_call(emb)
    feeds = [emb.feed([x])[0] for x in emb.tokenizer.encode(texts)]

    def one_pass() -> float:
        t0 = time.perf_counter()
        for f in feeds:
            call(f)
        return time.perf_counter() - t0
    one_pass()  # untimed, as in the speedup stage
    return one_pass


def child(config: str, candidate: str, passes: int) -> dict:
    """One fresh process of the `method` comparison: median pass seconds per model it times."""
    params = params_lib.load()
    texts = sample_texts(params.corpus, "documents", params.benchmark.speedup_texts)
    ref, cand = params.reference, candidate
    timed = {"ref": [ref], "cand": [cand], "both": [ref, cand], "both-nospin": [ref, cand], "cand+ov": [cand]}[config]
    loaded = {n: _pass_fn(_embedder(params, n, spinning=config != "both-nospin"), texts) for n in timed}
    if config == "cand+ov":  # an OpenVINO session of the reference beside it, run once, then idle
        ov = next(n for n, m in params.models.items() if m.runtime == "openvino")
        _pass_fn(_embedder(params, ov), texts)
    times = {n: [] for n in timed}
    for _ in range(passes):
        for n in timed:
            times[n].append(loaded[n]())
    return {n: float(np.median(v)) for n, v in times.items()}


def method(rounds: int, candidate: str) -> None:
    params = params_lib.load()
    rows = {c: [] for c in CONFIGS}
    for r in range(rounds):
        for config in CONFIGS:
            out = subprocess.run([sys.executable, __file__, "child", config, "--candidate", candidate],
                                 capture_output=True, text=True, check=True)
            rows[config].append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"round {r + 1}/{rounds}: " + "; ".join(f"{c} {rows[c][-1]}" for c in CONFIGS), flush=True)
    ref, cand = params.reference, candidate
    med = {c: {n: float(np.median([x[n] for x in rows[c]])) for n in rows[c][0]} for c in CONFIGS}
    alone = med["ref"][ref] / med["cand"][cand]
    print(f"\nmedian pass seconds over {rounds} rounds ({params.benchmark.speedup_texts} texts, batch 1):")
    print(f"  one model per process: {ref} {med['ref'][ref]:.3f}, {cand} {med['cand'][cand]:.3f}; ratio {alone:.3f}")
    for c in ("both", "both-nospin"):
        m = med[c]
        print(f"  {c}: {ref} {m[ref]:.3f} ({m[ref] / med['ref'][ref] - 1:+.1%} vs alone), {cand} {m[cand]:.3f} "
              f"({m[cand] / med['cand'][cand] - 1:+.1%}); ratio {m[ref] / m[cand]:.3f}")
    m = med["cand+ov"]
    print(f"  cand+ov: {cand} {m[cand]:.3f} ({m[cand] / med['cand'][cand] - 1:+.1%} vs alone)")


def monitor(seconds: float, candidate: str) -> None:
    params = params_lib.load()
    texts = sample_texts(params.corpus, "documents", params.benchmark.speedup_texts)
    ref = params.reference
    passes = {"ref": _pass_fn(_embedder(params, ref), texts), "cand": _pass_fn(_embedder(params, candidate), texts),
              "twin": _pass_fn(_embedder(params, ref), texts)}
    rows, start = [], time.monotonic()
    while time.monotonic() - start < seconds:
        rows.append({"t": time.monotonic() - start, **{k: f() for k, f in passes.items()}})
    t = np.array([r["t"] for r in rows])
    ref_s = np.array([r["ref"] for r in rows])
    # the speedup stage's own split, each cycle's reference pass standing in for one of its processes
    states = timing.speed_states([{"model": ref, "per_text_ms": [x], "block": 0, "position": k}
                                  for k, x in enumerate(ref_s)], ref)
    print(f"{len(rows)} cycles over {seconds:.0f} s; reference pass {ref_s.min():.3f}-{ref_s.max():.3f} s")
    if states["threshold_ms"] is None:
        print(f"one state: fewer than two of the reference's passes more than {timing.STATE_GAP:.0%} slower than "
              "its fast level")
        return
    slow = np.array(states["processes"]) == "slow"
    episodes, cur, began = [], slow[0], t[0]
    for k in range(1, len(t)):
        if slow[k] != cur:
            episodes.append((bool(cur), t[k] - began))
            cur, began = slow[k], t[k]
    episodes.append((bool(cur), t[-1] - began))
    for state, mask in (("fast", ~slow), ("slow", slow)):
        if not mask.any():
            continue
        sel = [r for r, m in zip(rows, mask) if m]
        lengths = [d for s, d in episodes if s == (state == "slow")]
        print(f"{state}: {mask.mean():.0%} of cycles; reference {np.median([r['ref'] for r in sel]):.3f} s a pass; "
              f"{candidate} ratio {np.median([r['ref'] / r['cand'] for r in sel]):.3f}; "
              f"A/A ratio {np.median([r['ref'] / r['twin'] for r in sel]):.3f}; {len(lengths)} episodes, "
              f"{min(lengths):.0f}-{max(lengths):.0f} s (median {np.median(lengths):.0f} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["monitor", "method", "child"])
    ap.add_argument("config", nargs="?", choices=CONFIGS)
    ap.add_argument("--candidate", default="int8-pc")
    ap.add_argument("--seconds", type=float, default=900)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--passes", type=int, default=3)
    args = ap.parse_args()
    if args.mode == "monitor":
        monitor(args.seconds, args.candidate)
    elif args.mode == "method":
        method(args.rounds, args.candidate)
    else:
        print(json.dumps(child(args.config, args.candidate, args.passes)))


if __name__ == "__main__":
    main()
