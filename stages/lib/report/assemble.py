"""Assembling the report: every model's stage outputs gathered into one document (results/report.json).

Nothing here decides or renders: the ranking comes from advice.py, the text from sections.py.
"""
from __future__ import annotations

from dataclasses import fields, replace

import numpy as np

from ..cases import missed_by_all
from ..documents.benchmark import Benchmark, BenchmarkRun
from ..documents.common import CorpusSample
from ..documents.compare import CaseRow, Comparison, MachineLabel
from ..documents.diagnose import Diagnosis, DiagnosisEnded
from ..documents.inspect import Inspection
from ..documents.record import read_document, read_jsonl
from ..documents.report import (
    DiagnosisEndedSummary,
    DiagnosisSummary,
    Machines,
    MachineUse,
    MissedByAll,
    MissedQuery,
    ModelEntry,
    Report,
    ReportComparison,
    ReportSpeed,
    SpeedControl,
)
from ..documents.speedup import Speedup
from ..errors import UserError
from ..i18n import msg
from ..layout import RESULTS, Results
from ..machine_words import label as machine_label
from ..outputs import read_json
from ..status import Status
from .advice import ranking


def build_report(params, results: Results = RESULTS) -> Report:
    """Gather every model's inspect, benchmark, speedup, compare and diagnose output into one document."""
    models, control, samples = {}, None, {}
    for name in params.models:
        ins = read_document(results.inspect(name), Inspection)
        bench = read_document(results.benchmark(name), Benchmark)
        comp = read_document(results.compare(name), Comparison)
        speed = read_document(results.speedup(name), Speedup)
        samples[name] = comp.sample  # corpus_sample: what its quality numbers were measured on
        made = (ins.recipe or {})  # the QUANTIZE.json the quantize stage wrote beside a model it made
        models[name] = entry = ModelEntry(
            path=params.models[name].path, size=ins.size, parameters=ins.parameters.count,
            bytes_by_dtype=ins.parameters.bytes_by_dtype, quantization=ins.quantization, opset=ins.opset,
            producer=ins.producer, inputs=ins.inputs, outputs=ins.outputs, embedding=comp.embedding,
            benchmark=BenchmarkRun(  # the samples stay in the benchmark file
                session_create_s=bench.session_create_s, memory=bench.memory,
                latency_b1=replace(bench.latency_b1, samples_ms=None, samples_ms_repeat=None),
                throughput=bench.throughput, sweep=bench.sweep),
            environment=bench.environment, machines={**comp.machines, "speedup": machine_label(speed.machine)},
            load={**comp.load, "speedup": speed.load}, task=comp.task, activations=ins.activations,
            recipe=made.get("recipe"), calibration=made.get("calibration"), runtime=comp.runtime)
        if comp.is_reference:
            control = SpeedControl(**vars(speed.summary()), states=speed.states, blocks=len(speed.blocks),
                                   seconds=speed.seconds)
        else:
            entry.comparison = ReportComparison(
                verdict=comp.verdict, relation=comp.relation, consistency=comp.consistency, agreement=comp.agreement,
                task_delta=comp.task_delta, task_by_group=comp.task_by_group, cases=comp.cases, size=comp.size,
                snippets=comp.snippets,
                speed=ReportSpeed(latency_b1=speed.summary(), throughput=comp.speed.throughput))
            entry.diagnosis = diagnosis_summary(read_document(results.diagnose(name), Diagnosis))
    here = machine_label(read_json(results.machine("timing")))
    order = ranking(models, params.reference)
    best_passes = bool(order) and models[order[0]].comparison.verdict.status == Status.PASS
    return Report(ranking=order, recommended=order[0] if best_passes else None,
                  schema_version=Report.SCHEMA_VERSION, reference=params.reference, corpus=params.corpus,
                  sample=one_sample(samples, results),
                  confidence=params.compare.confidence, batch_invariance_min=params.compare.batch_invariance_min,
                  busy_tolerance=params.benchmark.busy_tolerance, language=params.report.language,
                  batch_size=params.embed.batch_size, machines=machine_summary(models, here), speed_control=control,
                  missed_by_all=missed_queries(list(models), params.reference, results) if order else None,
                  models=models)


MISSED_KEPT = 20  # queries every model misses, in report.json (the report shows fewer)
HIT_KEYS = {"reference_hit@10", "candidate_hit@10"}


def _case_columns(path, labels: bool) -> tuple[np.ndarray, list[int | None], list[tuple]]:
    """From one model's case rows (results/cases/NAME.jsonl, streamed): its hit@10 and its rank of
    each query's best relevant document; with `labels`, also each query's id, text, document id and
    reference rank. A few numbers per query, not 100k row objects."""
    hits, ranks, rows = [], [], []
    for lineno, row in enumerate(read_jsonl(path, CaseRow), 1):
        if set(row.hits) != HIT_KEYS:
            raise UserError(f"{path}:{lineno}: expected the keys {', '.join(sorted(HIT_KEYS))}; rerun compare")
        hits.append(row.hits["candidate_hit@10"])
        ranks.append(row.candidate_rank)
        if labels:
            rows.append((row.query_id, row.query_text, row.document_id, row.reference_rank))
    return np.array(hits, dtype=bool), ranks, rows


