"""The compare stage's work: one model against the reference, from files earlier stages wrote."""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np

from .cases import TargetRanks, case_rows, hits_at, short_text, top_cases
from .corpus import corpus_sample, iter_texts, load_corpus, sample_label
from .documents.benchmark import Benchmark
from .documents.compare import (
    Agreement,
    Cases,
    CompareSpeed,
    Comparison,
    Consistency,
    Delta,
    EmbeddingSummary,
    GroupDelta,
    MachineLabel,
    Norms,
    Relation,
    RuntimeSummary,
    Sanity,
    SizeRatio,
    Snippet,
    TaskByGroup,
    Verdict,
)
from .documents.embed import EmbedManifest
from .documents.inspect import Inspection
from .documents.record import read, read_document
from .errors import UserError
from .i18n import Message, msg
from .layout import RESULTS, Results
from .machine_words import int8_path
from .machine_words import label as machine_label
from .metrics import (
    MIN_GROUP_QUERIES,
    by_label,
    cosine_agreement,
    group_deltas,
    length_buckets,
    linear_cka,
    norms,
    paired_delta,
    randomization_test,
    retrieval_per_query,
    row_cosine,
    scan_rankings,
    similarity_agreement,
)
from .status import Status
from .verdict import decide


def load_embeddings(folder: Path) -> dict:
    folder = Path(folder)
    if not (folder / "manifest.json").is_file():
        raise UserError(f"{folder}: no embeddings (run: dvc repro embed@{folder.name})")
    out = {"manifest": read_document(folder / "manifest.json", EmbedManifest)}
    for path in sorted(folder.glob("*.npy")):
        out[path.stem] = np.load(path, allow_pickle=False, mmap_mode="r")  # read in blocks, not held whole
    return out


def task_metrics(emb: dict, k: int, qrels: dict | None = None, rankings: np.ndarray | None = None) -> tuple[dict, dict]:
    """Retrieval quality of one model over every document (distractors included), judged by the
    corpus qrels; without them, query i's one relevant document is code i (the paired layout).
    `rankings`: each query's top max(k, 10) documents, if already scanned (similarity_agreement)."""
    if len(emb["codes"]) < 10:
        raise UserError(f"corpus has {len(emb['codes'])} documents: @10 retrieval metrics need at least 10")
    if rankings is None:
        rankings = scan_rankings(emb["queries"], emb["codes"], max(k, 10))
    per_query = retrieval_per_query(rankings, np.arange(len(emb["queries"])) if qrels is None else qrels)
    return {name: float(v.mean()) for name, v in per_query.items()}, per_query


def sanity(emb: dict) -> Sanity:
    finite = bool(np.isfinite(emb["queries"]).all() and np.isfinite(emb["codes"]).all())
    return Sanity(finite=finite, dim=int(emb["codes"].shape[1]), norms_codes=Norms(**norms(emb["codes"])),
                  norms_queries=Norms(**norms(emb["queries"])), batch_invariance=emb["manifest"].batch_invariance)


def snippet_view(ref: dict, cand: dict, snippets_path: str | None) -> list[Snippet]:
    """The quick view on the hand-written snippets: per-snippet agreement and top-1 hit per model."""
    if not snippets_path or "snippet_codes" not in ref or "snippet_codes" not in cand:
        return []
    snippets = load_corpus(snippets_path)
    same_dim = ref["snippet_codes"].shape[1] == cand["snippet_codes"].shape[1]
    rows = []
    ref_top = scan_rankings(ref["snippet_queries"], ref["snippet_codes"], 1)[:, 0]
    cand_top = scan_rankings(cand["snippet_queries"], cand["snippet_codes"], 1)[:, 0]
    cos_code = row_cosine(ref["snippet_codes"], cand["snippet_codes"]) if same_dim else [None] * len(snippets)
    cos_query = row_cosine(ref["snippet_queries"], cand["snippet_queries"]) if same_dim else [None] * len(snippets)
    for i, sid in enumerate(snippets.ids):
        rows.append(Snippet(id=sid, lang=snippets.langs[i], cosine_code=cos_code[i], cosine_query=cos_query[i],
                            reference_top1=bool(ref_top[i] == i), candidate_top1=bool(cand_top[i] == i)))
    return rows


