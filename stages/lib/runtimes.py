"""Runners: one ONNX file executed by one runtime, behind the one interface every stage uses.

The split optimum-benchmark calls "backends": `Runner` says what a stage may ask of a loaded model
(input/output metadata, `run(outputs, feed)`, create time, the facts of how it runs) and each
runtime implements it once. Embed, benchmark, speedup and compare never branch on the runtime, so
an onnxruntime reference and an OpenVINO candidate are measured by the same code, in one process.

`open_runner` is the one place models are loaded. The file checks (missing or truncated model,
missing external data) run first, before any runtime sees the file, so their one-line errors are
the same under every runtime.

Precision is a fact, not a setting we trust: OpenVINO on a CPU with bf16 support runs an FP32 file
in bfloat16 by default, without saying so. Each runner reports the precision it actually uses,
read back from the compiled model.
"""
from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from dataclasses import dataclass, fields
from pathlib import Path

from .errors import UserError, first_line
from .onnxmodel import embedding_vocab_size, model_files, model_paths
from .params import RUNTIMES, OnnxRuntimeSettings

# OpenVINO element type names -> the onnxruntime type strings the embedder reads
OV_TYPES = {"i64": "tensor(int64)", "i32": "tensor(int32)", "f32": "tensor(float)", "f16": "tensor(float16)",
            "bf16": "tensor(bfloat16)", "f64": "tensor(double)", "boolean": "tensor(bool)"}


FLOAT_TYPES = ("tensor(float)", "tensor(float16)", "tensor(double)")  # outputs that can be pooled or compared
ORT_DEFAULTS = OnnxRuntimeSettings()  # onnxruntime's own memory options: params `onnxruntime` left out


@dataclass(frozen=True)
class TensorInfo:
    """An input or output as the model declares it; dynamic dims are strings or None (as onnxruntime)."""

    name: str
    shape: list | None
    type: str


class Runner:
    """A loaded model. `run` is the only thing timed regions call; `facts` says how it ran."""

    runtime = ""

    def __init__(self, model_file: Path, create_seconds: float):
        self.model_file = model_file
        self.create_seconds = create_seconds
        self.files: list[Path] = [model_file]  # graph file, then external data files (set by open_runner)
        self.vocab_size: int | None = None  # rows of the input_ids table, read from the graph by open_runner

    inputs: list[TensorInfo]
    outputs: list[TensorInfo]

    def run(self, outputs: list[str], feed: dict) -> list:
        """The named outputs, as numpy arrays, for one feed (input name -> array)."""
        raise NotImplementedError

    @property
    def device(self) -> str:
        """Where it really runs, in the runtime's words (an execution provider, an OpenVINO device)."""
        raise NotImplementedError

    def facts(self) -> dict:
        """runtime, version, device, precision {requested, used}, threads {intra_op, inter_op},
        memory_options {enable_cpu_mem_arena, enable_mem_pattern} (params `onnxruntime`, read back from
        the session): recorded with every result."""
        raise NotImplementedError

    def _facts(self, version: str, precision: dict, threads, memory: dict, **extra) -> dict:
        return {"runtime": self.runtime, "version": version, "device": self.device, "precision": precision,
                "threads": threads, "memory_options": memory, **extra}


