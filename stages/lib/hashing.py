"""Identities of input files: one chunked sha256, so a 6 GB model or a million-text corpus is
hashed without being read into memory (models: onnxmodel.py, corpora: corpus.py)."""
from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(paths: list[Path]) -> str:
    """One hash over the files' bytes, in order (a model: its graph file, then its data files)."""
    digest = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                digest.update(chunk)
    return digest.hexdigest()


def tree_sha256(path: str | Path) -> str:
    """One hash over a file, or over every file under a folder with its relative name: what DVC
    tracks as a model's `path` (graph, external data, tokenizer), so a result that depends on the
    hash reruns exactly when DVC would rerun a stage depending on the path."""
    path = Path(path)
    if path.is_file():
        return file_sha256([path])
    digest = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f.relative_to(path).as_posix().encode() + b"\0" + file_sha256([f]).encode())
    return digest.hexdigest()
