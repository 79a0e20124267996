"""Texts -> vectors with a loaded model (any runtime, runtimes.py): feeds, length-sorted batches, pooling, checks."""
from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .corpus import corpus_sample, corpus_sha256, iter_texts, load_corpus
from .errors import UserError, first_line
from .hashing import file_sha256
from .memory import peak_rss_bytes, weights_bytes
from .pooling import l2_normalize, pool
from .progress import Progress
from .runtimes import FLOAT_TYPES, Runner, open_runner
from .tokenizing import TextTokenizer, TokenIds, find_tokenizer, load_tokenizer, sentence_transformers_head

TOKEN_OUTPUT_NAMES = ("last_hidden_state", "token_embeddings", "hidden_states")
SUPPORTED_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids")


@dataclass(frozen=True)
class PoolingChoice:
    """Which output is read and how it is pooled, and why: recorded in every manifest."""

    mode: str  # "output" (already pooled), "cls", "mean" or "last"
    output: str
    source: str


def _rank(output) -> int:
    return len(output.shape) if output.shape is not None else -1


def resolve_pooling(setting: str, outputs: list, head: dict) -> PoolingChoice:
    """Explicit setting > a rank-2 pooled output > sentence-transformers config > error."""
    floats = [o for o in outputs if o.type in FLOAT_TYPES]
    token_level = [o for o in floats if _rank(o) == 3]
    pooled = [o for o in floats if _rank(o) == 2]
    names = ", ".join(f"{o.name}{list(o.shape)}" for o in outputs)

    def token_output(mode: str) -> str:
        if not token_level:
            raise UserError(f"pooling {mode!r} needs a token-level [batch, seq, dim] output; model has: {names}")
        for preferred in TOKEN_OUTPUT_NAMES:
            if any(o.name == preferred for o in token_level):
                return preferred
        return token_level[0].name

    if setting in ("cls", "mean", "last"):
        return PoolingChoice(setting, token_output(setting), "params")
    if setting != "auto":
        match = [o for o in outputs if o.name == setting]
        if not match:
            raise UserError(f"pooling {setting!r} is neither auto/cls/mean/last nor an output of the model ({names})")
        if _rank(match[0]) != 2:
            raise UserError(f"output {setting!r} is not pooled [batch, dim]; set pooling to cls, mean or last")
        return PoolingChoice("output", setting, "params")
    if pooled:
        return PoolingChoice("output", pooled[0].name, "model output")
    if "pooling" in head:
        if head["pooling"] is None:
            raise UserError(f"{head['pooling_source']}: pooling mode not supported here (only cls, mean, lasttoken); "
                            "set models.NAME.pooling")
        return PoolingChoice(head["pooling"], token_output(head["pooling"]), head["pooling_source"])
    raise UserError(f"pooling is auto but the model has no pooled output ({names}) and no 1_Pooling/config.json "
                    "lies next to the tokenizer; set models.NAME.pooling to cls, mean or last")


