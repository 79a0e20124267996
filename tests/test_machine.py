"""Machine facts: what they hold, that they are stable on one machine, the test-only override,
the refusal to run on facts that do not match the dependency file, and the load monitor."""
import json
import re
import subprocess
import sys
import time

import pytest

from stages.lib import machine, machine_words
from stages.lib.documents.common import Load
from stages.lib.errors import UserError
from stages.lib.outputs import write_json


@pytest.mark.parametrize("flags,expected", [
    ({"avx2", "fma", "avx512f", "avx512_vnni", "amx_tile", "amx_int8", "amx_bf16"}, "AMX-INT8"),
    ({"avx2", "avx512f", "avx512_vnni"}, "AVX512-VNNI"),
    ({"avx2", "avx512vnni"}, "AVX512-VNNI"),
    ({"avx2", "amx_tile"}, "AVX2 only (no VNNI)"),  # AMX needs both amx_tile and amx_int8
    ({"avx2", "amx_tile", "avx512_vnni"}, "AVX512-VNNI"),
    ({"avx2", "fma", "avx_vnni"}, "AVX-VNNI"),
    ({"avx2", "avxvnni"}, "AVX-VNNI"),
    ({"avx2", "fma", "f16c"}, "AVX2 only (no VNNI)"),
    ({"neon", "asimddp"}, "ARM dot-product/i8mm"),
    ({"neon", "i8mm"}, "ARM dot-product/i8mm"),
    ({"sse4_2", "neon"}, "none detected"),
    (set(), "none detected"),
])
def test_int8_support(flags, expected):
    assert machine.int8_support(flags) == expected


def test_int8_path_groups_the_exact_sum_kernels():
    vnni = {machine_words.int8_path(s).text() for s in ("AMX-INT8", "AVX512-VNNI", "AVX-VNNI")}
    assert vnni == {"CPUs with VNNI (AVX512-VNNI, AVX-VNNI or AMX)"}
    assert machine_words.int8_path("AVX2 only (no VNNI)").text() == "AVX2 CPUs without VNNI"
    assert machine_words.int8_path("AVX2 only (no VNNI)").text("ru") == "ЦП с AVX2 без VNNI"
    assert machine_words.int8_path("none detected").text("ru") == "ЦП с поддержкой INT8 'не обнаружено'"


FACTS = {"cpu": "Test CPU", "cores_logical": 4, "cores_physical": 2, "arch": "x86_64", "flags": ["avx2"],
         "int8_support": "AVX2 only (no VNNI)", "onnxruntime": "1.2"}


@pytest.mark.parametrize("facts", [
    FACTS, {**FACTS, "flags": ["avx512f", "avx512_vnni", "amx_bf16"], "int8_support": "AVX512-VNNI", "openvino": "2"},
    {**FACTS, "provider": "CUDAExecutionProvider", "gpus": [{"name": "H100", "driver": "550", "memory_mib": 8}]},
    {**FACTS, "provider": "CUDAExecutionProvider", "gpus": [], "override": ["cpu", "flags"]},
    {k: v for k, v in FACTS.items() if not k.startswith(("cpu", "cores"))} | {"int8_support": "none detected"},
    None,
])
def test_documents_describe_a_machine_as_the_console_does(facts):
    """machine.describe (the stages' console, no catalog) and machine_words.description (documents,
    any language) are one sentence: in English they must agree, and the Russian has no English left."""
    if facts is not None:
        assert machine_words.description(facts).text() == machine.describe(facts)
    assert machine_words.label(facts).description == machine_words.description(facts).text()
    ru = machine_words.description(facts).text("ru")
    assert not {"logical", "physical", "cores", "only", "timed", "found", "simulated", "unknown", "detected"} & set(
        re.findall(r"[a-z]+", ru))


def _load(fraction: float | None, busy: bool = False) -> Load:
    return Load(seconds=1.0, cores=2, own_cpu_s=1.0, other_cpu_s=0.0, other_fraction=fraction, tolerance=0.1,
                busy=busy)


def test_the_load_cell_says_the_same_on_the_console_and_in_the_report():
    for load in (None, _load(None), _load(0.03), _load(0.6, busy=True)):
        assert machine_words.load_cell(load, "en") == machine.load_cell(load)
    assert machine.load_cell(_load(0.6, busy=True)) == "60% [!] busy"
    assert machine_words.load_cell(_load(0.6, busy=True), "ru") == "60% [!] занята"


X86 = """processor\t: 0
model name\t: Test CPU 9000
flags\t\t: fpu sse4_1 sse4_2 avx avx2 fma aes avx512f avx512vnni amx_tile amx_int8 hypervisor
processor\t: 1
model name\t: Test CPU 9000
flags\t\t: fpu
"""
ARM = "processor\t: 0\nFeatures\t: fp asimd asimddp i8mm\nCPU implementer\t: 0x41\n"


def test_parse_cpuinfo_reads_the_first_cpu_and_folds_aliases():
    brand, flags = machine.parse_cpuinfo(X86)
    assert brand == "Test CPU 9000"
    assert {"avx2", "avx512_vnni", "amx_int8"} <= flags and "avx512vnni" not in flags
    assert machine.int8_support(flags) == "AMX-INT8"
    brand, flags = machine.parse_cpuinfo(ARM)
    assert brand == "" and machine.int8_support(flags) == "ARM dot-product/i8mm"


