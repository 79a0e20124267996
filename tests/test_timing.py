"""The speedup method (stages/lib/timing.py): its interval against simulated two-level timings, the
block arithmetic against a direct computation, the schedule, the speed states, and one real fresh
process. No wall-clock assertions: what the numbers must be, given the times."""
import math

import numpy as np
import pytest
from scipy import stats

from stages.lib import timing
from stages.lib.documents.common import Environment
from stages.lib.errors import UserError

# ---------------------------------------------------------------- the interval

def _coverage(rng, sims: int, k: int, r: int, offsets, sd_round: float, truth: float) -> tuple[float, float]:
    """(nested, rounds-only) coverage of `truth` by 95% intervals over `sims` simulated runs of k
    processes x r rounds: log ratio = process offset (drawn by `offsets`) + round noise."""
    nested = pooled = 0
    for _ in range(sims):
        logs = offsets(rng, k)[:, None] + rng.normal(0, sd_round, (k, r))
        _, lo, hi = timing.t_interval(logs.mean(axis=1), 0.95)
        nested += lo <= math.exp(truth) <= hi
        _, lo, hi = timing.t_interval(logs.ravel(), 0.95)  # what an interval over rounds alone claims
        pooled += lo <= math.exp(truth) <= hi
    return nested / sims, pooled / sims


def test_interval_over_processes_covers_the_true_ratio_where_rounds_alone_do_not():
    rng = np.random.default_rng(0)
    mu = math.log(2.0)
    nested, pooled = _coverage(rng, 2000, k=6, r=5, offsets=lambda g, k: mu + g.normal(0, 0.05, k),
                               sd_round=0.02, truth=mu)
    assert 0.93 <= nested <= 0.97  # nominal 95%: 2000 runs put 4 standard errors at +-2%
    assert pooled < 0.80  # the round-only interval ignores the process offsets: too narrow


def test_interval_over_a_two_state_machine_misses_when_every_block_lands_in_one_state():
    """Independent blocks on a machine with two states (as on the dev VM: a third slow, ratio 1.85
    there, 2.1 otherwise); the target is the mean log ratio over the states. With 6 blocks all land
    in one state in (2/3)^6 + (1/3)^6 = 9% of runs, and such a run cannot see the other state: the
    interval covers about 89% (docs/timing.md), still far better than rounds alone."""
    rng = np.random.default_rng(1)
    fast, slow = math.log(2.1), math.log(1.85)
    truth = (2 * fast + slow) / 3
    nested, pooled = _coverage(rng, 2000, k=6, r=3, offsets=lambda g, k: np.where(g.random(k) < 1 / 3, slow, fast),
                               sd_round=0.01, truth=truth)
    one_state = (2 / 3) ** 6 + (1 / 3) ** 6
    assert 0.95 - one_state - 0.03 <= nested <= 0.95 and pooled < nested - 0.05


def test_a_rerun_lands_in_the_rerun_interval_at_the_nominal_rate_and_in_the_interval_less_often():
    """Two independent runs of 6 blocks each: the 95% interval for the speedup holds the other
    run's estimate about 87% of the time (it is for the true value, not for another estimate); the
    rerun interval, sqrt(2) wider, about 95%. What benchmarks/speed_stability.py measured on the
    demo (docs/timing.md): 86% and 95% of pairs."""
    rng = np.random.default_rng(4)
    held_ci = held_rerun = 0
    sims = 4000
    for _ in range(sims):
        first, second = rng.normal(math.log(2.0), 0.1, (2, 6))
        _, lo, hi = timing.t_interval(first, 0.95)
        rlo, rhi = timing.rerun_interval(first, 0.95)
        other = math.exp(second.mean())
        held_ci += lo <= other <= hi
        held_rerun += rlo <= other <= rhi
        assert math.log(rhi / rlo) == pytest.approx(math.sqrt(2) * math.log(hi / lo))
    assert 0.84 <= held_ci / sims <= 0.90 and 0.93 <= held_rerun / sims <= 0.97
    assert timing.rerun_interval([0.5], 0.95) == (None, None)


