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
