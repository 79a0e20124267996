"""The report's machine bookkeeping: which machine each number came from, and what it says about the
other INT8 instruction path. Rendering as a whole runs in the end-to-end test."""
from stages.lib.machine import label
from stages.lib.reporting import int8_path_advice, machine_summary

A = {"cpu": "CPU A", "cores_logical": 2, "cores_physical": 2, "arch": "x86_64", "flags": ["avx2"],
     "int8_support": "AVX2 only (no VNNI)", "onnxruntime": "1"}
B = {**A, "cpu": "CPU B", "flags": ["avx2", "avx512_vnni"], "int8_support": "AVX512-VNNI"}
EMB_A = {k: v for k, v in A.items() if k not in ("cpu", "cores_logical", "cores_physical")}


def _model(embed, bench, speedup):
    return {"machines": {"embed": label(embed), "benchmark": label(bench), "speedup": label(speedup)}}


def test_one_machine_gives_no_warning():
    models = {"ref": _model(EMB_A, A, A), "cand": _model(EMB_A, A, A)}
    out = machine_summary(models, label(A))
    assert out["warnings"] == []
    assert list(out["timing"]) == ["T1"] and out["timing"]["T1"]["description"] == label(A)["description"]
    assert out["timing"]["T1"]["used_by"] == ["ref benchmark", "ref speedup", "cand benchmark", "cand speedup"]
    assert list(out["embed"]) == ["E1"]


def test_mixed_timings_are_named_per_model_and_never_merged():
    models = {"ref": _model(EMB_A, A, A), "cand": _model(EMB_A, B, A)}
    out = machine_summary(models, label(A))
    assert set(out["timing"]) == {"T1", "T2"} and out["timing"]["T2"]["used_by"] == ["cand benchmark"]
    assert [w.split(":")[0] for w in out["warnings"]] == ["ref", "cand"]
    assert "benchmark on T2, speedup on T1" in out["warnings"][1]


def test_results_from_elsewhere_are_flagged_against_this_machine():
    models = {"ref": _model(EMB_A, A, A)}
    out = machine_summary(models, label(B))
    assert out["warnings"] == [f"the timings come from another machine than this one ({label(B)['description']})"]


def test_results_without_machine_facts_are_unknown_not_guessed():
    out = machine_summary({"ref": _model(None, None, None)}, label(A))
    assert out["timing"]["T1"]["id"] is None and "unknown" in out["timing"]["T1"]["description"]


def test_int8_advice_points_at_the_other_path():
    avx2 = int8_path_advice("c", "AVX2 only (no VNNI)", {"reduce_range": False})
    assert "saturating 16-bit" in avx2 and "try quantize.NAME.reduce_range: true" in avx2
    vnni = int8_path_advice("c", "AMX-INT8", {"reduce_range": True})
    assert "without VNNI" in vnni and "only costs accuracy" in vnni and "turn it off" in vnni
    assert "Here reduce_range would only cost accuracy" in int8_path_advice("c", "AVX-VNNI", None)
    assert "not recorded" in int8_path_advice("c", None, None)