class Embedder:
    """One model's text encoder. Inputs are fed as the model declares them, whatever runs it."""

    def __init__(self, runner: Runner, tokenizer: TextTokenizer, pooling_setting: str,
                 normalize_setting, padding_side: str = "right"):
        self.runner = runner
        self.tokenizer = tokenizer
        self.padding_side = padding_side
        head = sentence_transformers_head(tokenizer.path)
        # pooling None: only feeds are wanted (calibration), no output is read
        self.pooling = None if pooling_setting is None else resolve_pooling(pooling_setting, runner.outputs, head)
        self.normalize = head.get("normalize", False) if normalize_setting == "auto" else bool(normalize_setting)
        if normalize_setting != "auto":
            self.normalize_source = "params"
        else:
            self.normalize_source = "modules.json" if "normalize" in head else "auto: no modules.json, off"
        self.inputs = {i.name: i for i in runner.inputs}
        unsupported = [n for n in self.inputs if n not in SUPPORTED_INPUTS]
        if unsupported or "input_ids" not in self.inputs:
            raise UserError(f"{runner.model_file}: inputs {list(self.inputs)} not supported; need input_ids "
                            f"and at most {', '.join(SUPPORTED_INPUTS[1:])} (export without past_key_values)")
        seq_dim = self.inputs["input_ids"].shape[1] if len(self.inputs["input_ids"].shape) > 1 else None
        batch_dim = self.inputs["input_ids"].shape[0]
        self.fixed_seq = seq_dim if isinstance(seq_dim, int) else None
        self.fixed_batch = batch_dim if isinstance(batch_dim, int) else None
        self.vocab_size = runner.vocab_size

    def check_ids(self, id_lists) -> None:
        """A token id past the embedding table is a wrong tokenizer, not a crash deep in onnxruntime."""
        if self.vocab_size is None or not len(id_lists):
            return
        top = id_lists.max_id if isinstance(id_lists, TokenIds) else \
            max((max(ids) for ids in id_lists if len(ids)), default=-1)
        if top >= self.vocab_size:
            raise UserError(f"{self.tokenizer.path}: token id {top} is beyond the vocabulary of "
                            f"{self.runner.model_file} ({self.vocab_size} rows): wrong tokenizer for this model")

    def feed(self, id_lists: list[list[int]], length: int | None = None) -> tuple[dict, np.ndarray]:
        """Pad a batch (to its longest, to `length`, or to a fixed sequence length) and build every declared input."""
        length = self.fixed_seq or length or max(len(ids) for ids in id_lists)
        ids = np.full((len(id_lists), length), self.tokenizer.pad_id, dtype=np.int64)
        mask = np.zeros((len(id_lists), length), dtype=np.int64)
        for row, seq in enumerate(id_lists):
            seq = seq[:length]
            if self.padding_side == "left":
                ids[row, length - len(seq):] = seq
                mask[row, length - len(seq):] = 1
            else:
                ids[row, :len(seq)] = seq
                mask[row, :len(seq)] = 1
        values = {"input_ids": lambda: ids, "attention_mask": lambda: mask,
                  "token_type_ids": lambda: np.zeros_like(ids),
                  "position_ids": lambda: np.clip(np.cumsum(mask, axis=1) - 1, 0, None)}
        feed = {}
        for name, meta in self.inputs.items():  # only what the model declares, built only then
            dtype = np.int32 if meta.type == "tensor(int32)" else np.int64
            feed[name] = values[name]().astype(dtype, copy=False)
        return feed, mask

    def run_batch(self, id_lists: list[list[int]]) -> np.ndarray:
        feed, mask = self.feed(id_lists)
        try:
            (out,) = self.runner.run([self.pooling.output], feed)
        except Exception as exc:  # each runtime's own exception types
            raise UserError(f"{self.runner.model_file}: inference failed: {first_line(exc)}") from None
        out = out.astype(np.float32, copy=False)
        vectors = out if self.pooling.mode == "output" else pool(self.pooling.mode, out, mask)
        return l2_normalize(vectors) if self.normalize else vectors

    def batches(self, id_lists, batch_size: int, sort: bool = True) -> list[np.ndarray]:
        """Index groups of one batch each; sorted by length so padding (and time) is small."""
        if self.fixed_batch:
            batch_size = self.fixed_batch
        order = np.argsort(text_lengths(id_lists), kind="stable") if sort else np.arange(len(id_lists))
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]

    def embed_group(self, group: list[list[int]]) -> np.ndarray:
        """One planned batch's vectors; a fixed-batch model gets it padded with copies of its last text."""
        pad_rows = (self.fixed_batch - len(group)) if self.fixed_batch else 0
        return self.run_batch(group + [group[-1]] * pad_rows)[:len(group)]

    def embed_ids(self, id_lists, batch_size: int, sort: bool = True, progress=None,
                  allocate=None, engine=None, saved=None) -> np.ndarray:
        """One vector per id list (lists, or a TokenIds read one text at a time), in input order.
        `allocate(shape)` makes the result array (default np.empty; a memory map streams each batch
        to disk, so vectors never all sit in memory).
        `engine(batches, id_lists)` yields (batch number, vectors) in any order (default: this
        process, in order; distributed.py: Ray). The batches are planned here either way, so the
        vectors (dynamic INT8 ones depend on their batch-mates) do not depend on the engine.
        `saved` (a resume.Saved): the array lives in the scratch folder; the leading planned batches
        it already holds are skipped, and each finished batch is reported to it."""
        if not len(id_lists):
            raise UserError("nothing to embed: the text list is empty")
        self.check_ids(id_lists)
        batches = self.batches(id_lists, batch_size, sort)
        start, result = saved.open(batches) if saved else (0, None)
        allocate = saved.allocate if saved else (allocate or _empty)
        if progress is not None and start:
            progress.skip(sum(len(idx) for idx in batches[:start]))
        todo = batches[start:]  # numbered from 0 again: an engine sees only what is left
        if not todo:
            done = ()
        elif engine:
            done = engine(todo, id_lists)
        else:
            done = ((k, self.embed_group([id_lists[i] for i in idx])) for k, idx in enumerate(todo))
        bad, first_bad = 0, None
        try:
            for k, vectors in done:
                idx = todo[k]
                if result is None:
                    if vectors.ndim != 2:
                        raise UserError(f"{self.runner.model_file}: pooled output has shape {vectors.shape}, "
                                        "expected [batch, dim]")
                    result = allocate((len(id_lists), vectors.shape[1]))
                result[idx] = vectors
                broken = idx[~np.isfinite(vectors).all(axis=1)]  # checked per batch: `result` may be on disk
                if len(broken):
                    bad += len(broken)
                    first_bad = int(broken.min()) if first_bad is None else min(first_bad, int(broken.min()))
                if saved is not None:
                    saved.done(start + k, clean=not len(broken))
                if progress is not None:
                    progress.update(len(idx))
        finally:
            if saved is not None:  # at the end, and on Ctrl-C or an error: what is written stays usable
                saved.save()
        if bad:
            raise UserError(f"{self.runner.model_file}: {bad} embedding(s) contain NaN or Inf "
                            f"(first: text #{first_bad})")
        return result

    def embed_texts(self, texts: list[str], batch_size: int, sort: bool = True, progress=None,
                    allocate=None) -> np.ndarray:
        return self.embed_ids(self.tokenizer.encode(texts), batch_size, sort, progress, allocate)


