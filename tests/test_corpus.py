"""The BEIR layout: graded qrels, several relevant documents, distractors; metrics checked against
pytrec_eval run directly on the same scores, and against the paired layout of the same data."""
import json
import re

import numpy as np
import pytest
import pytrec_eval

from stages.lib.comparison import task_metrics
from stages.lib.corpus import corpus_sha256, iter_texts, load_corpus, sample_texts
from stages.lib.errors import UserError
from tests import tiny

N_DOCS, N_QUERIES, DIM = 40, 12, 6


def _beir(tmp_path):
    """12 queries (one not in the qrels), 40 documents of which 16 no query points to; grades 0-2."""
    rng = np.random.default_rng(3)
    docs = [{"_id": f"d{i}", "title": "t" if i % 3 == 0 else "", "text": f"doc {i}",
             "metadata": {"lang": ["go", "rust"][i % 2]}} for i in range(N_DOCS)]
    queries = [{"_id": f"q{i}", "text": f"query {i}"} for i in range(N_QUERIES + 1)]  # q12: no qrels
    qrels = []
    for q in range(N_QUERIES):
        for d in rng.choice(24, size=int(rng.integers(1, 4)), replace=False):
            qrels.append((f"q{q}", f"d{d}", int(rng.integers(1, 3))))
        qrels.append((f"q{q}", f"d{int(rng.integers(24, 30))}", 0))  # judged not relevant
    return tiny.write_beir(tmp_path / "beir", docs, queries, qrels), qrels


def test_beir_folder_is_read_with_its_qrels(tmp_path):
    folder, qrels = _beir(tmp_path)
    c = load_corpus(folder)
    assert len(c.queries) == N_QUERIES and "q12" not in c.query_ids  # only judged queries, as BEIR
    assert len(c.codes) == N_DOCS and c.codes[0] == "t doc 0" and c.codes[1] == "doc 1"  # title joined
    assert c.doc_langs[:2] == ["go", "rust"]
    assert sum(len(d) for d in c.qrels.values()) == len(qrels)
    assert c.qrels[0] == {int(d[1:]): g for q, d, g in qrels if q == "q0"}


def test_metrics_equal_pytrec_eval_on_the_same_scores(tmp_path):
    folder, qrels = _beir(tmp_path)
    c = load_corpus(folder)
    rng = np.random.default_rng(0)
    emb = {"queries": rng.normal(size=(N_QUERIES, DIM)).astype(np.float32),
           "codes": rng.normal(size=(N_DOCS, DIM)).astype(np.float32)}
    means, per_query = task_metrics(emb, 10, c.qrels)
    q = emb["queries"] / np.linalg.norm(emb["queries"], axis=1, keepdims=True)
    d = emb["codes"] / np.linalg.norm(emb["codes"], axis=1, keepdims=True)
    scores = q @ d.T  # every document scored: distractors compete
    run = {f"q{i}": {f"d{j}": float(scores[i, j]) for j in range(N_DOCS)} for i in range(N_QUERIES)}
    truth = {}
    for qid, did, g in qrels:
        truth.setdefault(qid, {})[did] = g
    direct = pytrec_eval.RelevanceEvaluator(truth, {"ndcg_cut_10", "recip_rank", "recall_1", "recall_10"}).evaluate(run)
    for name, measure in (("ndcg@10", "ndcg_cut_10"), ("recall@1", "recall_1"), ("recall@10", "recall_10")):
        np.testing.assert_allclose(per_query[name], [direct[f"q{i}"][measure] for i in range(N_QUERIES)], atol=1e-9)
    rr = np.array([direct[f"q{i}"]["recip_rank"] for i in range(N_QUERIES)])
    np.testing.assert_allclose(per_query["mrr@10"], np.where(rr >= 0.1, rr, 0.0), atol=1e-9)  # cut at 10
    assert 0 < means["ndcg@10"] < 1 and len({round(v, 6) for v in per_query["ndcg@10"]}) > 3  # graded, not trivial


def test_paired_jsonl_and_beir_layout_give_identical_metrics(tmp_path):
    rows = tiny.corpus_rows(30)
    paired = load_corpus(tiny.write_jsonl(tmp_path / "c.jsonl", rows))
    beir = load_corpus(tiny.paired_as_beir(tmp_path / "beir", rows))
    assert (paired.queries, paired.codes, paired.qrels) == (beir.queries, beir.codes, beir.qrels)
    assert paired.query_langs + paired.doc_langs == beir.query_langs + beir.doc_langs
    rng = np.random.default_rng(1)
    emb = {"queries": rng.normal(size=(30, DIM)), "codes": rng.normal(size=(30, DIM))}
    a, b = task_metrics(emb, 10, paired.qrels), task_metrics(emb, 10, beir.qrels)
    assert a[0] == b[0] == task_metrics(emb, 10)[0]