class OnnxRuntimeRunner(Runner):
    """onnxruntime: runs each node in the types the file stores (no precision conversion on CPU)."""

    runtime = "onnxruntime"

    def __init__(self, model_file: Path, provider: str, intra_op_threads: int, inter_op_threads: int,
                 expose: list[str] | None = None, memory: OnnxRuntimeSettings = ORT_DEFAULTS):
        ort = _import_runtime("onnxruntime", model_file)

        available = ort.get_available_providers()
        if provider not in available:
            raise UserError(f"{model_file}: benchmark.provider {provider} is not available in this onnxruntime "
                            f"(have: {', '.join(available)}; CUDA needs the onnxruntime-gpu package)")
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = inter_op_threads
        options.enable_cpu_mem_arena = memory.enable_cpu_mem_arena
        options.enable_mem_pattern = memory.enable_mem_pattern
        options.log_severity_level = 3
        providers = [provider] if provider == "CPUExecutionProvider" else [provider, "CPUExecutionProvider"]
        source = (contextlib.nullcontext(str(model_file)) if expose is None
                  else _exposing(model_file, expose, options, ort))
        start = time.perf_counter()
        try:
            with source as path:
                self.session = ort.InferenceSession(path, sess_options=options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise UserError(f"{model_file}: onnxruntime cannot load it: {first_line(exc)}") from None
        super().__init__(model_file, time.perf_counter() - start)
        used = self.session.get_session_options()  # read back: what the session really runs with
        self.memory = {"enable_cpu_mem_arena": used.enable_cpu_mem_arena, "enable_mem_pattern": used.enable_mem_pattern}
        self.version = ort.__version__
        self.threads = {"intra_op": intra_op_threads or "default", "inter_op": inter_op_threads or "default"}
        self.providers_active = self.session.get_providers()
        if self.providers_active[0] != provider:
            # onnxruntime falls back to CPU with a log line when a listed provider fails to start
            # (CUDA/cuDNN libraries missing, no device): numbers from it would be CPU numbers labelled GPU
            raise UserError(f"{model_file}: benchmark.provider {provider} is installed but did not start "
                            f"(onnxruntime fell back to {self.providers_active[0]}); check its libraries and "
                            f"device, or set benchmark.provider: CPUExecutionProvider")
        self.inputs = [TensorInfo(i.name, list(i.shape), i.type) for i in self.session.get_inputs()]
        self.outputs = [TensorInfo(o.name, list(o.shape), o.type) for o in self.session.get_outputs()]
        self.run = self.session.run  # timed regions call onnxruntime itself, no wrapper frame

    @property
    def device(self) -> str:
        return self.providers_active[0]

    def facts(self) -> dict:
        return self._facts(self.version, {"requested": None, "used": "as stored in the file"}, self.threads,
                           self.memory, providers=self.providers_active)


class OpenVinoRunner(Runner):
    """OpenVINO on the CPU, reading the ONNX file (and its external data) directly."""

    runtime = "openvino"

    def __init__(self, model_file: Path, graph_outputs: list[str], precision: str, intra_op_threads: int):
        ov = _import_runtime("openvino", model_file)
        core = ov.Core()
        config = {} if precision == "auto" else {"INFERENCE_PRECISION_HINT": precision}
        if intra_op_threads:
            config["INFERENCE_NUM_THREADS"] = intra_op_threads
        start = time.perf_counter()
        try:
            self.compiled = core.compile_model(core.read_model(str(model_file)), "CPU", config)
        except Exception as exc:  # OpenVINO raises RuntimeError with multi-line text
            raise UserError(f"{model_file}: openvino cannot load it: {first_line(exc)}") from None
        super().__init__(model_file, time.perf_counter() - start)
        self.request = self.compiled.create_infer_request()
        self.inputs = [_ov_tensor(p, ()) for p in self.compiled.inputs]
        # an output port can carry several names (OpenVINO adds internal ones): use the graph's own
        self.outputs = [_ov_tensor(p, graph_outputs) for p in self.compiled.outputs]
        self.ports = {info.name: port for info, port in zip(self.outputs, self.compiled.outputs)}
        used = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        self._facts_read = {
            "version": ov.__version__.split("-")[0],  # the release, as the machine facts name it
            "build": ov.get_version(),
            "precision": {"requested": precision,
                          "used": used.get_type_name() if hasattr(used, "get_type_name") else str(used)},
            # read back: what the compiled model uses, set or not; OpenVINO has no inter-op setting
            "threads": {"intra_op": self.compiled.get_property("INFERENCE_NUM_THREADS"), "inter_op": "not applicable"},
            "device_name": core.get_property("CPU", "FULL_DEVICE_NAME"),
            "device_capabilities": list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")),
            "num_streams": int(self.compiled.get_property("NUM_STREAMS")),
            "performance_hint": str(self.compiled.get_property("PERFORMANCE_HINT")),
        }

    def run(self, outputs: list[str], feed: dict) -> list:
        result = self.request.infer(feed)
        return [result[self.ports[name]] for name in outputs]

    @property
    def device(self) -> str:
        return "CPU"

    def facts(self) -> dict:
        f = self._facts_read
        return self._facts(f["version"], f["precision"], f["threads"],
                           {option.name: "not applicable" for option in fields(OnnxRuntimeSettings)},
                           **{k: f[k] for k in ("build", "device_name", "device_capabilities", "num_streams",
                                                  "performance_hint")})


def _ov_tensor(port, preferred_names) -> TensorInfo:
    names = port.get_names()
    name = next((n for n in preferred_names if n in names), port.get_any_name())
    shape = port.get_partial_shape()
    dims = None if shape.rank.is_dynamic else [d.get_length() if d.is_static else None for d in shape]
    kind = port.get_element_type().get_type_name()
    return TensorInfo(name, dims, OV_TYPES.get(kind, f"tensor({kind})"))


def _import_runtime(package: str, model_file: Path):
    try:
        return __import__(package)
    except ImportError:
        raise UserError(f"{model_file}: runtime {package} is not installed; pip install {package} "
                        f"(or set the model's runtime to onnxruntime)") from None


@contextlib.contextmanager
def _exposing(model_file: Path, names: list[str], options, ort):
    """The path of a copy of the graph file with `names` added as graph outputs, in a temp folder for
    as long as onnxruntime loads it; onnxruntime infers each new output's type itself and reads
    external data from the model's own folder. The outputs are appended as a second serialized
    ModelProto holding only them: protobuf merges a repeated message field's entries on parsing,
    so the file is copied, never parsed, and no copy of the weights sits in this process (a parsed,
    extended and re-serialized graph costs three; onnxruntime keeps model bytes it was given for as
    long as the session lives). A graph that stores its weights inside is copied with them, on disk:
    at most 2 GB, protobuf's limit. Graph optimizations are off (as in onnxruntime's qdq_loss_debug)
    so no exposed tensor is fused away, nor the graph's own outputs when there is nothing to add."""
    import onnx

    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if not names:
        yield str(model_file)
        return
    extra = onnx.ModelProto(graph=onnx.GraphProto(output=[onnx.ValueInfoProto(name=n) for n in names]))
    options.add_session_config_entry("session.model_external_initializers_file_folder_path", str(model_file.parent))
    with tempfile.TemporaryDirectory(prefix="exposed-") as tmp:
        copy = Path(tmp) / model_file.name
        shutil.copyfile(model_file, copy)
        with open(copy, "ab") as f:
            f.write(extra.SerializeToString())
        yield str(copy)


def open_runner(path: str | Path, runtime: str = "onnxruntime", precision: str | None = None,
                provider: str = "CPUExecutionProvider", intra_op_threads: int = 0, inter_op_threads: int = 0,
                expose: list[str] | None = None, memory: OnnxRuntimeSettings = ORT_DEFAULTS) -> Runner:
    """The one place a model is loaded. `provider`, `inter_op_threads`, `memory` (params `onnxruntime`)
    and `expose` (intermediate tensors also returned, for the diagnose stage; a list, even an empty
    one, runs the graph unoptimized) apply to onnxruntime only; `precision` to OpenVINO only (None
    there means auto).

    The graph (without external weights) is parsed here once and what the stages need from it is
    kept on the runner (`files`, `vocab_size`), not the graph, which is let go before the runtime
    loads the model: a model stored in one 2 GB file would otherwise sit in memory twice, once in
    the runtime and once as a protobuf."""
    model_file, graph, data = model_files(path)  # fail early, with a clear line, on missing external data
    vocab_size = embedding_vocab_size(graph)
    graph_outputs = [o.name for o in graph.graph.output]
    del graph
    if runtime == "onnxruntime":
        if expose is not None:
            expose = [n for n in expose if n not in graph_outputs]  # returned anyway
        runner = OnnxRuntimeRunner(model_file, provider, intra_op_threads, inter_op_threads, expose, memory)
    elif expose:
        raise UserError(f"{model_file}: intermediate tensors can be exposed under onnxruntime only, not {runtime}")
    elif runtime == "openvino":
        runner = OpenVinoRunner(model_file, graph_outputs, precision or "auto", intra_op_threads)
    else:
        raise UserError(f"{model_file}: unknown runtime {runtime!r}; one of {', '.join(RUNTIMES)}")
    runner.files = model_paths(model_file, data)
    runner.vocab_size = vocab_size
    return runner