def test_detect_is_stable_and_timing_facts_extend_embed_facts(monkeypatch):
    monkeypatch.delenv(machine.OVERRIDE_ENV, raising=False)
    monkeypatch.setattr(machine, "_cpu_brand_and_flags",
                        lambda: ("Test CPU 9000", {"avx2", "fma", "aes", "avx512_vnni"}))
    first, second = machine.detect(), machine.detect()
    assert first == second  # the same machine gives the same bytes: nothing reruns
    embed, timing = first["embed"], first["timing"]
    assert embed["flags"] == ["avx2", "avx512_vnni", "fma"]  # kernel-relevant flags only, sorted
    assert embed["int8_support"] == "AVX512-VNNI" and embed["provider"] == "CPUExecutionProvider"
    import onnxruntime
    assert embed["onnxruntime"] == onnxruntime.__version__
    assert {k: timing[k] for k in embed} == embed
    assert timing["cpu"] == "Test CPU 9000" and timing["cores_logical"] >= 1
    assert "cpu" not in embed and "cores_logical" not in embed  # the CPU model does not change the vectors


def test_a_gpu_provider_names_the_gpus_in_the_timing_facts_only(tmp_path, monkeypatch):
    """benchmark.provider CUDA: timing.json names the card (from nvidia-smi), so a GPU number carries
    its machine and another card reruns the timing stages; the embed facts (CPU) do not change."""
    monkeypatch.delenv(machine.OVERRIDE_ENV, raising=False)
    fake = tmp_path / "bin" / "nvidia-smi"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'NVIDIA H100 80GB HBM3, 550.54.15, 81559'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:/usr/bin:/bin")
    cpu, gpu = machine.detect(), machine.detect("CUDAExecutionProvider")
    assert gpu["embed"] == cpu["embed"]
    assert "gpus" not in cpu["timing"] and cpu["timing"]["provider"] == "CPUExecutionProvider"
    assert gpu["timing"]["provider"] == "CUDAExecutionProvider"
    assert gpu["timing"]["gpus"] == [{"name": "NVIDIA H100 80GB HBM3", "driver": "550.54.15", "memory_mib": 81559}]
    assert machine.machine_id(gpu["timing"]) != machine.machine_id(cpu["timing"])
    assert "timed on CUDAExecutionProvider: NVIDIA H100 80GB HBM3 (driver 550.54.15)" in machine.describe(gpu["timing"])
    fake.unlink()  # no nvidia-smi: said, not guessed
    assert machine.gpu_facts() == []
    assert "no GPU found by nvidia-smi" in machine.describe(machine.detect("CUDAExecutionProvider")["timing"])


def test_override_simulates_another_machine(monkeypatch):
    base = machine.detect()
    monkeypatch.setenv(machine.OVERRIDE_ENV, json.dumps({"cpu": "Other CPU"}))
    only_timing = machine.detect()
    assert only_timing["timing"]["cpu"] == "Other CPU" and only_timing["timing"]["override"] == ["cpu"]
    assert only_timing["embed"] == base["embed"]  # untouched: embeddings do not rerun
    monkeypatch.setenv(machine.OVERRIDE_ENV, json.dumps({"int8_support": "AMX-INT8", "flags": ["amx_int8"]}))
    both = machine.detect()
    assert both["embed"]["int8_support"] == both["timing"]["int8_support"] == "AMX-INT8"
    assert "simulated" in machine.describe(both["embed"])
    monkeypatch.setenv(machine.OVERRIDE_ENV, json.dumps({"cpus": "typo"}))
    with pytest.raises(UserError, match="EMBED_COMPARE_MACHINE"):
        machine.detect()


def test_machine_id_names_a_fact_set():
    a = {"arch": "x86_64", "flags": ["avx2"], "int8_support": "AVX2 only (no VNNI)", "onnxruntime": "1"}
    assert machine.machine_id(a) == machine.machine_id(dict(reversed(list(a.items()))))
    assert machine.machine_id(a) != machine.machine_id({**a, "onnxruntime": "2"})
    assert machine_words.label(None).id is None and "unknown" in machine_words.label(None).description


def test_current_refuses_a_dependency_file_from_another_machine(tmp_path, monkeypatch):
    monkeypatch.delenv(machine.OVERRIDE_ENV, raising=False)
    path = write_json(tmp_path / "timing.json", machine.detect()["timing"])
    assert machine.current("timing", path) == machine.detect()["timing"]
    write_json(path, {**machine.detect()["timing"], "cpu": "Another CPU"})
    with pytest.raises(UserError, match=r"timing.json: describes another machine.*dvc repro machine/dvc.yaml"):
        machine.current("timing", path)


def test_load_monitor_tells_our_cpu_from_other_processes():
    with machine.LoadMonitor() as idle_self:
        spin = "import time\nt = time.time()\nwhile time.time() - t < 1.0: pass"
        child = subprocess.Popen([sys.executable, "-c", spin])
        child.wait()
    other = idle_self.summary(0.1)
    assert other.other_cpu_s > 0.5  # the child's busy second is someone else's CPU
    assert other.busy is True and other.other_fraction > 0.1
    with machine.LoadMonitor() as busy_self:
        t = time.process_time()
        while time.process_time() - t < 0.5:
            pass
    assert busy_self.result["own_cpu_s"] >= 0.45  # our own work is not counted as load
