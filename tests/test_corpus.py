"""The BEIR layout: graded qrels, several relevant documents, distractors; metrics checked against
pytrec_eval run directly on the same scores, and against the paired layout of the same data; the
quick look's deterministic subset (corpus_sample)."""
import hashlib
import json
import re

import numpy as np
import pytest
import pytrec_eval

from stages.lib.comparison import task_metrics
from stages.lib.corpus import corpus_sha256, draw_sample, iter_texts, load_corpus, sample_texts
from stages.lib.errors import UserError
from stages.lib.metrics import paired_delta
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


# ---------------------------------------------------------------- corpus_sample: a quick look's subset

def _lowest_hashes(ids, n: int) -> set[str]:
    """The n ids whose sha256 is lowest, computed here without the module's heap."""
    return set(sorted(ids, key=lambda i: hashlib.sha256(i.encode()).hexdigest())[:n])


def test_a_paired_sample_is_the_lowest_id_hashes_whatever_the_file_order(tmp_path):
    rows = tiny.corpus_rows(60)
    path = tiny.write_jsonl(tmp_path / "c.jsonl", rows)
    shuffled = tiny.write_jsonl(tmp_path / "s.jsonl", [rows[i] for i in np.random.default_rng(0).permutation(60)])
    sample = draw_sample(path, 12)
    assert sample.query_ids == _lowest_hashes([r["id"] for r in rows], 12) == draw_sample(shuffled, 12).query_ids
    assert sample.facts == draw_sample(path, 12).facts == draw_sample(shuffled, 12).facts  # deterministic
    assert sample.facts | {"sha256": None} == {"queries": 12, "of_queries": 60, "documents": 12, "of_documents": 60,
                                               "judged_documents": 12, "distractors": 0, "sha256": None}
    assert draw_sample(path, 0) is None and draw_sample(path, 60) is None and draw_sample(path, 500) is None
    assert draw_sample(path, 13).facts["sha256"] != sample.facts["sha256"]


def test_a_sample_keeps_its_queries_when_the_corpus_grows(tmp_path):
    rows = tiny.corpus_rows(100)
    small = draw_sample(tiny.write_jsonl(tmp_path / "small.jsonl", rows[:60]), 20).query_ids
    grown = draw_sample(tiny.write_jsonl(tmp_path / "grown.jsonl", rows), 20).query_ids
    old_ids = {r["id"] for r in rows[:60]}
    assert grown & old_ids <= small  # a query of the old corpus enters only if it was in before
    assert len(grown & small) == len(grown & old_ids) >= 8  # and ~60% of the sample stays (40 rows were added)


def test_sampled_texts_are_the_sampled_corpus_in_corpus_order_in_both_layouts(tmp_path):
    folder, _ = _beir(tmp_path)
    paired = tiny.write_jsonl(tmp_path / "c.jsonl", tiny.corpus_rows(30))
    for path, size in ((folder, 5), (paired, 10)):
        full, sample = load_corpus(path), draw_sample(path, size)
        part = load_corpus(path, sample=sample)
        assert part.sample is sample and len(part) == size == sample.facts["queries"]
        assert list(iter_texts(path, "queries", sample)) == part.queries
        assert list(iter_texts(path, "documents", sample)) == part.codes
        assert len(part.codes) == sample.facts["documents"]
        q_rows = [full.query_ids.index(q) for q in part.query_ids]
        d_rows = [full.doc_ids.index(d) for d in part.doc_ids]
        assert q_rows == sorted(q_rows) and d_rows == sorted(d_rows)  # corpus order kept
        assert part.queries == [full.queries[i] for i in q_rows]
        assert part.query_langs == [full.query_langs[i] for i in q_rows]
        assert part.codes == [full.codes[i] for i in d_rows] and part.doc_langs == [full.doc_langs[i] for i in d_rows]
        for new, old in enumerate(q_rows):  # the same judgements, by id, renumbered
            assert {part.doc_ids[d]: g for d, g in part.qrels[new].items()} == \
                {full.doc_ids[d]: g for d, g in full.qrels[old].items()}
        labels = load_corpus(path, with_texts=False, sample=sample)
        assert (labels.query_ids, labels.doc_ids, labels.qrels) == (part.query_ids, part.doc_ids, part.qrels)


def test_a_beir_sample_adds_distractors_to_keep_the_documents_per_query(tmp_path):
    """12 judged queries, 40 documents: 5 queries keep round(5 * 40 / 12) = 17 documents, their judged
    ones (grade 0 included) and the unjudged ones with the lowest id hashes."""
    folder, qrels = _beir(tmp_path)
    sample = draw_sample(folder, 5)
    queries = _lowest_hashes([f"q{i}" for i in range(N_QUERIES)], 5)  # q12 has no qrels: never sampled
    judged = {d for q, d, _ in qrels if q in queries}
    others = [f"d{i}" for i in range(N_DOCS) if f"d{i}" not in judged]
    expected = judged | _lowest_hashes(others, round(5 * N_DOCS / N_QUERIES) - len(judged))
    assert sample.query_ids == queries and sample.judged == judged
    assert set(load_corpus(folder, sample=sample).doc_ids) == expected
    assert sample.facts["documents"] == 17 and sample.facts["distractors"] == 17 - len(judged)
    assert (sample.facts["of_queries"], sample.facts["of_documents"]) == (N_QUERIES, N_DOCS)


def test_a_sample_whose_judged_document_is_missing_names_the_qrels_line(tmp_path):
    folder = tiny.write_beir(tmp_path / "b", [{"_id": f"d{i}", "text": "x"} for i in range(20)],
                             [{"_id": f"q{i}", "text": "y"} for i in range(20)],
                             [(f"q{i}", f"d{i}" if i else "gone", 1) for i in range(20)])
    with pytest.raises(UserError, match=r"test.tsv: corpus-id 'gone' is not in corpus.jsonl"):
        draw_sample(folder, 19)  # q0 hashes lowest of all 20, so it is drawn


def test_a_sample_s_intervals_are_wider_than_the_whole_corpus_s(tmp_path):
    """The paired bootstrap resamples the sampled queries: 50 of 400 give an nDCG@10-change interval
    about sqrt(8) times as wide as all 400. Built so each query's change does not depend on how many
    documents compete (the reference finds every code first; the candidate loses every 4th query's
    code to the last place), so only the number of queries differs."""
    rows = tiny.corpus_rows(400)
    path = tiny.write_jsonl(tmp_path / "c.jsonl", rows)
    codes = np.random.default_rng(5).normal(size=(400, 32))
    ref = {"queries": codes, "codes": codes}
    cand = {"queries": np.where((np.arange(400) % 4 == 0)[:, None], -codes, codes), "codes": codes}
    widths = {}
    for size in (0, 50):
        corpus = load_corpus(path, with_texts=False, sample=draw_sample(path, size))
        rows_in = [int(i[1:]) for i in corpus.query_ids]  # ids t000..t399 are the row numbers
        per = [task_metrics({k: v[rows_in] for k, v in e.items()}, 10, corpus.qrels)[1]["ndcg@10"] for e in (cand, ref)]
        assert set(per[1]) == {1.0} and set(per[0]) == {0.0, 1.0}  # changes of 0 or -1 only, whatever the pool
        d = paired_delta(per[0], per[1], 2000, 0.95, 0)
        assert d["relative_ci_low"] < -(1 - per[0].mean()) < d["relative_ci_high"]
        widths[size] = d["relative_ci_high"] - d["relative_ci_low"]
    assert widths[50] > 1.8 * widths[0] > 0, widths