def _empty(shape) -> np.ndarray:
    return np.empty(shape, dtype=np.float32)


def _memmap_in(folder: Path | None, name: str):
    """An allocator writing the array as folder/name (.npy on disk), or None for memory."""
    if folder is None:
        return None
    return lambda shape: np.lib.format.open_memmap(Path(folder) / name, mode="w+", dtype=np.float32, shape=shape)


def batch_invariance(embedder: Embedder, id_lists, sample: int) -> dict:
    """Cosine between each sampled text embedded alone and inside one padded batch of mixed lengths.

    For a correct FP32 model this is 1 to float precision; below that, pooling or the mask is wrong
    (or, for dynamic INT8, activations are quantized per batch: a finding, not an error).
    """
    if sample <= 0 or not len(id_lists):
        return {"sample": 0, "min": None, "mean": None}
    if embedder.fixed_batch:
        return {"sample": 0, "min": None, "mean": None, "skipped": "model has a fixed batch size"}
    by_len = np.argsort(text_lengths(id_lists), kind="stable")
    picks = by_len[np.unique(np.linspace(0, len(by_len) - 1, min(sample, len(by_len))).astype(int))]
    group = [id_lists[i] for i in picks]
    alone = np.vstack([embedder.run_batch([ids]) for ids in group])
    together = embedder.run_batch(group)
    cos = np.sum(l2_normalize(alone) * l2_normalize(together), axis=1)
    return {"sample": len(group), "min": float(cos.min()), "mean": float(cos.mean()),
            "padding_side": embedder.padding_side}


