"""The machine a result comes from: the facts that change it, as a DVC dependency and as a label.

Two fact sets, because results depend on the machine in two ways:
- `embed` facts decide the numbers a model computes: onnxruntime picks its kernels by instruction
  set (dynamic INT8 without VNNI adds u8 x s8 products in saturating 16-bit pairs, so the same
  INT8 file gives other vectors on an AVX2-only CPU than on one with AVX512-VNNI or AMX), and
  OpenVINO its default precision (bf16 where the CPU has it): both runtimes' versions count.
- `timing` facts decide how fast it runs: the embed facts plus the CPU model and core counts, and
  the execution provider the timing stages use (`benchmark.provider`): with a GPU provider, the
  GPUs nvidia-smi lists (model, driver, memory), so a GPU number names its card.
The `machine` stage writes both files on every `dvc repro`; they only change content on a machine
that differs, so exactly the stages that depend on them rerun there, and nothing reruns here.

`EMBED_COMPARE_MACHINE` (test-only) is a JSON object whose keys replace detected facts, to
simulate another machine; results made under it say so (`override`).
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from importlib import metadata

from .documents.common import Load
from .errors import UserError

OVERRIDE_ENV = "EMBED_COMPARE_MACHINE"
KINDS = ("embed", "timing")

# CPU flags onnxruntime's kernels (MLAS) dispatch on, as /proc/cpuinfo names them; aliases folded.
KERNEL_FLAGS = ("sse4_1", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
                "avx_vnni", "amx_tile", "amx_int8", "amx_bf16", "avx512_bf16", "avx512_fp16",
                "neon", "asimd", "asimddp", "i8mm", "asimdhp", "bf16", "sve")
ALIASES = {"avx512vnni": "avx512_vnni", "avxvnni": "avx_vnni", "avx512bf16": "avx512_bf16",
           "avx512fp16": "avx512_fp16"}
VNNI_PATHS = ("AMX-INT8", "AVX512-VNNI", "AVX-VNNI")
AVX2_ONLY = "AVX2 only (no VNNI)"
ORT_PACKAGES = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino", "onnxruntime-directml")
CPU_PROVIDER = "CPUExecutionProvider"
EXTRA_FLAGS = ("avx512f", "amx_bf16", "avx512_bf16", "avx512_fp16")  # named beside the INT8 path in a description


def int8_support(flags: set[str]) -> str:
    """What the CPU offers for INT8 matrix math: decides both speed and (see above) the numbers."""
    flags = {ALIASES.get(f, f) for f in flags}
    if {"amx_int8", "amx_tile"} <= flags:
        return "AMX-INT8"
    if "avx512_vnni" in flags:
        return "AVX512-VNNI"
    if "avx_vnni" in flags:
        return "AVX-VNNI"
    if "i8mm" in flags or "asimddp" in flags:
        return "ARM dot-product/i8mm"
    if "avx2" in flags:
        return AVX2_ONLY
    return "none detected"


def int8_family(support: str) -> str:
    """The kernel family of an `int8_support` value, which decides the INT8 numbers: "vnni" (u8 x s8
    products summed exactly), "avx2" (no VNNI: saturating 16-bit pairs), "arm" or "other"."""
    if support in VNNI_PATHS:
        return "vnni"
    if support == AVX2_ONLY:
        return "avx2"
    if support.startswith("ARM"):
        return "arm"
    return "other"


def parse_cpuinfo(text: str) -> tuple[str, set[str]]:
    """CPU model and flags from /proc/cpuinfo text (x86 'model name'/'flags', ARM 'Features')."""
    brand, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "Model Name") and not brand:
            brand = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = {ALIASES.get(f, f) for f in value.split()}
    return brand, flags


def _cpu_brand_and_flags() -> tuple[str, set[str]]:
    """From /proc/cpuinfo where there is one (instant), else py-cpuinfo (about a second)."""
    try:
        brand, flags = parse_cpuinfo(open("/proc/cpuinfo", encoding="utf-8", errors="replace").read())
    except OSError:
        brand, flags = "", set()
    if not flags:
        import cpuinfo

        info = cpuinfo.get_cpu_info()
        brand, flags = info.get("brand_raw", ""), {ALIASES.get(f, f) for f in info.get("flags", [])}
    return brand or platform.processor() or "unknown CPU", flags


def _package_version(names) -> tuple[str, str]:
    for name in names:
        try:
            return name, metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "none", "not installed"


def gpu_facts() -> list[dict]:
    """The NVIDIA GPUs nvidia-smi lists (name, driver, memory); [] where there is none or no nvidia-smi."""
    import subprocess

    query = ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader,nounits"]
    try:
        out = subprocess.run(query, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    gpus = []
    for line in out.stdout.splitlines() if out.returncode == 0 else []:
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3:
            gpus.append({"name": parts[0], "driver": parts[1],
                         "memory_mib": int(parts[2]) if parts[2].isdigit() else parts[2]})
    return gpus


def detect(timing_provider: str = CPU_PROVIDER) -> dict[str, dict]:
    """Both fact sets of this machine, with the test-only override applied. No load, no clock:
    the same machine gives the same bytes, so an unchanged machine reruns nothing.
    `timing_provider`: `benchmark.provider`; the embed stage always runs on the CPU."""
    import psutil

    brand, flags = _cpu_brand_and_flags()
    package, version = _package_version(ORT_PACKAGES)
    embed = {
        "arch": platform.machine(),
        "flags": sorted(flags & set(KERNEL_FLAGS)),
        "int8_support": int8_support(flags),
        "onnxruntime": version,
        "onnxruntime_package": package,
        "tokenizers": _package_version(("tokenizers",))[1],
        "openvino": _package_version(("openvino",))[1],  # models with runtime: openvino
        "provider": CPU_PROVIDER,
    }
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    timing = {"cpu": brand, **embed, "cores_logical": psutil.cpu_count(logical=True),
              "cores_physical": psutil.cpu_count(logical=False), "cpu_affinity": affinity}
    if timing_provider != CPU_PROVIDER:  # CPU timings keep the bytes they had: nothing reruns
        timing.update(provider=timing_provider, gpus=gpu_facts(),
                      cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"))
    facts = {"embed": embed, "timing": timing}
    raw = os.environ.get(OVERRIDE_ENV)
    if raw:
        try:
            override = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise UserError(f"{OVERRIDE_ENV}: not a JSON object ({exc.msg})") from None
        if not isinstance(override, dict) or not set(override) <= set(timing):
            raise UserError(f"{OVERRIDE_ENV}: must be a JSON object with keys among {', '.join(timing)}")
        for fset in facts.values():
            replaced = sorted(k for k in override if k in fset)
            if replaced:  # a fact set the override does not touch stays byte-identical
                fset.update({k: override[k] for k in replaced}, override=replaced)
    return facts


def machine_id(facts: dict) -> str:
    """A short stable name for a fact set: equal ids, equal facts."""
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:8]


def describe(facts: dict) -> str:
    """One line a person reads: CPU (timing facts only), cores, INT8 path, flags, runtime. In English,
    for the stages' console lines and errors; documents carry machine_words.description, which says
    the same in any language (a test keeps the two equal), so the timing stages need no catalog."""
    parts = []
    if "cpu" in facts:
        parts.append(f"{facts['cpu']}, {facts['cores_logical']} logical / {facts['cores_physical']} physical cores")
    parts.append(f"{facts['arch']} {facts['int8_support']}")
    extra = [f for f in facts["flags"] if f in EXTRA_FLAGS]
    if extra:
        parts[-1] += f" (+{', '.join(extra)})"
    if facts.get("provider", CPU_PROVIDER) != CPU_PROVIDER:
        cards = ", ".join(f"{g['name']} (driver {g['driver']})" for g in facts.get("gpus", []))
        cards = cards or "no GPU found by nvidia-smi"
        parts.append(f"timed on {facts['provider']}: {cards}")
    parts.append(f"onnxruntime {facts['onnxruntime']}")
    if facts.get("openvino", "not installed") != "not installed":
        parts.append(f"openvino {facts['openvino']}")
    if facts.get("override"):
        parts.append(f"simulated: {', '.join(facts['override'])} overridden")
    return ", ".join(parts)


def current(kind: str, recorded_path, timing_provider: str = CPU_PROVIDER) -> dict:
    """This machine's facts of one kind, checked against the file the stage depends on.

    A stage run with `dvc repro -s` skips the machine stage; if the file then describes another
    machine, DVC would record a dependency that is not what the stage ran on. Refuse instead.
    """
    from .outputs import read_json

    facts = detect(timing_provider)[kind]
    recorded = read_json(recorded_path)
    if recorded != facts:
        raise UserError(f"{recorded_path}: describes another machine than this one "
                        f"({describe(recorded)} vs {describe(facts)}); run `dvc repro machine/dvc.yaml` first")
    return facts


class LoadMonitor:
    """How busy the machine was with other work while we timed: CPU time used by every other
    process, as a fraction of all cores over the wall time (system CPU time minus our own)."""

    MIN_SECONDS = 0.5

    def __enter__(self) -> LoadMonitor:
        import psutil

        self._proc = psutil.Process()
        self._start = (time.monotonic(), self._busy(psutil.cpu_times()), self._own())
        return self

    @staticmethod
    def _busy(times) -> float:
        fields = ("user", "nice", "system", "irq", "softirq", "steal")
        return sum(getattr(times, f) for f in fields if hasattr(times, f))

    def _own(self) -> float:
        t = self._proc.cpu_times()  # every thread of this process (onnxruntime's pool included)
        return t.user + t.system

    def __exit__(self, *exc) -> None:
        import psutil

        wall0, busy0, own0 = self._start
        wall = time.monotonic() - wall0
        cores = psutil.cpu_count(logical=True) or 1
        busy, own = self._busy(psutil.cpu_times()) - busy0, self._own() - own0
        others = max(busy - own, 0.0)  # steal (a VM's CPU given to other guests) counts as others'
        # CPU times tick at 10 ms: below MIN_SECONDS of timing the fraction would be mostly rounding
        self.result = {"seconds": wall, "cores": cores, "own_cpu_s": own, "other_cpu_s": others,
                       "other_fraction": others / (wall * cores) if wall >= self.MIN_SECONDS else None}

    def summary(self, tolerance: float) -> Load:
        frac = self.result["other_fraction"]
        return Load(**self.result, tolerance=tolerance, busy=bool(frac is not None and frac > tolerance))


def load_cell(load: Load | None) -> str:
    """'3%', '60% [!] busy' or why there is no figure: the share of the CPU other processes used
    (English, for the stages' console lines: the report's is machine_words.load_cell)."""
    if not load:
        return "n/a (not recorded)"
    if load.other_fraction is None:
        return f"n/a (timed under {LoadMonitor.MIN_SECONDS} s)"
    return f"{load.other_fraction:.0%}" + (" [!] busy" if load.busy else "")
