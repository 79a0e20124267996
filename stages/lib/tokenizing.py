"""Tokenizer discovery and sentence-transformers head config, from files on disk (never a hub)."""
from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from .errors import UserError, first_line
from .readers import json_type, read_json, read_text

PAD_CANDIDATES = ("[PAD]", "<pad>", "<|endoftext|>", "</s>", "<|end_of_text|>")
ENCODE_CHUNK = 4096  # texts per encode_batch call when streaming: bounds the tokenizer's memory


def find_tokenizer(model_file: Path, explicit: str | None) -> Path:
    """Explicit path > tokenizer.json next to the model > an error naming every place searched."""
    searched = []
    if explicit:
        p = Path(explicit)
        candidate = p / "tokenizer.json" if p.is_dir() else p
        if candidate.is_file():
            return candidate
        raise UserError(f"{candidate}: tokenizer not found (set by params 'tokenizer')")
    for folder in (model_file.parent, model_file.parent.parent):
        candidate = folder / "tokenizer.json"
        searched.append(str(candidate))
        if candidate.is_file():
            return candidate
    raise UserError(f"no tokenizer for {model_file}: searched {', '.join(searched)}; set models.NAME.tokenizer")


@dataclass
class TextTokenizer:
    """A `tokenizers` tokenizer with truncation only: batching and padding are done by the embedder."""

    path: Path
    tokenizer: Tokenizer
    max_length: int
    pad_id: int

    def encode(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(texts)]

    def encode_stream(self, texts: Iterable[str], spill_to: Path | None = None) -> TokenIds:
        """Token ids of a stream of texts, tokenized ENCODE_CHUNK at a time and kept flat as int32, in
        memory or (`spill_to`) in a file: a corpus of a million texts then costs its lengths and
        offsets in memory, not a million lists of Python ints. `truncated` counts the texts that lost
        tokens to truncation (not those that just fit); `digest` hashes every id and length (a
        resumed embed checks that tokenizing again gave the ids its saved vectors came from)."""
        lengths, parts, truncated, top, digest = [], [], 0, -1, hashlib.sha256()
        texts = iter(texts)
        sink = open(spill_to, "wb") if spill_to else None
        try:
            while texts_chunk := list(itertools.islice(texts, ENCODE_CHUNK)):
                encodings = self.tokenizer.encode_batch(texts_chunk)
                lens = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
                flat = np.fromiter(itertools.chain.from_iterable(e.ids for e in encodings), dtype=np.int32,
                                   count=int(lens.sum()))
                truncated += sum(bool(e.overflowing) for e in encodings)
                top = max(top, int(flat.max()) if flat.size else -1)
                lengths.append(lens)
                digest.update(flat)
                if sink:
                    sink.write(flat.tobytes())
                else:
                    parts.append(flat)
        finally:
            if sink:
                sink.close()
        lengths = np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64)
        flat = None if spill_to else (np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32))
        digest.update(lengths)
        return TokenIds(lengths, flat, spill_to, truncated, top, digest.hexdigest())


class TokenIds:
    """The token ids of many texts, as a sequence of int32 arrays (`ids[i]`), stored flat in memory
    or in a file read one text at a time (seek and read: memory maps would count in the RSS).
    `lengths`, `truncated` (texts that lost tokens), `max_id` and `digest` are known without reading them."""

    def __init__(self, lengths: np.ndarray, flat: np.ndarray | None, file: Path | None, truncated: int, max_id: int,
                 digest: str = ""):
        self.lengths, self.flat, self.digest = lengths, flat, digest
        self.offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        self.truncated, self.max_id = truncated, max_id
        self._fh = open(file, "rb") if file else None

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, i) -> np.ndarray:
        start, end = int(self.offsets[i]), int(self.offsets[i + 1])
        if self.flat is not None:
            return self.flat[start:end]
        self._fh.seek(4 * start)
        return np.frombuffer(self._fh.read(4 * (end - start)), dtype=np.int32)

    def close(self) -> None:
        """Release the spill file (Windows cannot delete an open one)."""
        if self._fh:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> TokenIds:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def load_tokenizer(path: Path, max_length: int) -> TextTokenizer:
    """Decoded by readers.py first (bad bytes name their line; a byte-order mark, which the
    tokenizers library refuses, is dropped), then parsed by the library; its errors name the line."""
    text = read_text(path)
    if not text.strip():
        raise UserError(f"{path}: file is empty, expected a tokenizer.json")
    try:
        tok = Tokenizer.from_str(text)
    except Exception as exc:  # tokenizers raises a bare Exception: serde's message, "... at line L column C"
        where = re.fullmatch(r"(.*) at line (\d+) column (\d+)", first_line(exc))
        if where:
            raise UserError(f"{path}:{where[2]}: not a valid tokenizer.json "
                            f"({where[1]} at column {where[3]})") from None
        raise UserError(f"{path}: not a valid tokenizer.json ({first_line(exc)})") from None
    pad_id = None
    if tok.padding:
        pad_id = tok.padding.get("pad_id")
    for token in PAD_CANDIDATES:
        if pad_id is None:
            pad_id = tok.token_to_id(token)
    tok.no_padding()
    tok.enable_truncation(max_length)
    return TextTokenizer(path, tok, max_length, 0 if pad_id is None else int(pad_id))


def _modules(path: Path) -> list[dict]:
    """modules.json: an array of objects, each with a string `type` and (the Pooling one) `path`."""
    modules = read_json(path)
    if not isinstance(modules, list):
        raise UserError(f"{path}: expected an array of module objects, got {json_type(modules)}")
    for i, module in enumerate(modules):
        if not isinstance(module, dict):
            raise UserError(f"{path}: module [{i}] must be an object, got {json_type(module)}")
        for key in ("type", "path"):
            if not isinstance(module.get(key, ""), str):
                raise UserError(f"{path}: module [{i}] '{key}' must be a string, got {json_type(module[key])}")
        if module.get("type", "").endswith("Pooling") and not module.get("path"):
            raise UserError(f"{path}: module [{i}] ({module['type']}) has no 'path' to its folder")
    return modules


def sentence_transformers_head(tokenizer_file: Path) -> dict:
    """Pooling mode and normalisation declared by a sentence-transformers folder, if there is one.

    An unsupported pooling mode is recorded, not raised: it only matters if pooling is `auto` and
    the model has no pooled output (resolve_pooling decides)."""
    folder = tokenizer_file.parent
    head: dict = {}
    modules_file = folder / "modules.json"
    modules = []
    if modules_file.is_file():
        modules = _modules(modules_file)
        head["normalize"] = any(m.get("type", "").endswith("Normalize") for m in modules)
    pool_dirs = [folder / m["path"] for m in modules if m.get("type", "").endswith("Pooling")] or [folder / "1_Pooling"]
    for pool_dir in pool_dirs:
        config = pool_dir / "config.json"
        if config.is_file():
            cfg = read_json(config)
            if not isinstance(cfg, dict):
                raise UserError(f"{config}: expected an object of pooling settings, got {json_type(cfg)}")
            head["pooling_source"] = str(config)
            for key, mode in (("pooling_mode_lasttoken", "last"), ("pooling_mode_cls_token", "cls"),
                              ("pooling_mode_mean_tokens", "mean")):
                if cfg.get(key):
                    head["pooling"] = mode
                    break
            else:
                head["pooling"] = None  # e.g. max or weighted-mean pooling
    return head