def missed_queries(names: list[str], reference: str, results: Results) -> MissedByAll:
    """The queries no model (the reference among them) has a relevant document for in its top 10,
    from each model's own case rows (in the reference's file, the reference against itself);
    those whose best relevant document every model ranks lowest first, then by query."""
    hits, ranks, labels = {}, {}, []
    for name in names:
        hits[name], ranks[name], found = _case_columns(results.cases(name), name == reference)
        labels = found or labels
        if len(hits[name]) != len(hits[names[0]]):
            raise UserError(f"{results.cases(name)}: {len(hits[name])} queries, {results.cases(names[0])} "
                            f"{len(hits[names[0]])}: written for different corpora; rerun dvc repro")
    missed = missed_by_all(hits).tolist()
    best = {q: min((ranks[n][q] for n in names if ranks[n][q] is not None), default=None) for q in missed}
    missed.sort(key=lambda q: (best[q] is not None, -(best[q] or 0), q))  # no relevant document: first
    first = [MissedQuery(query=q, query_id=labels[q][0], query_text=labels[q][1], document_id=labels[q][2],
                         reference_rank=labels[q][3], best_rank=best[q]) for q in missed[:MISSED_KEPT]]
    return MissedByAll(models=names, queries=len(labels), count=len(missed), first=first)


def one_sample(samples: dict[str, CorpusSample | None], results: Results) -> CorpusSample | None:
    """The corpus sample every model's quality numbers come from (None: the whole corpus); models
    compared on different subsets (a stage run alone) are not put side by side."""
    (first, sample), *rest = samples.items()
    for name, other in rest:
        if other != sample:
            raise UserError(f"{results.compare(name)}: measured on another corpus sample than {results.compare(first)} "
                            "(corpus_sample); run dvc repro")
    return sample


MACHINE_ROLES = {"embed": ("embed",), "timing": ("benchmark", "speedup")}


def machine_summary(models: dict[str, ModelEntry], here: MachineLabel) -> Machines:
    """Which machines the numbers come from, per kind of number, and a warning per model wherever
    they are not all from one machine (a report must never lend one machine's numbers to another)."""
    kinds, warnings = {}, []
    for kind, roles in MACHINE_ROLES.items():
        seen: dict[str | None, MachineUse] = {}  # machine id (None: recorded without facts) -> its entry
        for name, m in models.items():
            for role in roles:
                label = m.machines[role]
                seen.setdefault(label.id, MachineUse(**vars(label), used_by=[])).used_by.append(f"{name} {role}")
        tags = {mid: f"{kind[0].upper()}{i}" for i, mid in enumerate(seen, 1)}
        kinds[kind] = {tags[mid]: use for mid, use in seen.items()}
        if len(seen) > 1:
            for name, m in models.items():
                used = [msg("role.on", role=msg(f"role.{role}"), tag=tags[m.machines[role].id]) for role in roles]
                warnings.append(msg("warn.mixed", name=name, kind=msg(f"kind.{kind}"), used=used, n=len(seen),
                                    tags=", ".join(tags.values())))
    if here.id not in {use.id for use in kinds["timing"].values()}:
        warnings.append(msg("warn.elsewhere", machine=here.description_code))
    return Machines(current=here, warning_codes=warnings, embed=kinds["embed"], timing=kinds["timing"],
                    warnings=[w.text() for w in warnings])


def plot_series(report: Report) -> dict[str, list[dict]]:
    """Rows for `dvc plots`: one file per chart, a `series` field per model (template .dvc/plots/by_model.json)."""
    latency, throughput = [], []
    for name, m in report.models.items():
        for p in m.benchmark.sweep:
            if p.skipped is None:
                latency.append({"series": f"{name} batch {p.batch_size}", "seq_len": p.seq_len,
                                "p50_ms": p.p50_ms, "tokens_per_s": p.tokens_per_s})
        for row in m.benchmark.throughput:
            for order in ("sorted", "unsorted"):
                one = getattr(row, order)
                throughput.append({"series": f"{name} {order}", "batch_size": row.batch_size,
                                   "texts_per_s": one.texts_per_s, "tokens_per_s": one.tokens_per_s})
    return {"latency.json": latency, "throughput.json": throughput}


def diagnosis_summary(d: Diagnosis) -> DiagnosisEndedSummary | DiagnosisSummary:
    """What the report keeps of results/diagnose/NAME.json: everything but the per-layer list."""
    summary = DiagnosisEndedSummary if isinstance(d, DiagnosisEnded) else DiagnosisSummary
    return summary(**{f.name: getattr(d, f.name) for f in fields(summary)})
