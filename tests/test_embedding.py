"""Pooling and the embedder on tiny models, against numpy computed from the weights alone."""
import numpy as np
import pytest

from stages.lib.corpus import iter_texts
from stages.lib.embedding import Embedder, batch_invariance, resolve_pooling
from stages.lib.errors import UserError
from stages.lib.pooling import cls_pool, l2_normalize, last_pool, mean_pool
from stages.lib.runtimes import open_runner
from stages.lib.tokenizing import find_tokenizer, load_tokenizer
from tests import tiny

TEXTS = ["return sort list", "read file", "find max value in binary search tree node",
         "select name from user where id", "http get"]


def _pad(seqs, side):
    length = max(len(s) for s in seqs)
    mask = np.zeros((len(seqs), length), dtype=np.int64)
    for i, s in enumerate(seqs):
        if side == "right":
            mask[i, :len(s)] = 1
        else:
            mask[i, length - len(s):] = 1
    return mask


@pytest.mark.parametrize("side", ["left", "right"])
def test_pooling_functions_match_loops(side):
    rng = np.random.default_rng(1)
    lengths = [3, 7, 1, 5]
    mask = _pad([[0] * n for n in lengths], side)
    tokens = rng.normal(size=(len(lengths), mask.shape[1], 6)).astype(np.float32)
    for i, n in enumerate(lengths):
        real = [j for j in range(mask.shape[1]) if mask[i, j]]
        assert len(real) == n
        np.testing.assert_allclose(mean_pool(tokens, mask)[i], tokens[i, real].sum(0) / n, rtol=1e-6)
        np.testing.assert_array_equal(cls_pool(tokens, mask)[i], tokens[i, real[0]])
        np.testing.assert_array_equal(last_pool(tokens, mask)[i], tokens[i, real[-1]])
    x = rng.normal(size=(4, 6))
    np.testing.assert_allclose(np.linalg.norm(l2_normalize(x), axis=1), 1.0)


def _embedder(folder, pooling="mean", normalize=False, side="right", max_length=32):
    session = open_runner(folder)
    tok = load_tokenizer(find_tokenizer(session.model_file, None), max_length)
    return Embedder(session, tok, pooling, normalize, side)


@pytest.mark.parametrize("mode", ["cls", "mean", "last"])
@pytest.mark.parametrize("side", ["left", "right"])
def test_embedder_matches_numpy(tmp_path, mode, side):
    tiny.build_model(tmp_path / "m")
    emb = _embedder(tmp_path / "m", pooling=mode, normalize=True, side=side)
    got = emb.embed_texts(TEXTS, batch_size=3)
    for text, vec in zip(TEXTS, got):
        ids = emb.tokenizer.encode([text])[0]
        tokens = tiny.expected_tokens(ids)
        want = {"cls": tokens[0], "mean": tokens.mean(0), "last": tokens[-1]}[mode]
        np.testing.assert_allclose(vec, want / np.linalg.norm(want), rtol=1e-4, atol=1e-5)
    # the same vectors whatever the batch size and order
    np.testing.assert_allclose(emb.embed_texts(TEXTS, batch_size=1, sort=False), got, rtol=1e-5, atol=1e-6)


def test_auto_pooling_prefers_pooled_output_then_sentence_transformers_config(tmp_path):
    tiny.build_model(tmp_path / "pooled", pooled="masked_mean")
    emb = _embedder(tmp_path / "pooled", pooling="auto")
    pooling = (emb.pooling.mode, emb.pooling.output, emb.pooling.source)
    assert pooling == ("output", "sentence_embedding", "model output")
    tokens_mean = _embedder(tmp_path / "pooled", pooling="mean").embed_texts(TEXTS, 2)
    np.testing.assert_allclose(emb.embed_texts(TEXTS, 2), tokens_mean, rtol=1e-5, atol=1e-6)

    tiny.build_model(tmp_path / "st")
    tiny.write_pooling_config(tmp_path / "st", "last", normalize=True)
    emb = _embedder(tmp_path / "st", pooling="auto", normalize="auto")
    assert emb.pooling.mode == "last" and emb.pooling.source.endswith("config.json")
    assert emb.normalize is True and emb.normalize_source == "modules.json"

    tiny.build_model(tmp_path / "bare")
    with pytest.raises(UserError, match="pooling is auto but the model has no pooled output"):
        _embedder(tmp_path / "bare", pooling="auto")
    with pytest.raises(UserError, match="neither auto/cls/mean/last nor an output"):
        _embedder(tmp_path / "bare", pooling="meen")