def agreement_metrics(ref: dict, emb: dict, langs: list[str], s, on_block=None) -> tuple[dict, np.ndarray, np.ndarray]:
    """Per-text cosine needs one space; CKA and the similarity-matrix metrics work across dimensions.
    `langs`: one per text, the queries' then the documents' (their counts may differ). Also returns
    both models' rankings (reference, candidate) from the same pass, for the retrieval metrics;
    `on_block` rides on that pass (metrics.similarity_agreement)."""
    texts_ref = np.vstack([ref["queries"], ref["codes"]])
    texts_cand = np.vstack([emb["queries"], emb["codes"]])
    out = {"cka_linear": linear_cka(texts_ref, texts_cand)}
    if texts_ref.shape[1] == texts_cand.shape[1]:
        lengths = np.concatenate([emb["query_lengths"], emb["code_lengths"]])
        out["cosine"] = cosine_agreement(texts_ref, texts_cand, langs, lengths)
        out["cosine_codes_mean"] = float(row_cosine(ref["codes"], emb["codes"]).mean())
        out["cosine_queries_mean"] = float(row_cosine(ref["queries"], emb["queries"]).mean())
    out["similarity"], ref_rank, cand_rank = similarity_agreement(
        ref["queries"], ref["codes"], emb["queries"], emb["codes"], s.k, s.spearman_max_pairs, s.seed,
        on_block=on_block)
    return out, ref_rank, cand_rank


INT8_KERNEL_FORMATS = ("QOperator", "QDQ", "4-bit")  # run on integer kernels chosen by instruction set


def verdict_scope(quantization: str, embed_machine: dict | None) -> Message | None:
    """For INT8 kernels, the instruction path the verdict holds on (another path computes other
    numbers), as a message code; None for formats that do not run on INT8 kernels."""
    if quantization not in INT8_KERNEL_FORMATS:
        return None
    return msg("scope.holds_on", path=int8_path(embed_machine["int8_support"] if embed_machine else "unrecorded"))


FLOAT_DTYPES = {"double": "f64", "float": "f32", "float16": "f16", "bfloat16": "bf16"}  # inspect's names


def runtime_summary(name: str, facts: dict | None, bytes_by_dtype: dict) -> RuntimeSummary:
    """How the model ran (its embed manifest's runner facts), and one plain sentence when the runtime
    computed in another float type than the file stores: OpenVINO's default on a CPU with bf16 runs
    an FP32 file in bfloat16 without saying so."""
    floats = {FLOAT_DTYPES[d]: n for d, n in bytes_by_dtype.items() if d in FLOAT_DTYPES}
    stored = max(floats, key=floats.get) if floats else None
    used = facts["precision"]["used"] if facts else None
    code = None
    if stored and used in FLOAT_DTYPES.values() and used != stored:
        requested = facts["precision"]["requested"]
        code = msg("rec.precision_auto" if requested == "auto" else "rec.precision_set", name=name,
                   stored=stored.upper(), used=used, runtime=facts["runtime"], version=facts["version"],
                   requested=requested)
    return RuntimeSummary(facts=facts, stored_precision=stored, note=code and code.text(), note_code=code)


