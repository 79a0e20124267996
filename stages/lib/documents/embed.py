"""results/embed/NAME/manifest.json: how one model's vectors were made (embedding.py)."""
from __future__ import annotations

from dataclasses import dataclass

from .common import CorpusSample, Facts
from .record import Record, omitted


@dataclass(kw_only=True)
class Pooling(Record):
    """Which output is read and how it is pooled, and why (embedding.PoolingChoice)."""

    mode: str  # output | cls | mean | last
    output: str
    source: str  # params, model output, or the sentence-transformers file it came from


@dataclass(kw_only=True)
class Truncated(Record):
    queries: int
    codes: int
    cut_to_fixed_input_length: int


@dataclass(kw_only=True)
class BatchInvariance(Record):
    """Cosine between sampled texts embedded alone and inside one padded batch (null: not measured)."""

    sample: int
    min: float
    mean: float
    padding_side: str | None = omitted()
    skipped: str | None = omitted()


@dataclass(kw_only=True)
class TokenMeans(Record):
    queries_mean: float
    codes_mean: float


@dataclass(kw_only=True)
class EmbedManifest(Record):
    """What one model's vectors depend on: model, tokenizer and corpus hashes, the embedding
    settings, the runner and the machine's embed facts."""

    SCHEMA_VERSION = 2  # 2: sample (params corpus_sample)

    model: str
    model_file: str
    model_sha256: str
    tokenizer: str
    tokenizer_sha256: str
    corpus: str
    texts_sha256: str
    sample: CorpusSample | None  # the quick look's subset embedded (null: the whole corpus)
    count: int
    documents: int
    dim: int
    pooling: Pooling
    normalize: bool
    normalize_source: str
    query_prompt: str
    max_length: int
    padding_side: str
    batch_size: int
    batch_order: str
    truncated: Truncated
    tokens: TokenMeans
    batch_invariance: BatchInvariance
    provider: str
    runtime: Facts
    machine: Facts | None  # null: recorded before machine facts


@dataclass(kw_only=True)
class EmbedMemory(Record):
    """results/embed/NAME/memory.json: the embed stage's peak RSS once every vector is made (of the
    driver alone under the ray engine) and the model's weights' bytes: a measurement, so apart from
    the manifest, which stays the same on every run."""

    SCHEMA_VERSION = 1

    model: str
    engine: str
    weights_bytes: int
    peak_rss_bytes: int