def test_streamed_texts_are_the_loaded_texts_in_the_same_order(tmp_path):
    """The embed stage streams texts (iter_texts), compare loads them (load_corpus): row i of the
    vectors must be text i of both, in either layout (BEIR: judged queries only, titles joined)."""
    folder, _ = _beir(tmp_path)
    paired = tiny.write_jsonl(tmp_path / "c.jsonl", tiny.corpus_rows(30))
    for path in (folder, paired):
        c = load_corpus(path)
        assert list(iter_texts(path, "queries")) == c.queries and list(iter_texts(path, "documents")) == c.codes
        assert c.sha256() == corpus_sha256(path)
        labels = load_corpus(path, with_texts=False)
        assert labels.queries is None and labels.codes is None
        assert (labels.query_ids, labels.query_langs, labels.doc_ids, labels.doc_langs, labels.qrels) == \
            (c.query_ids, c.query_langs, c.doc_ids, c.doc_langs, c.qrels)
    (paired.parent / "empty.jsonl").write_text("\n")
    with pytest.raises(UserError, match="empty.jsonl: corpus is empty"):
        list(iter_texts(paired.parent / "empty.jsonl", "documents"))


def test_sampled_texts_spread_over_the_whole_corpus(tmp_path):
    """What the timing and diagnose stages tokenize: evenly spaced documents, first and last included."""
    folder, _ = _beir(tmp_path)
    docs = load_corpus(folder).codes
    assert sample_texts(folder, "documents", 5) == [docs[i] for i in (0, 10, 20, 29, 39)]
    assert sample_texts(folder, "documents", 500) == docs  # fewer documents than asked: all of them


@pytest.mark.parametrize("line,cause", [("q0\tnope\t1", "test.tsv:2: corpus-id 'nope' is not in corpus.jsonl"),
                                        ("q0\td1\thigh", "test.tsv:2: score 'high' is not an integer"),
                                        ("zz\td1\t1", "test.tsv:2: query-id 'zz' is not in queries.jsonl")])
def test_bad_qrels_name_the_file_and_line(tmp_path, line, cause):
    folder = tiny.write_beir(tmp_path / "b", [{"_id": "d1", "text": "x"}], [{"_id": "q0", "text": "y"}], [])
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + line + "\n")
    with pytest.raises(UserError, match=cause):
        load_corpus(folder)


def test_missing_beir_file_is_named(tmp_path):
    folder = tiny.write_beir(tmp_path / "b", [{"_id": "d1", "text": "x"}], [{"_id": "q0", "text": "y"}],
                             [("q0", "d1", 1)])
    (folder / "queries.jsonl").unlink()
    with pytest.raises(UserError, match=r"queries.jsonl: file not found"):
        load_corpus(folder)


# ---------------------------------------------------------------- messy files: one line, file:line, cause

ROW = {"id": "x9", "lang": "go", "query": "read file", "code": "open read"}


def _bad_line_error(call, path) -> str:
    with pytest.raises(UserError) as info:
        call(path)
    message = str(info.value)
    assert "\n" not in message, message
    return message


@pytest.mark.parametrize("line,cause", [
    (json.dumps(ROW).replace("open read", "caf\\u00e9").encode().replace(b"\\u00e9", b"\xe9"),
     "not UTF-8: byte e9 at byte offset {offset} of the line (invalid continuation byte)"),
    (b'["x9", "go", "read file", "open read"]', "expected one JSON object per line, got an array"),
    (json.dumps({**ROW, "id": 9}).encode(), "field 'id' must be a string, got a number"),
    (json.dumps({**ROW, "code": ["open", "read"]}).encode(), "field 'code' must be a string, got an array"),
    (json.dumps({**ROW, "code": "open \udc80"}).encode(), "a \\u escape encodes '\\udc80', an unpaired surrogate"),
    (b'{"id": "x9", "lang": "go"', "not valid JSON (Expecting ',' delimiter at column {end})"),
], ids=["latin-1-byte", "array", "number-id", "array-code", "lone-surrogate", "cut-json"])
def test_bad_corpus_line_names_file_line_and_cause(tmp_path, line, cause):
    """Line 3 of a paired corpus, through every way the stages read one (load, stream, sample)."""
    path = tiny.write_jsonl(tmp_path / "c.jsonl", tiny.corpus_rows(4))
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:2] + [line + b"\n"] + lines[2:]))
    expected = f"{path}:3: " + cause.format(offset=line.find(b"\xe9"), end=len(line) + 1)
    for call in (load_corpus, lambda p: list(iter_texts(p, "documents")), lambda p: sample_texts(p, "queries", 2)):
        assert _bad_line_error(call, path).startswith(expected)


