"""The one place that opens ONNX models: path resolution, external-data checks, sessions.

Weights stored outside the graph file (`model.onnx_data`) are the rule for large models; a size or
load that ignores them is the mistake this product exists to prevent, so every entry point here
knows about them.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from .errors import UserError


def resolve_model_file(path: str | Path) -> Path:
    """A `.onnx` file, or a folder holding `model.onnx`."""
    path = Path(path)
    if path.is_dir():
        candidate = path / "model.onnx"
        if candidate.is_file():
            return candidate
        found = sorted(p.name for p in path.glob("*.onnx"))
        hint = f" (found: {', '.join(found)}; point 'path' at one)" if found else ""
        raise UserError(f"{path}: folder has no model.onnx{hint}")
    if not path.exists():
        raise UserError(f"{path}: model file not found")
    if path.suffix != ".onnx":
        raise UserError(f"{path}: expected a .onnx file or a folder holding model.onnx")
    return path


def load_graph(path: str | Path) -> onnx.ModelProto:
    """The graph and small tensors only: external weights stay on disk (a 6 GB model costs nothing)."""
    path = resolve_model_file(path)
    if path.stat().st_size == 0:
        raise UserError(f"{path}: file is empty")
    try:
        return onnx.load(str(path), load_external_data=False)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise UserError(f"{path}: not a readable ONNX model, truncated or corrupt ({type(exc).__name__})") from None


def iter_graphs(graph: onnx.GraphProto):
    """The graph and every subgraph (If/Loop bodies), where initializers can also live."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from iter_graphs(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    yield from iter_graphs(sub)


def all_initializers(model: onnx.ModelProto) -> list[onnx.TensorProto]:
    out = []
    for graph in iter_graphs(model.graph):
        out.extend(graph.initializer)
        out.extend(sparse.values for sparse in graph.sparse_initializer)
    return out


def _external_info(tensor: onnx.TensorProto) -> dict[str, str] | None:
    if tensor.data_location != onnx.TensorProto.EXTERNAL:
        return None
    return {entry.key: entry.value for entry in tensor.external_data}


def external_data_files(model: onnx.ModelProto, model_file: Path) -> dict[str, int]:
    """Every external data file the graph references -> bytes on disk. Missing or short files are errors."""
    needed: dict[str, int] = {}
    for tensor in all_initializers(model):
        info = _external_info(tensor)
        if info is None:
            continue
        location = info.get("location", "")
        end = int(info.get("offset", 0)) + int(info.get("length", 0))
        needed[location] = max(needed.get(location, 0), end)
    sizes = {}
    for location, end in sorted(needed.items()):
        data_file = model_file.parent / location
        if not data_file.is_file():
            raise UserError(f"{data_file}: external data file referenced by {model_file} is missing")
        size = data_file.stat().st_size
        if size < end:
            raise UserError(f"{data_file}: external data is truncated ({size} bytes, graph needs {end})")
        sizes[location] = size
    return sizes


def model_files(path: str | Path) -> tuple[Path, onnx.ModelProto, dict[str, int]]:
    """Resolve, load the graph, and check its external data: the entry point for every stage."""
    model_file = resolve_model_file(path)
    model = load_graph(model_file)
    return model_file, model, external_data_files(model, model_file)


def file_sha256(paths: list[Path]) -> str:
    """One hash over the graph file and its data files, in order: the identity of a model."""
    digest = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                digest.update(chunk)
    return digest.hexdigest()


def model_sha256(path: str | Path) -> str:
    model_file, _, data = model_files(path)
    return file_sha256([model_file] + [model_file.parent / loc for loc in data])


@dataclass
class Session:
    """An onnxruntime session plus the facts needed to report honestly how it was made."""

    session: object
    model_file: Path
    providers_active: list[str]
    create_seconds: float


def _exposing(model: onnx.ModelProto, model_file: Path, names: list[str], options) -> bytes:
    """The graph with `names` added as outputs, serialized without its weights: onnxruntime reads
    external data from the model's folder and infers each new output's type itself. Graph
    optimizations are off (as in onnxruntime's qdq_loss_debug) so no exposed tensor is fused away."""
    import onnxruntime as ort

    have = {o.name for o in model.graph.output}
    model.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names if n not in have)
    options.add_session_config_entry("session.model_external_initializers_file_folder_path", str(model_file.parent))
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return model.SerializeToString()


def open_session(path: str | Path, provider: str = "CPUExecutionProvider", intra_op_threads: int = 0,
                 inter_op_threads: int = 0, expose: list[str] | None = None) -> Session:
    """A session on the model; `expose`: intermediate tensors to return as extra outputs too."""
    import onnxruntime as ort

    model_file, model, _ = model_files(path)  # fail early, with a clear line, on missing external data
    available = ort.get_available_providers()
    if provider not in available:
        raise UserError(f"provider {provider} is not available in this onnxruntime (have: {', '.join(available)})")
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = inter_op_threads
    options.log_severity_level = 3
    providers = [provider] if provider == "CPUExecutionProvider" else [provider, "CPUExecutionProvider"]
    source = _exposing(model, model_file, expose, options) if expose else str(model_file)
    start = time.perf_counter()
    try:
        session = ort.InferenceSession(source, sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{model_file}: onnxruntime cannot load it: {first[:300]}") from None
    seconds = time.perf_counter() - start
    active = session.get_providers()
    if active[0] != provider:
        print(f"warning: {model_file}: requested {provider}, running on {active[0]}")
    return Session(session, model_file, active, seconds)