def test_t_interval_is_scipys_on_the_log_scale():
    ratios = [1.9, 2.1, 2.0, 1.8, 2.2, 2.05]
    logs = np.log(ratios)
    lo, hi = stats.t.interval(0.95, len(logs) - 1, loc=logs.mean(), scale=stats.sem(logs))
    np.testing.assert_allclose(timing.t_interval(logs, 0.95), np.exp([logs.mean(), lo, hi]), rtol=1e-12)
    assert timing.t_interval([math.log(2.0)], 0.95) == (pytest.approx(2.0), None, None)


def test_variance_components_recover_known_between_and_within_spread():
    rng = np.random.default_rng(2)
    groups = [rng.normal(0, 0.05) + rng.normal(0, 0.02, 8) for _ in range(400)]
    got = timing.variance_components(groups)
    assert got["between_sd"] == pytest.approx(0.05, rel=0.1) and got["within_sd"] == pytest.approx(0.02, rel=0.05)
    assert timing.variance_components([[0.0, 0.1]]) == {"between_sd": None, "within_sd": None}


# ---------------------------------------------------------------- the schedule and the block arithmetic

def test_schedule_brackets_every_entry_with_reference_processes():
    plan = timing.schedule("ref", ["a", "b", "c"], blocks=4, seed=0)
    assert plan == timing.schedule("ref", ["a", "b", "c"], blocks=4, seed=0)  # deterministic
    assert len({tuple(b) for b in plan}) > 1  # shuffled per block
    for block in plan:
        assert block[0::2] == [("reference", "ref")] * 5  # before, between and after the entries
        assert sorted(block[1::2]) == sorted([(timing.CONTROL, "ref"), ("candidate", "a"), ("candidate", "b"),
                                              ("candidate", "c")])


def _process(block, position, role, model, per_text):
    return {"block": block, "position": position, "role": role, "model": model, "started_s": float(block),
            "per_text_ms": list(per_text), "pass_ms": [sum(per_text), sum(per_text) * 1.01],
            "load": {"seconds": 1.0, "cores": 2, "own_cpu_s": 2.0, "other_cpu_s": 0.02, "other_fraction": 0.01},
            "peak_rss_bytes": 100 + block, "session_create_s": 0.1,
            "environment": Environment(provider="CPUExecutionProvider",
                                       runtime={"runtime": "onnxruntime", "model": model}, intra_op_threads=1,
                                       inter_op_threads=1, memory_bytes=1, os="os", python="3", numpy="2")}


def _run(plan, ms) -> list[dict]:
    """The processes of `plan` where ms(i, role, model) gives the per-text times of the i-th process."""
    out, i = [], 0
    for b, block in enumerate(plan):
        for pos, (role, model) in enumerate(block):
            out.append(_process(b, pos, role, model, ms(i, role, model)))
            i += 1
    return out


def test_an_estimate_compares_each_entry_with_the_reference_processes_beside_it():
    rng = np.random.default_rng(3)
    texts = 7
    times = {}
    plan = timing.schedule("ref", ["cand", "other"], blocks=3, seed=1)
    run = _run(plan, lambda i, role, model: times.setdefault(i, rng.uniform(1, 9, texts)))
    want = []
    for b, block in enumerate(plan):
        pos = block.index(("candidate", "cand"))
        i = sum(len(x) for x in plan[:b]) + pos
        r1, c, r2 = times[i - 1], times[i], times[i + 1]
        want.append(stats.gmean([math.sqrt(r1[t] * r2[t]) / c[t] for t in range(texts)]))
    got = timing.entry_estimates(run, "candidate", "cand", timing.process_states(run))
    assert [g["speedup"] for g in got] == pytest.approx(want, rel=1e-12)


def _two_model_run(blocks: int, cand_factor: float, ref_ms=lambda i: 10.0, texts: int = 5):
    """A schedule's processes where the i-th process of the reference takes ref_ms(i) per text
    (times a small jitter), the candidate cand_factor times less than that; the control is the
    reference again."""
    base = np.linspace(0.5, 1.5, texts)

    def ms(i, role, model):
        jitter = 1 + 0.01 * (i % 3 - 1)
        return base * ref_ms(i) * jitter / (cand_factor if model == "cand" else 1.0)
    return _run(timing.schedule("ref", ["cand"], blocks, seed=0), ms)


