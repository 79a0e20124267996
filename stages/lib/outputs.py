"""The one place that writes outputs: always to a temp file in the same folder, then rename.

A stage that dies half way never leaves a half-written file that DVC or the next stage would trust.
"""
from __future__ import annotations

import io
import json
import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from . import readers
from .errors import UserError


@contextmanager
def _atomic_file(path: str | os.PathLike, mode: str = "wb", **kwargs):
    """An open temp file in the same folder as `path`, renamed to it when the block ends without
    error and removed otherwise."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with _atomic_file(path) as fh:
        fh.write(data)
    return Path(path)


def _jsonable(obj: Any) -> Any:
    """numpy scalars -> float/int; NaN/inf -> None (JSON has no NaN; a missing number stays missing);
    a typed record (a Message, a document) -> its to_dict()."""
    if hasattr(obj, "to_dict"):
        return _jsonable(obj.to_dict())
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        value = float(obj)
        return value if math.isfinite(value) else None
    return obj


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    text = json.dumps(_jsonable(obj), indent=2, ensure_ascii=False) + "\n"
    return _atomic_bytes(path, text.encode("utf-8"))


def write_jsonl(path: str | os.PathLike, rows) -> Path:
    """One JSON object per line, compact, streamed: a file of 100k rows is never one string in
    memory, and a stage killed half way leaves no half-written file."""
    with _atomic_file(path, "w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(json.dumps(_jsonable(row), ensure_ascii=False, separators=(",", ":")) + "\n")
    return Path(path)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return _atomic_bytes(path, data)


def write_text(path: str | os.PathLike, text: str) -> Path:
    return _atomic_bytes(path, text.encode("utf-8"))


def write_npy(path: str | os.PathLike, array: np.ndarray) -> Path:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return _atomic_bytes(path, buf.getvalue())


@contextmanager
def staged_dir(final: str | os.PathLike):
    """A temp folder next to `final`, swapped in when the block ends without error and removed
    otherwise: a stage can stream large files into it (no whole output in memory) and still never
    leave a half-written folder."""
    import shutil

    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    try:
        yield tmp
        swap_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_files(folder: Path, files: dict[str, bytes | np.ndarray | dict | str]) -> None:
    """Each entry as a file in `folder`; an array already memory-mapped there is only flushed."""
    for name, content in files.items():
        if isinstance(content, np.memmap) and content.filename == os.path.abspath(folder / name):
            content.flush()
        elif isinstance(content, np.ndarray):
            write_npy(folder / name, content)
        elif isinstance(content, (dict, list)) or hasattr(content, "to_dict"):
            write_json(folder / name, content)
        elif isinstance(content, str):
            write_text(folder / name, content)
        else:
            _atomic_bytes(folder / name, content)


def place_file(src: Path, dst: Path) -> Path:
    """A finished file put into a staged folder without rewriting it: a hard link (instant at any
    size), or a copy where the two folders do not share a file system."""
    import shutil

    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
    return dst


def swap_dir(tmp: Path, final: Path) -> None:
    """Put a finished folder in place: the old one is renamed away first and deleted last, so at
    every moment `final` is either the complete old folder, absent, or the complete new one."""
    import shutil

    tmp.chmod(0o755)  # mkdtemp makes it private
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old.{os.getpid()}")
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def read_json(path: str | os.PathLike) -> Any:
    """A JSON file a stage wrote (or QUANTIZE.json in a model folder): parsed by readers.py, whose
    errors name file:line; a missing one most likely means its stage has not run."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found (did the stage that writes it run?)")
    return readers.read_json(path)