def compare(params, name: str, results: Results = RESULTS) -> tuple[Comparison, list[dict]]:
    """The compare stage's document: task metrics and sanity; for a candidate, everything against
    the reference and the verdict. Also one case row per query (results/cases/NAME.jsonl): for the
    reference, the reference against itself."""
    ref_name = params.reference
    s = params.compare
    sample = corpus_sample(params)  # a quick look's subset, as embed drew it; None: the whole corpus
    corpus = load_corpus(params.corpus, with_texts=False, sample=sample)  # labels: the vectors are on disk
    ref = load_embeddings(results.embed(ref_name))
    emb = ref if name == ref_name else load_embeddings(results.embed(name))
    texts_sha256 = corpus.sha256()  # reads every corpus file: once
    facts = sample.facts if sample else None
    for model, e in ((ref_name, ref), (name, emb)):
        if e["manifest"].texts_sha256 != texts_sha256:
            raise UserError(f"{results.embed(model)}: embeddings are of another corpus than {corpus.path}; "
                            f"rerun embed@{model}")
        drawn = e["manifest"].sample and e["manifest"].sample.to_dict()
        if drawn != facts:
            raise UserError(f"{results.embed(model)}: embeddings are of {sample_label(drawn)}, "
                            f"params corpus_sample={params.corpus_sample} asks for {sample_label(facts)}; "
                            f"rerun embed@{model}")
    inv = ref["manifest"].batch_invariance
    if inv.min is not None and inv.min < s.batch_invariance_min:
        raise UserError(f"reference {ref_name}: a text embedded alone and in a padded batch agree only to cosine "
                        f"{inv.min:.6f} (< {s.batch_invariance_min}): pooling or the attention mask is wrong")
    ranks = TargetRanks(corpus.qrels, len(corpus))  # rides on the one scan of the score matrices
    if name == ref_name:
        agreement = None
        ref_rank = cand_rank = scan_rankings(ref["queries"], ref["codes"], max(s.k, 10),
                                             on_block=lambda start, scores: ranks(start, scores, scores))
    else:
        agreement, ref_rank, cand_rank = agreement_metrics(ref, emb, corpus.query_langs + corpus.doc_langs, s,
                                                           on_block=ranks)  # one scan of both score matrices
    task, per_query = task_metrics(emb, s.k, corpus.qrels, cand_rank)
    rows = query_rows(corpus, ranks, ref_rank, cand_rank, ref["query_lengths"])
    manifest = emb["manifest"]
    bench = {n: read_document(results.benchmark(n), Benchmark) for n in (ref_name, name)}
    inspect = {n: read_document(results.inspect(n), Inspection) for n in (ref_name, name)}
    machines = {"embed": machine_label(manifest.machine),
                "embed_reference": machine_label(ref["manifest"].machine),
                "benchmark": machine_label(bench[name].machine),
                "benchmark_reference": machine_label(bench[ref_name].machine)}
    out = Comparison(
        model=name, reference=ref_name, is_reference=name == ref_name,
        sample=manifest.sample,  # the subset both models were embedded on (checked above)
        embedding=EmbeddingSummary(**{f.name: getattr(manifest, f.name) for f in fields(EmbeddingSummary)}),
        machines=machines,
        load={"benchmark": bench[name].load}, sanity=sanity(emb), task=task,
        runtime=runtime_summary(name, manifest.runtime, inspect[name].parameters.bytes_by_dtype),
        headline={})
    if name != ref_name:
        _, ref_per_query = task_metrics(ref, s.k, corpus.qrels, ref_rank)
        out.task_delta = {m: task_delta(per_query[m], ref_per_query[m], s) for m in per_query}
        out.task_by_group = task_by_group(per_query["ndcg@10"], ref_per_query["ndcg@10"], corpus.query_langs,
                                          ref["query_lengths"], s)
        out.cases = shown_cases(rows, corpus)
        out.consistency = consistency(ref["manifest"], manifest, out.machines)
        out.agreement = read(Agreement, agreement)
        out.relation = relation(out.consistency.same_dim, out.agreement, inspect[name], inspect[ref_name], s)
        out.speed = CompareSpeed(throughput={  # the batch-1 speedup is the speedup stage's (timing.py)
            str(r.batch_size): c.sorted.texts_per_s / r.sorted.texts_per_s
            for r, c in zip(bench[ref_name].throughput, bench[name].throughput) if r.batch_size == c.batch_size})
        out.size = SizeRatio(reference_bytes=inspect[ref_name].size.total_bytes,
                             candidate_bytes=inspect[name].size.total_bytes,
                             ratio=inspect[ref_name].size.total_bytes / inspect[name].size.total_bytes,
                             quantization=inspect[name].quantization)
        out.snippets = snippet_view(ref, emb, params.snippets)
        out.verdict = verdict(out, params.verdict, inspect[name].quantization, manifest.machine)
    out.headline = headline_metrics(out, inspect[name], bench[name], params.embed.batch_size)
    return out, rows