def test_speedup_results_give_each_model_its_interval_and_the_reference_the_control():
    results = timing.speedup_results(_two_model_run(6, 2.0), "ref", 0.95, 0.10)
    cand, control = results["cand"].to_dict(), results["ref"].to_dict()  # as the speedup stage stores them
    assert {b["state"] for b in cand["blocks"] + control["blocks"]} == {"fast"} and cand["figure"] == "fast"
    block_logs = [math.log(b["speedup"]) for b in cand["blocks"]]
    assert tuple(cand["mix"].values()) == timing.t_interval(block_logs, 0.95)
    fast = timing.pooled_intervals({n: [math.log(b["state_speedup"]) for b in d["blocks"]]
                                    for n, d in (("cand", cand), ("ref", control))}, 0.95)["cand"]
    assert [cand[k] for k in ("speedup", "ci_low", "ci_high", "rerun_low", "rerun_high")] == [
        fast[k] for k in ("speedup", "ci_low", "ci_high", "rerun_low", "rerun_high")]
    assert cand["by_state"] == {"fast": fast} and fast["entries"] == 6
    assert cand["ci_low"] < 2.0 < cand["ci_high"] and cand["measurable"]
    assert control["control"] and control["ci_low"] <= 1.0 <= control["ci_high"] and not control["measurable"]
    assert len(control["reference_processes"]) == 6 * 3 and "reference_processes" not in cand  # R e R e R
    assert len(cand["processes"]) == 6 and cand["memory"]["peak_rss_bytes"] == 105
    assert cand["load"]["other_fraction"] == pytest.approx(0.01) and not cand["load"]["busy"]
    assert cand["reference_runtime"] == {"runtime": "onnxruntime", "model": "ref"}
    assert timing.speed_headline(results).to_dict() == {"cand": {"speedup": round(cand["speedup"], 3),
                                                        "speedup_low": round(cand["ci_low"], 3),
                                                        "speedup_high": round(cand["ci_high"], 3)}}


