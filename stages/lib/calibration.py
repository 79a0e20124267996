"""Calibration texts for static recipes: tokenized as the candidate will be, never evaluation texts.

Calibrating on the texts the metrics use would flatter the candidate, so every calibration text is
checked against the corpus and the snippets (whitespace-normalised) before any feed is built.
"""
from __future__ import annotations

from .corpus import iter_texts, load_corpus
from .embedding import Embedder
from .errors import UserError
from .runtimes import open_runner
from .tokenizing import find_tokenizer, load_tokenizer


def calibration_feeds(params, name: str) -> tuple[list[dict], dict]:
    """Feeds for static recipe `name` from `params.calibration`, and the facts QUANTIZE.json records."""
    spec, settings = params.quantize[name], params.embed_for(name)
    calib = load_corpus(params.calibration)
    evaluation = set()
    for path in filter(None, (params.corpus, params.snippets)):
        evaluation |= {_norm(x) for kind in ("queries", "documents") for x in iter_texts(path, kind)}
    overlap = [i for i, (q, c) in enumerate(zip(calib.queries, calib.codes))
               if _norm(q) in evaluation or _norm(c) in evaluation]
    if overlap:
        raise UserError(f"{calib.path}: {len(overlap)} calibration text(s) are also evaluation texts (first: "
                        f"{calib.ids[overlap[0]]}); calibrate on texts the metrics do not use")
    texts = [t for pair in zip(calib.codes, [settings.query_prompt + q for q in calib.queries]) for t in pair]
    texts = texts[:spec.calibration_texts]
    if len(texts) < spec.calibration_texts:
        raise UserError(f"{calib.path}: {len(texts)} texts, quantize.{name}.calibration_texts asks for "
                        f"{spec.calibration_texts}")
    runner = open_runner(spec.source)  # onnxruntime: what quantize_static calibrates with
    tokenizer = load_tokenizer(find_tokenizer(runner.model_file, params.model(name).tokenizer), settings.max_length)
    embedder = Embedder(runner, tokenizer, None, False, settings.padding_side)
    # one shape for all: histogram calibrators (Entropy, Percentile) stack every collected tensor
    feeds = [embedder.feed([ids], length=settings.max_length)[0] for ids in tokenizer.encode(texts)]
    info = {"file": str(calib.path), "sha256": calib.sha256(),
            "texts": len(texts), "overlap_with_evaluation": 0,
            "checked_against": [p for p in (params.corpus, params.snippets) if p]}
    return feeds, info


def _norm(text: str) -> str:
    return " ".join(text.split())