def test_byte_order_mark_is_accepted_in_every_corpus_file(tmp_path):
    rows = tiny.corpus_rows(5)
    plain = load_corpus(tiny.write_jsonl(tmp_path / "c.jsonl", rows))
    folder = tiny.paired_as_beir(tmp_path / "beir", rows)
    files = (tmp_path / "c.jsonl", folder / "corpus.jsonl", folder / "queries.jsonl", folder / "qrels" / "test.tsv")
    for path in files:
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # the qrels header is still recognised
    for c in (load_corpus(tmp_path / "c.jsonl"), load_corpus(folder)):
        assert (c.queries, c.codes, c.qrels) == (plain.queries, plain.codes, plain.qrels)


@pytest.mark.parametrize("name,line,cause", [
    ("corpus.jsonl", b'{"_id": "d1", "text": "\xff"}',
     "not UTF-8: byte ff at byte offset {offset} of the line (invalid start byte)"),
    ("queries.jsonl", b'{"_id": "q0", "text": "y\xc3("}', "not UTF-8: byte c3 at byte offset {offset} of the line"),
    ("corpus.jsonl", b'{"_id": ["d1"], "text": "x"}', "field '_id' must be a string or an integer, got an array"),
    ("corpus.jsonl", b'{"_id": "d1", "text": "x", "title": 7}', "field 'title' must be a string, got a number"),
    ("corpus.jsonl", b'{"_id": "d1", "text": "x", "metadata": "go"}',
     "field 'metadata' must be an object, got a string"),
    ("queries.jsonl", b'{"_id": "q0", "text": "y", "metadata": {"lang": 1}}',
     "field 'metadata.lang' must be a string, got a number"),
    ("queries.jsonl", b'"q0"', "expected one JSON object per line, got a string"),
])
def test_bad_beir_jsonl_line_names_file_line_and_cause(tmp_path, name, line, cause):
    folder = tiny.write_beir(tmp_path / "b", [{"_id": "d0", "text": "x"}], [{"_id": "q1", "text": "z"}],
                             [("q1", "d0", 1)])
    path = folder / name
    path.write_bytes(path.read_bytes() + line + b"\n")
    first_non_ascii = next((i for i, byte in enumerate(line) if byte >= 0x80), None)
    expected = f"{path}:2: " + cause.format(offset=first_non_ascii)
    kind = "documents" if name == "corpus.jsonl" else "queries"
    for call in (load_corpus, lambda p: list(iter_texts(p, kind))):
        assert _bad_line_error(call, folder).startswith(expected)


@pytest.mark.parametrize("body,lineno,cause", [
    (b"q0\td1\t1\nq0\td\xe91\t1\n", 3, "not UTF-8: byte e9 at byte offset 4 of the line"),
    (b"q0\td1\n", 2, "expected query-id, corpus-id, score separated by tabs, got 2 column(s)"),
    (b"q0\td1\t1\t0\n", 2, "expected query-id, corpus-id, score separated by tabs, got 4 column(s)"),
    # a quoted cell over two lines: file lines count
    (b'q0\td1\t"1\n"\nq0\td1\t1.5\n', 4, "score '1.5' is not an integer"),
])
def test_bad_qrels_rows_fail_in_both_passes(tmp_path, body, lineno, cause):
    """The embed stage reads only the qrels' query ids, compare all of it: both name the same line."""
    folder = tiny.write_beir(tmp_path / "b", [{"_id": "d1", "text": "x"}], [{"_id": "q0", "text": "y"}], [])
    qrels = folder / "qrels" / "test.tsv"
    qrels.write_bytes(qrels.read_bytes() + body)
    for call in (load_corpus, lambda p: list(iter_texts(p, "queries"))):
        assert _bad_line_error(call, folder).startswith(f"{qrels}:{lineno}: {cause}")


def test_calibration_file_is_read_by_the_corpus_reader(tmp_path):
    """A static recipe's calibration texts: a bad byte names the calibration file and line."""
    from stages.lib import params as params_lib
    from stages.lib.calibration import calibration_feeds

    tiny.build_model(tmp_path / "models" / "m")
    corpus = tiny.write_jsonl(tmp_path / "corpus.jsonl", tiny.corpus_rows(4))
    calib = tiny.write_jsonl(tmp_path / "calib.jsonl", tiny.corpus_rows(3, seed=1))
    line = b'{"id": "c", "lang": "go", "query": "\x93quoted\x94", "code": "x"}\n'  # Windows-1252 quotes
    calib.write_bytes(calib.read_bytes() + line)
    params = params_lib.parse({
        "corpus": str(corpus), "calibration": str(calib), "reference": "m",
        "models": {"m": {"path": str(tmp_path / "models" / "m")}, "s": {"path": "models/s"}},
        "quantize": {"s": {"source": str(tmp_path / "models" / "m"), "method": "static", "calibration_texts": 4}}})
    offset = line.index(b"\x93")
    expected = f"{calib}:4: not UTF-8: byte 93 at byte offset {offset} of the line"
    with pytest.raises(UserError, match=re.escape(expected)):
        calibration_feeds(params, "s")