def task_delta(cand: np.ndarray, ref: np.ndarray, s) -> Delta:
    """A per-query metric's paired change: bootstrap interval, Wilcoxon p and randomization p."""
    return Delta(**paired_delta(cand, ref, s.bootstrap, s.confidence, s.seed),
                 randomization_p=randomization_test(cand, ref, s.permutations, s.seed)["p"])


def task_by_group(cand: np.ndarray, ref: np.ndarray, langs: list[str], lengths: np.ndarray, s) -> TaskByGroup:
    """nDCG@10's paired change inside each language and each query-length bucket (the reference's
    token counts), with the same interval, tests and seed as the whole corpus gets."""
    groups = {"lang": by_label(langs), "length": length_buckets(lengths)}
    found = {key: group_deltas(cand, ref, sel, s.bootstrap, s.confidence, s.seed, s.permutations)
             for key, sel in groups.items()}
    return TaskByGroup(metric="ndcg@10", min_queries=MIN_GROUP_QUERIES,
                       **{key: {g: GroupDelta(**d) for g, d in by_group.items()} for key, by_group in found.items()})


def query_rows(corpus, ranks: TargetRanks, ref_rank: np.ndarray, cand_rank: np.ndarray, lengths) -> list[dict]:
    """cases.case_rows for every query, each with its text shortened: the texts come from one
    streamed pass over the queries (compare holds no corpus text; a quick look's, its sample's)."""
    rows = case_rows(ranks, ref_rank[:, 0], cand_rank[:, 0], hits_at(ref_rank, corpus.qrels),
                     hits_at(cand_rank, corpus.qrels), query_ids=corpus.query_ids, doc_ids=corpus.doc_ids,
                     langs=corpus.query_langs, lengths=lengths)
    for row, text in zip(rows, iter_texts(corpus.path, "queries", corpus.sample), strict=True):
        row["query_text"] = short_text(text)
    return rows


CASES_KEPT = 10  # losses and gains each, in the compare document and report.json (all: results/cases/NAME.jsonl)
DOCUMENT_FIELDS = ("document", "reference_first", "candidate_first")


def shown_cases(rows: list[dict], corpus) -> Cases:
    """The largest losses and gains (cases.top_cases) with the texts of their documents, taken in
    one streamed pass over the documents that keeps only those few."""
    top = top_cases(rows, CASES_KEPT)
    wanted = {r[f] for r in top["losses"] + top["gains"] for f in DOCUMENT_FIELDS}
    texts = {i: short_text(t) for i, t in enumerate(iter_texts(corpus.path, "documents", corpus.sample)) if i in wanted}
    top.update({side: [{**r, **{f"{f}_text": texts[r[f]] for f in DOCUMENT_FIELDS}} for r in top[side]]
                for side in ("losses", "gains")})
    return read(Cases, top)


def consistency(mr: EmbedManifest, mc: EmbedManifest, machines: dict[str, MachineLabel]) -> Consistency:
    """Are reference and candidate embedded alike (prompt, tokenizer, batches, pooling, machine)?"""
    same_tokenizer = mr.tokenizer_sha256 == mc.tokenizer_sha256
    return Consistency(
        same_dim=mr.dim == mc.dim, same_prompt=mr.query_prompt == mc.query_prompt, same_tokenizer=same_tokenizer,
        same_batches=mr.batch_size == mc.batch_size and same_tokenizer and mr.max_length == mc.max_length,
        same_pooling=mr.pooling.mode == mc.pooling.mode and mr.normalize == mc.normalize,
        same_embed_machine=machines["embed"].id == machines["embed_reference"].id,
        same_timing_machine=machines["benchmark"].id == machines["benchmark_reference"].id)