def test_resolve_pooling_explicit_output_must_be_pooled(tmp_path):
    tiny.build_model(tmp_path / "m", pooled="masked_mean")
    outputs = open_runner(tmp_path / "m").outputs
    assert resolve_pooling("sentence_embedding", outputs, {}).mode == "output"
    with pytest.raises(UserError, match="not pooled"):
        resolve_pooling("last_hidden_state", outputs, {})


def test_token_id_beyond_vocabulary_is_a_clear_error(tmp_path):
    tiny.build_model(tmp_path / "m", vocab_size=10)  # the tokenizer knows ~60 words
    emb = _embedder(tmp_path / "m")
    with pytest.raises(UserError, match=r"beyond the vocabulary .* \(10 rows\): wrong tokenizer"):
        emb.embed_texts(TEXTS, 2)


def test_missing_tokenizer_names_what_was_searched(tmp_path):
    path = tiny.build_model(tmp_path / "a" / "m", tokenizer=False)
    with pytest.raises(UserError) as err:
        find_tokenizer(path, None)
    assert str(tmp_path / "a" / "m" / "tokenizer.json") in str(err.value)
    assert str(tmp_path / "a" / "tokenizer.json") in str(err.value)
    with pytest.raises(UserError, match="tokenizer not found"):
        find_tokenizer(path, str(tmp_path / "nowhere"))


def test_nan_outputs_are_an_error(tmp_path):
    tiny.build_model(tmp_path / "m", nan=True)
    with pytest.raises(UserError, match="NaN or Inf"):
        _embedder(tmp_path / "m").embed_texts(TEXTS, 2)


def test_batch_invariance_flags_pooling_that_ignores_the_mask(tmp_path):
    tiny.build_model(tmp_path / "good", pooled="masked_mean")
    tiny.build_model(tmp_path / "bad", pooled="unmasked_mean")
    for side in ("left", "right"):
        good = _embedder(tmp_path / "good", pooling="auto", side=side)
        ids = good.tokenizer.encode(TEXTS)
        assert batch_invariance(good, ids, 5)["min"] > 0.9999
        bad = _embedder(tmp_path / "bad", pooling="auto", side=side)
        assert batch_invariance(bad, ids, 5)["min"] < 0.999


def test_fixed_sequence_length_model_is_padded_to_its_length(tmp_path):
    tiny.build_model(tmp_path / "m", fixed_seq=16)
    emb = _embedder(tmp_path / "m", pooling="mean", max_length=16)
    assert emb.fixed_seq == 16
    dynamic = tmp_path / "d"
    tiny.build_model(dynamic)
    np.testing.assert_allclose(emb.embed_texts(TEXTS, 2), _embedder(dynamic, pooling="mean").embed_texts(TEXTS, 2),
                               rtol=1e-5, atol=1e-6)