def test_on_a_two_state_machine_the_speedup_is_the_fast_states_whatever_the_mix():
    """The dev VM runs a process in its fast state or slowed from outside (reference 9 or 13 ms per
    text); the candidate is 2.1x faster in the fast state and 1.85x in the slow one. Here blocks of
    processes alternate between the states, so many entries sit beside a reference process in the
    other state. Each fast entry is compared with the nearest fast reference processes, so the
    headline is exactly 2.1 (the A/A control 1.0) and the slow state's 1.85; the mix against the
    neighbours lies between them."""
    slow = lambda i: (i // 7) % 2 == 1  # noqa: E731
    plan = timing.schedule("ref", ["cand", "b", "c"], blocks=6, seed=2)

    def ms(i, role, model):
        base = np.linspace(0.5, 1.5, 5) * (13.0 if slow(i) else 9.0)
        return base / ({"cand": 1.85 if slow(i) else 2.1}.get(model, 1.0))
    run = _run(plan, ms)
    results = {name: r.to_dict() for name, r in timing.speedup_results(run, "ref", 0.95, 0.10).items()}
    states = results["ref"]["states"]
    level = stats.gmean(np.linspace(0.5, 1.5, 5))  # a process's level: geometric mean over its texts
    assert states["state_ms"] == {"fast": pytest.approx(9.0 * level), "slow": pytest.approx(13.0 * level)}
    assert 9.0 < states["threshold_ms"] < 13.0
    assert states["processes"] == ["slow" if slow(i) else "fast" for i, p in enumerate(run) if p["model"] == "ref"]
    for name, want in (("ref", {"fast": 1.0, "slow": 1.0}), ("cand", {"fast": 2.1, "slow": 1.85})):
        r = results[name]
        for e in r["blocks"]:
            assert e["state_speedup"] == pytest.approx(want[e["state"]], rel=1e-9)
        assert r["speedup"] == pytest.approx(want["fast"], rel=1e-9) and r["figure"] == "fast"
        assert r["by_state"]["slow"]["speedup"] == pytest.approx(want["slow"], rel=1e-9)
        assert r["by_state"]["fast"]["entries"] + r["by_state"]["slow"]["entries"] == 6
    mixed = [e["speedup"] for e in results["cand"]["blocks"]]
    assert any(abs(x - 2.1) > 0.1 and abs(x - 1.85) > 0.1 for x in mixed)  # entries beside the other state


def test_without_a_fast_reference_process_the_headline_is_the_mix_and_says_so():
    """One block whose reference processes were all slowed (15 ms per text) while the control ran
    fast (10): nothing fast to compare the fast entries with, so the headline is the mix."""
    run = _two_model_run(1, 2.0, ref_ms=lambda i: 15.0 if i % 2 == 0 else 10.0)  # R e R e R: R at even i
    results = {n: r.to_dict() for n, r in timing.speedup_results(run, "ref", 0.95, 0.10).items()}
    for r in results.values():
        assert r["figure"] == "mix" and r["speedup"] == r["mix"]["speedup"]
        assert [b["state_speedup"] for b in r["blocks"]] == [None]
    assert results["ref"]["speedup"] == pytest.approx(1.5, rel=0.02)  # slowed neighbours / fast control


def test_a_process_is_slow_when_it_lost_more_than_the_gap_against_its_own_models_fast_level():
    """The fast level is the median of the processes within STATE_GAP of the fastest, so a lone
    fast outlier does not move the cut; a process that straddled a change (10.2 of 9 and 13) is
    fast when within the gap and slow beyond it."""
    got = timing.fast_flags([9.0, 9.1, 8.9, 9.05, 10.2, 11.0, 11.9, 12.5, 13.0, 13.1, 12.9, 13.05])
    # fast level: median of 8.9 .. 10.2 (within 15% of 8.9) = 9.05; cut 9.05 * 1.15 = 10.41
    assert got.tolist() == [True] * 5 + [False] * 7
    assert timing.fast_flags([5.0, 10.0, 10.1, 9.9, 10.2]).tolist() == [True, False, False, False, False]
    assert timing.fast_flags([10.0] * 3).all()


def test_two_states_need_two_slow_processes_but_one_is_still_left_out_of_the_fast_figure():
    run = _two_model_run(4, 2.0, ref_ms=lambda i: 15.0 if i == 0 else 10.0)
    states = timing.speed_states(run, "ref")
    assert states["threshold_ms"] is None and states["state_ms"] is None
    assert states["processes"] == ["slow"] + ["fast"] * (len(states["processes"]) - 1)
    two = timing.speed_states(_two_model_run(4, 2.0, ref_ms=lambda i: 15.0 if i in (0, 2) else 10.0), "ref")
    level = stats.gmean(np.linspace(0.5, 1.5, 5))  # processes 0 and 2 are reference processes (R e R ...)
    assert two["state_ms"] == {"fast": pytest.approx(10.0 * level, rel=0.02), "slow": pytest.approx(15.0 * level,
                                                                                                     rel=0.02)}


def test_pooled_intervals_are_the_one_way_anova_least_squares_intervals():
    """Against a least-squares fit computed another way: one indicator column per group, the
    residual variance on n - groups degrees of freedom, each mean's standard error from (X'X)^-1."""
    rng = np.random.default_rng(5)
    groups = {"a": rng.normal(0.7, 0.03, 5), "b": rng.normal(0.1, 0.03, 1), "c": rng.normal(-0.2, 0.03, 3)}
    y = np.concatenate(list(groups.values()))
    x = np.zeros((len(y), 3))
    row = 0
    for j, v in enumerate(groups.values()):
        x[row:row + len(v), j] = 1
        row += len(v)
    beta, rss, *_ = np.linalg.lstsq(x, y, rcond=None)
    df = len(y) - 3
    se = np.sqrt(rss[0] / df * np.diag(np.linalg.inv(x.T @ x)))
    got = timing.pooled_intervals({k: list(v) for k, v in groups.items()}, 0.95)
    for j, k in enumerate(groups):
        lo, hi = stats.t.interval(0.95, df, loc=beta[j], scale=se[j])
        assert [got[k][f] for f in ("speedup", "ci_low", "ci_high")] == pytest.approx(np.exp([beta[j], lo, hi]))
        assert math.log(got[k]["rerun_high"] / got[k]["rerun_low"]) == pytest.approx(math.sqrt(2) * (hi - lo))
        assert got[k]["entries"] == len(groups[k])
    one = timing.pooled_intervals({"a": [0.5], "b": [], "c": [0.2]}, 0.95)
    assert set(one) == {"a", "c"} and one["a"]["ci_low"] is None and one["a"]["speedup"] == pytest.approx(math.exp(0.5))


def _machine_run(rng, q: float, blocks: int = 6) -> list[dict]:
    """A run on a simulated two-state machine: each process slowed from outside with probability
    q (the reference 1.4x slower, the candidate 1.4 * 2.1 / 1.85 = 1.59x), a process-level noise of
    3% and a per-text one of 1%; the candidate is 2.1x faster in the fast state, 1.85x in the slow."""
    base = np.linspace(0.5, 1.5, 5) * 9.0

    def ms(i, role, model):
        slow = rng.random() < q
        factor = (1.4 if slow else 1.0) if model == "ref" else (1.4 * 2.1 / 1.85 if slow else 1.0) / 2.1
        return base * factor * math.exp(rng.normal(0, 0.03)) * np.exp(rng.normal(0, 0.01, len(base)))
    return _run(timing.schedule("ref", ["cand", "b"], blocks, seed=int(rng.integers(1 << 30))), ms)


def test_the_fast_state_speedup_survives_a_rerun_whose_share_of_slow_processes_differs():
    """What the dev VM showed (docs/timing.md): the share of slowed processes went from about 10%
    to 40% between runs minutes apart. Pairs of simulated runs, each with its own share drawn from
    5-45%: the fast-state interval covers the true 2.1 at about the nominal rate and its rerun
    interval holds the other run's estimate about 95% of the time; the mix over every process
    moves with the share and with which entries sat beside a slowed reference process: its
    estimates spread several times wider between runs."""
    rng = np.random.default_rng(6)
    sims, covered, held, fast, mix = 300, 0, 0, [], []
    for _ in range(sims):
        one, two = ({n: r.to_dict() for n, r in timing.speedup_results(
            _machine_run(rng, rng.uniform(0.05, 0.45)), "ref", 0.95, 0.10).items()}["cand"] for _ in range(2))
        covered += one["ci_low"] <= 2.1 <= one["ci_high"]
        held += one["rerun_low"] <= two["speedup"] <= one["rerun_high"]
        fast.append(math.log(one["speedup"]))
        mix.append(math.log(one["mix"]["speedup"]))
    assert 0.90 <= covered / sims <= 0.99  # nominal 95%; 300 pairs put 3 standard errors at +-4%
    assert 0.90 <= held / sims <= 0.99
    assert np.std(mix) > 3 * np.std(fast)  # 0.097 and 0.019 with this seed


def test_run_schedule_runs_every_process_in_order():
    plan = timing.schedule("ref", ["a"], blocks=2, seed=0)
    seen = []

    def fake(job):
        seen.append(job)
        return {"per_text_ms": [1.0]}

    out = timing.run_schedule(plan, lambda name: name, runner=fake)
    assert seen == [name for block in plan for _, name in block]
    assert [(p["block"], p["position"], p["role"]) for p in out] == [
        (b, i, role) for b, block in enumerate(plan) for i, (role, _) in enumerate(block)]


# ---------------------------------------------------------------- a real fresh process

def _params(tmp_path):
    import yaml

    from stages.lib.params import parse
    from tests import tiny

    tiny.build_model(tmp_path / "m")
    tiny.write_jsonl(tmp_path / "corpus.jsonl", tiny.corpus_rows(10))
    raw = yaml.safe_load(open("params.yaml"))
    raw.update(corpus=str(tmp_path / "corpus.jsonl"), reference="m", models={"m": {"path": str(tmp_path / "m")}},
               quantize={})
    raw["embed"].update(pooling="mean", max_length=16)
    return parse(raw)


def test_a_fresh_process_times_one_model_and_reports_its_own_memory(tmp_path):
    params = _params(tmp_path)
    texts = ["def f(x): return x", "select 1", "fn main() {}"]
    out = timing.in_fresh_process(timing.Job(params, "m", texts, passes=2))
    assert len(out["per_text_ms"]) == 3 and len(out["pass_ms"]) == 2 and min(out["per_text_ms"]) > 0
    assert out["peak_rss_bytes"] > 0 and out["environment"].runtime["runtime"] == "onnxruntime"


def test_a_failing_fresh_process_is_one_line_naming_the_model(tmp_path):
    params = _params(tmp_path)
    (tmp_path / "m" / "model.onnx").write_bytes(b"not a model")
    with pytest.raises(UserError, match="model.onnx"):
        timing.in_fresh_process(timing.Job(params, "m", ["x"], passes=1))