def text_lengths(id_lists) -> np.ndarray:
    if isinstance(id_lists, TokenIds):
        return id_lists.lengths
    return np.array([len(x) for x in id_lists], dtype=np.int64)


def open_embedder(params, name: str, provider: str = "CPUExecutionProvider", intra_op_threads: int = 0,
                  inter_op_threads: int = 0, expose: list[str] | None = None) -> Embedder:
    """A model's embedder, built from its effective settings (`params.embed_for`) and run by the
    runtime its entry names, with the onnxruntime memory options of `params.onnxruntime`;
    `expose`: intermediate tensors it also returns (onnxruntime only)."""
    spec, settings = params.model(name), params.embed_for(name)
    runner = open_runner(spec.path, spec.runtime, spec.precision, provider, intra_op_threads, inter_op_threads,
                         expose, params.onnxruntime)
    return Embedder(runner, model_tokenizer(params, name, runner.model_file), settings.pooling, settings.normalize,
                    settings.padding_side)


def model_tokenizer(params, name: str, model_file: Path) -> TextTokenizer:
    """A model's tokenizer (its entry's, or the one next to `model_file`) with its effective max_length."""
    return load_tokenizer(find_tokenizer(model_file, params.model(name).tokenizer), params.embed_for(name).max_length)


def embed_corpus(params, name: str, machine: dict, progress: bool = False, stream_to: Path | None = None,
                 engine=None, resume=None) -> dict:
    """Every file of the embed stage's output folder for one model.

    `machine`: the embed facts of the machine computing them (machine.py), recorded in the
    manifest: INT8 vectors depend on the instruction set, not only on the file. `stream_to`: a
    folder where queries.npy and codes.npy are written batch by batch (memory maps, returned in
    the dict) and where the token ids wait in a temp file, so memory does not grow with the corpus
    beyond a few numbers per text; without it everything stays in memory. `engine`: what embeds
    the corpus batches (see Embedder.embed_ids); snippets and checks always run here. `resume`
    (a resume.Resume): the corpus vectors and token ids are kept in its scratch folder instead,
    continuing from a killed run with the same inputs, and placed into `stream_to` when complete.
    `memory.json`: this process's peak RSS once every vector is made (of the driver alone under the
    ray engine) and the model's weights' bytes. With params `corpus_sample`, only the sampled queries
    and documents (corpus.corpus_sample)."""
    embedder = open_embedder(params, name)
    prompt = params.embed_for(name).query_prompt
    batch_size = params.embed.batch_size
    # small: a bad one fails before the corpus runs
    snippets = load_corpus(params.snippets) if params.snippets else None
    sample = corpus_sample(params)
    made = _made_from(params, name, embedder, prompt, machine, sample)
    partial = resume.open(made) if resume else None
    spill_to = partial.folder if partial else stream_to
    spill_dir = tempfile.TemporaryDirectory(prefix=".tokens-", dir=spill_to) if spill_to else contextlib.nullcontext()
    with spill_dir as spill, contextlib.ExitStack() as open_files:  # files closed before their folder goes
        spill = Path(spill) if spill else None
        query_ids = open_files.enter_context(embedder.tokenizer.encode_stream(
            (prompt + q for q in iter_texts(params.corpus, "queries", sample)), spill and spill / "queries.ids"))
        code_ids = open_files.enter_context(embedder.tokenizer.encode_stream(
            iter_texts(params.corpus, "documents", sample), spill and spill / "codes.ids"))
        files = _embed_tokens(params, name, embedder, made, query_ids, code_ids, progress, stream_to, engine, partial)
    if partial:
        partial.summary()
        if stream_to:
            for kind in ("queries", "codes"):
                files[f"{kind}.npy"] = partial.deliver(kind, Path(stream_to) / f"{kind}.npy")
    if snippets is not None:
        files["snippet_queries.npy"] = embedder.embed_texts([prompt + q for q in snippets.queries], batch_size)
        files["snippet_codes.npy"] = embedder.embed_texts(snippets.codes, batch_size)
    files["manifest.json"].update({key: made[key] for key in ("provider", "runtime", "machine")})
    # a measurement, so not in the manifest: that stays the same on every run (speedup and diagnose
    # depend on it; a resumed or Ray run must match a whole local one)
    files["memory.json"] = {"model": name, "engine": params.embed.engine,
                            "weights_bytes": weights_bytes(embedder.runner.files), "peak_rss_bytes": peak_rss_bytes()}
    return files