def relation(same_dim: bool, agreement: Agreement, cand: Inspection, ref: Inspection, s) -> Relation:
    """The reference in another precision (agreement counts), or another network (task metrics only)."""
    params_ratio = cand.parameters.count / max(ref.parameters.count, 1)
    cos_mean = agreement.cosine.mean if agreement.cosine else None
    related = same_dim and ((cos_mean or 0) >= s.related_min_cosine or abs(params_ratio - 1) < 0.01)
    reason = msg("relation.related" if related else "relation.other_dim" if not same_dim else "relation.other_network")
    return Relation(related=related, parameter_ratio=params_ratio, reason=reason.text(), reason_code=reason)


def verdict(c: Comparison, thresholds, quantization: str, embed_machine: dict | None) -> Verdict:
    """decide() on the agreement and task numbers, then what the embeddings' consistency adds."""
    cos, sim, ndcg = c.agreement.cosine, c.agreement.similarity, c.task_delta["ndcg@10"]
    flat = {"finite": c.sanity.finite, "cosine_mean": cos and cos.mean, "cosine_p1": cos and cos.p1,
            "spearman": sim.spearman, "overlap_at_10": sim.overlap["overlap@10"],
            "ndcg_rel_ci_low": ndcg.relative_ci_low, "ndcg_rel_ci_high": ndcg.relative_ci_high}
    status, reasons = decide(flat, thresholds, c.relation.related)
    for same, reason in ((c.consistency.same_prompt, "reason.prompt_differ"),
                         (c.consistency.same_batches, "reason.batches_differ")):
        if not same:
            reasons.append(msg(reason))
            status = Status.WARN if status == Status.PASS else status
    if not c.consistency.same_embed_machine:
        reasons.append(msg("reason.machines_differ", ref=c.machines["embed_reference"].description_code,
                           cand=c.machines["embed"].description_code))
    scope = verdict_scope(quantization, embed_machine)
    return Verdict(status=status, reasons=[r.text() for r in reasons], reason_codes=reasons,
                   scope=scope and scope.text(), scope_code=scope)


def _rounded(x, digits: int):
    return None if x is None else round(float(x), digits)


def headline_metrics(c: Comparison, inspect: Inspection, bench: Benchmark, batch_size: int) -> dict:
    """The few flat numbers per model DVC shows (`metrics diff`, `exp show`); detail stays in compare/.

    Rounded to what the measurement supports, so a diff is readable and shows real changes; the
    deciding numbers first, because `exp show` keeps the leftmost columns when the terminal is narrow."""
    tput = {t.batch_size: t for t in bench.throughput}
    main_bs = batch_size if batch_size in tput else max(tput)
    out = {}
    if not c.is_reference:
        cos, sim = c.agreement.cosine, c.agreement.similarity
        out.update({"verdict": c.verdict.status.number,
                    "cosine_mean": _rounded(cos and cos.mean, 4),
                    "ndcg_change": _rounded(c.task_delta["ndcg@10"].relative, 4),
                    "cosine_p1": _rounded(cos and cos.p1, 4), "spearman": _rounded(sim.spearman, 4),
                    "overlap@10": _rounded(sim.overlap["overlap@10"], 4)})
    out.update({**{m: _rounded(c.task[m], 4) for m in ("ndcg@10", "mrr@10", "recall@10")},
                "p50_ms": _rounded(bench.latency_b1.p50_ms, 3),
                f"texts_per_s@{main_bs}": _rounded(tput[main_bs].sorted.texts_per_s, 1),
                "size_mb": _rounded(inspect.size.total_bytes / 1e6, 2),
                "parameters": inspect.parameters.count,
                "machine": c.machines["benchmark"].id})
    return out
