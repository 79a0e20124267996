"""ONNX files on disk: path resolution, external-data checks, identity (runtimes.py loads them).

Weights stored outside the graph file (`model.onnx_data`) are the rule for large models; a size or
load that ignores them is the mistake this product exists to prevent, so every entry point here
knows about them.
"""
from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath

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
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise UserError(f"{path}: not a readable ONNX model, truncated or corrupt ({type(exc).__name__})") from None
    # protobuf parses some prefixes of a file without complaint: one cut before or right after the
    # graph reads as a model without it or without its opset, which every ONNX model has
    missing = [name for name, present in (("graph", model.HasField("graph")), ("opset_import", model.opset_import))
               if not present]
    if missing:
        raise UserError(f"{path}: not a complete ONNX model, truncated or corrupt (no {' or '.join(missing)})")
    return model


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


def _refuse_escaping(location: str, tensor: str, model_file: Path) -> None:
    """An untrusted graph must not make us read files outside its folder (onnxruntime refuses these
    too). Checked on the text of `location`, not the resolved path: a DVC cache of type symlink
    legitimately links data files to .dvc/cache."""
    posix = PurePosixPath(location.replace("\\", "/"))
    if posix.is_absolute() or PureWindowsPath(location).drive:
        cause = "is an absolute path"
    elif ".." in posix.parts:
        cause = "climbs out with '..'"
    else:
        return
    raise UserError(f"{model_file}: external data location {location!r} of tensor {tensor!r} {cause}; "
                    f"refused: external data must lie inside the model's folder")


def hardlinked_data(model_file: Path, data_files: dict[str, int]) -> list[Path]:
    """External data files with more than one hard link: onnx.load refuses them ("potential hardlink
    attack"), which a DVC cache with `cache.type: hardlink` produces."""
    return [model_file.parent / loc for loc in data_files if (model_file.parent / loc).stat().st_nlink > 1]


def external_data_files(model: onnx.ModelProto, model_file: Path) -> dict[str, int]:
    """Every external data file the graph references -> bytes on disk. Missing or short files are errors."""
    needed: dict[str, int] = {}
    for tensor in all_initializers(model):
        info = _external_info(tensor)
        if info is None:
            continue
        location = info.get("location", "")
        _refuse_escaping(location, tensor.name, model_file)
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


def model_files(path: str | Path, graph: onnx.ModelProto | None = None) -> tuple[Path, onnx.ModelProto, dict[str, int]]:
    """Resolve, load the graph (unless the caller already holds it: a graph is parsed once per
    stage), and check its external data: the entry point for every stage."""
    model_file = resolve_model_file(path)
    model = graph if graph is not None else load_graph(model_file)
    return model_file, model, external_data_files(model, model_file)


def model_paths(model_file: Path, data_files: dict[str, int]) -> list[Path]:
    """The graph file, then its external data files (`model_files`' third value): all a model is."""
    return [model_file] + [model_file.parent / loc for loc in data_files]


def embedding_vocab_size(model: onnx.ModelProto) -> int | None:
    """Rows of the table that `input_ids` indexes: token ids at or above it would crash the model."""
    inits = {t.name: t for t in model.graph.initializer}
    aliases = {"input_ids"}
    for node in model.graph.node:  # follow Cast/Identity of input_ids
        if node.op_type in ("Cast", "Identity") and node.input and node.input[0] in aliases:
            aliases.update(node.output)
    for node in model.graph.node:
        if node.op_type in ("Gather", "GatherBlockQuantized") and len(node.input) > 1 and node.input[1] in aliases:
            table = inits.get(node.input[0])
            if table is not None and table.dims:
                return int(table.dims[0])
            for dq in model.graph.node:  # quantized table: DequantizeLinear(initializer) -> Gather
                if dq.op_type == "DequantizeLinear" and node.input[0] in dq.output and dq.input[0] in inits:
                    return int(inits[dq.input[0]].dims[0])
    return None