def test_decoder_style_position_ids_and_left_padding(tmp_path):
    """Last-token pooling on a model with position_ids: left and right padding, any batch, same vectors."""
    tiny.build_model(tmp_path / "m", positions=True)
    right = _embedder(tmp_path / "m", pooling="last", side="right").embed_texts(TEXTS, 3)
    left = _embedder(tmp_path / "m", pooling="last", side="left").embed_texts(TEXTS, 3)
    alone = _embedder(tmp_path / "m", pooling="last", side="left").embed_texts(TEXTS, 1)
    np.testing.assert_allclose(left, right, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(left, alone, rtol=1e-5, atol=1e-6)
    emb = _embedder(tmp_path / "m", pooling="last", side="left")
    assert "position_ids" in emb.inputs
    assert batch_invariance(emb, emb.tokenizer.encode(TEXTS), 5)["min"] > 0.9999


def test_query_prompt_is_applied_to_queries_only(tmp_path):
    from stages.lib import params as params_lib
    from stages.lib.embedding import embed_corpus

    tiny.build_model(tmp_path / "m")
    corpus = tiny.write_jsonl(tmp_path / "corpus.jsonl", tiny.corpus_rows(8))
    params = params_lib.parse({"corpus": str(corpus), "reference": "m", "models": {"m": {"path": str(tmp_path / "m")}},
                               "embed": {"pooling": "mean", "query_prompt": "find "}})
    files = embed_corpus(params, "m", machine={"int8_support": "test"})
    rows = tiny.corpus_rows(8)
    emb = _embedder(tmp_path / "m", pooling="mean", max_length=128)
    expected = emb.embed_texts(["find " + r["query"] for r in rows], 4)
    np.testing.assert_allclose(files["queries.npy"], expected, rtol=1e-5)
    np.testing.assert_allclose(files["codes.npy"], emb.embed_texts([r["code"] for r in rows], 4), rtol=1e-5)
    assert files["manifest.json"]["query_prompt"] == "find "
    assert files["manifest.json"]["machine"] == {"int8_support": "test"}  # every manifest names its machine


def test_truncation_counts_only_texts_that_lost_tokens(tmp_path):
    tok = load_tokenizer(tiny.build_tokenizer(tmp_path), max_length=5)
    ids = tok.encode_stream(["read file", "return sort list", "find max value in binary search"])
    assert [len(ids[i]) for i in range(len(ids))] == [4, 5, 5]  # [CLS] ... [SEP]; the second fits exactly
    assert ids.truncated == 1


def test_unsupported_sentence_transformers_pooling_matters_only_for_auto(tmp_path):
    import json
    tiny.build_model(tmp_path / "m")
    tiny.write_pooling_config(tmp_path / "m", "mean")
    (tmp_path / "m" / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_max_tokens": True}))
    assert _embedder(tmp_path / "m", pooling="mean").pooling.mode == "mean"
    with pytest.raises(UserError, match="pooling mode not supported"):
        _embedder(tmp_path / "m", pooling="auto")
    (tmp_path / "m" / "modules.json").write_text("{not json")
    with pytest.raises(UserError, match=r"modules.json:1: not valid JSON \(Expecting property name .* at column 2\)"):
        _embedder(tmp_path / "m", pooling="mean")


def test_streaming_embed_writes_the_same_vectors_as_in_memory(tmp_path):
    """Thousands of texts, batch 7: the memory-mapped path (what the stage runs) writes .npy files
    equal to the in-memory arrays, and the staged folder is swapped in complete."""
    from stages.lib import params as params_lib
    from stages.lib.embedding import embed_corpus
    from stages.lib.outputs import staged_dir, write_files

    tiny.build_model(tmp_path / "m")
    corpus = tiny.write_jsonl(tmp_path / "corpus.jsonl", tiny.corpus_rows(2500, seed=5))
    params = params_lib.parse({"corpus": str(corpus), "reference": "m", "models": {"m": {"path": str(tmp_path / "m")}},
                               "embed": {"pooling": "mean", "batch_size": 7, "invariance_sample": 4}})
    memory = embed_corpus(params, "m", machine={})
    with staged_dir(tmp_path / "out") as tmp:
        streamed = embed_corpus(params, "m", machine={}, stream_to=tmp)
        assert isinstance(streamed["codes.npy"], np.memmap)
        write_files(tmp, streamed)
    for name in ("queries.npy", "codes.npy"):
        on_disk = np.load(tmp_path / "out" / name)
        assert on_disk.shape == (2500, 8) and on_disk.dtype == np.float32
        np.testing.assert_array_equal(on_disk, memory[name])
    assert streamed["manifest.json"] == memory["manifest.json"]


def test_nan_found_in_a_streamed_batch_names_the_first_text(tmp_path):
    tiny.build_model(tmp_path / "m", nan=True)
    emb = _embedder(tmp_path / "m", pooling="mean")
    with pytest.raises(UserError, match=r"3 embedding\(s\) contain NaN or Inf \(first: text #0\)"):
        emb.embed_texts(TEXTS[:3], 2, allocate=lambda shape: np.lib.format.open_memmap(
            tmp_path / "v.npy", mode="w+", dtype=np.float32, shape=shape))


def _traced_peak(tmp_path, n: int, stream: bool) -> int:
    """Peak bytes Python and numpy allocate (tracemalloc) while the embed stage's work runs on n
    pairs with batch 7, streaming to disk or not; tokenizers' and onnxruntime's own buffers are
    not traced, and do not grow with the corpus."""
    import tracemalloc

    from stages.lib import params as params_lib
    from stages.lib.embedding import embed_corpus

    folder = tmp_path / str(n)
    tiny.build_model(folder / "m")
    corpus = tiny.write_jsonl(folder / "corpus.jsonl", tiny.corpus_rows(n, seed=5))
    params = params_lib.parse({"corpus": str(corpus), "reference": "m", "models": {"m": {"path": str(folder / "m")}},
                               "embed": {"pooling": "mean", "batch_size": 7, "invariance_sample": 4}})
    out = folder / "out"
    out.mkdir()
    tracemalloc.start()
    try:
        files = embed_corpus(params, "m", machine={}, stream_to=out if stream else None)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(files["codes.npy"]) == n
    return peak


def test_streaming_embed_memory_does_not_grow_with_the_corpus(tmp_path, monkeypatch):
    """From 1,500 to 6,000 pairs the streamed embed's peak grows by the few numbers kept per text
    (lengths, offsets, the length order, the batch index groups: under 150 bytes each), not by the
    texts or their token ids. The control: holding the token ids as lists, as the stage did before,
    grows by more than that on the same texts, so the measure can fail."""
    import tracemalloc

    monkeypatch.setattr("stages.lib.tokenizing.ENCODE_CHUNK", 500)
    small, large = (_traced_peak(tmp_path / "s", n, stream=True) for n in (1500, 6000))
    texts_added = 2 * (6000 - 1500)  # queries and documents
    assert (large - small) / texts_added < 150, (small, large)
    tok = load_tokenizer(tiny.build_tokenizer(tmp_path / "tok"), 32)
    held = []
    for n in (1500, 6000):
        corpus = tmp_path / "s" / str(n) / "corpus.jsonl"
        tracemalloc.start()
        texts = list(iter_texts(corpus, "queries")) + list(iter_texts(corpus, "documents"))
        ids = tok.encode(texts)
        held.append(tracemalloc.get_traced_memory()[0])
        tracemalloc.stop()
        del texts, ids
    assert (held[1] - held[0]) / texts_added > 150, held


def test_embed_parses_the_onnx_graph_once(tmp_path, monkeypatch):
    """Embedding, hashing and the vocabulary check all read what open_runner kept from one parse."""
    import onnx

    from stages.lib import params as params_lib
    from stages.lib.embedding import embed_corpus

    tiny.build_model(tmp_path / "m", external_data=True)
    corpus = tiny.write_jsonl(tmp_path / "corpus.jsonl", tiny.corpus_rows(40, seed=2))
    params = params_lib.parse({"corpus": str(corpus), "reference": "m", "models": {"m": {"path": str(tmp_path / "m")}},
                               "embed": {"pooling": "mean", "batch_size": 8, "invariance_sample": 4}})
    calls = []
    real_load = onnx.load
    monkeypatch.setattr(onnx, "load", lambda *a, **k: calls.append(a[0]) or real_load(*a, **k))
    files = embed_corpus(params, "m", machine={})
    assert len(calls) == 1, calls
    assert files["manifest.json"]["model_sha256"]  # graph file and external data hashed without a second parse