def _made_from(params, name: str, embedder: Embedder, prompt: str, machine: dict, sample) -> dict:
    """Everything the vectors depend on that is known before embedding: the manifest records it, and
    a resumed embed reuses saved vectors only when all of it is unchanged."""
    runner, tokenizer = embedder.runner, embedder.tokenizer
    return {
        "model": name,
        "model_file": str(runner.model_file),
        "model_sha256": file_sha256(runner.files),
        "tokenizer": str(tokenizer.path),
        "tokenizer_sha256": file_sha256([tokenizer.path]),
        "corpus": str(params.corpus),
        "texts_sha256": corpus_sha256(params.corpus),
        "sample": sample.facts if sample else None,  # a quick look's subset (None: the whole corpus)
        "pooling": {"mode": embedder.pooling.mode, "output": embedder.pooling.output,
                    "source": embedder.pooling.source},
        "normalize": embedder.normalize,
        "normalize_source": embedder.normalize_source,
        "query_prompt": prompt,
        "max_length": tokenizer.max_length,
        "padding_side": embedder.padding_side,
        "batch_size": params.embed.batch_size,
        "provider": runner.device,
        "runtime": runner.facts(),
        "machine": machine,
    }


def _embed_tokens(params, name: str, embedder: Embedder, made: dict, query_ids: TokenIds, code_ids: TokenIds,
                  progress: bool, stream_to: Path | None, engine, partial) -> dict:
    """The corpus vectors, their lengths and the manifest (without provider, runtime and machine)."""
    batch_size = params.embed.batch_size
    bar = Progress(len(query_ids) + len(code_ids), f"embed {name}", unit="text", enabled=progress)
    queries = embedder.embed_ids(query_ids, batch_size, progress=bar, allocate=_memmap_in(stream_to, "queries.npy"),
                                 engine=engine, saved=partial and partial.kind("queries", query_ids.digest))
    codes = embedder.embed_ids(code_ids, batch_size, progress=bar, allocate=_memmap_in(stream_to, "codes.npy"),
                               engine=engine, saved=partial and partial.kind("codes", code_ids.digest))
    bar.close()
    fixed = embedder.fixed_seq
    manifest = {
        **{key: made[key] for key in ("model", "model_file", "model_sha256", "tokenizer", "tokenizer_sha256", "corpus",
                                      "texts_sha256", "sample")},
        "count": len(query_ids),
        "documents": len(code_ids),
        "dim": int(queries.shape[1]),
        **{key: made[key] for key in ("pooling", "normalize", "normalize_source", "query_prompt", "max_length",
                                      "padding_side", "batch_size")},
        "batch_order": "sorted by token length (stable), per text kind",
        "truncated": {"queries": query_ids.truncated, "codes": code_ids.truncated,
                      "cut_to_fixed_input_length":
                          int((query_ids.lengths > fixed).sum() + (code_ids.lengths > fixed).sum()) if fixed else 0},
        "tokens": {"queries_mean": float(np.mean(query_ids.lengths)), "codes_mean": float(np.mean(code_ids.lengths))},
        "batch_invariance": batch_invariance(embedder, code_ids, params.embed.invariance_sample),
    }
    return {"queries.npy": queries, "codes.npy": codes, "query_lengths.npy": query_ids.lengths,
            "code_lengths.npy": code_ids.lengths, "manifest.json": manifest}
