"""Where a candidate's damage comes from: reference and candidate run on a few corpus texts with the
outputs of their weighted layers exposed, matched by tensor name, compared layer by layer.

Matching by name is sound for what onnxruntime's quantizers make: dynamic (QOperator) quantization
replaces a MatMul by DynamicQuantizeLinear + MatMulInteger + Mul whose last node writes the MatMul's
own output name; QDQ keeps the producer and its output name and suffixes only the QuantizeLinear /
DequantizeLinear outputs. A name in both graphs is therefore one value computed two ways.
(onnxruntime.quantization.qdq_loss_debug pairs QDQ tensors the same way, but it writes a shape-inferred
copy next to the model, loads every weight into memory and exposes every float tensor; here only the
weighted layers are exposed and the weights stay on disk. Its SQNR formula is the one used here.)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .corpus import sample_texts
from .documents.diagnose import Diagnosis, DiagnosisDone, DiagnosisEnded, LayerCounts, OutputError
from .documents.diagnose import Layer as LayerError
from .embedding import Embedder, open_embedder
from .i18n import msg
from .onnxmodel import load_graph
from .runtimes import FLOAT_TYPES
from .status import Status

FLOAT_NOISE = 1e-5  # float32 reordering alone gives relative errors below this: a rise to it is no jump


@dataclass(frozen=True)
class Layer:
    """One exposed tensor and the reference node that writes it."""

    tensor: str
    node: str
    op: str


def weighted_layers(model, op_types) -> list[Layer]:
    """Outputs of `op_types` nodes that read a weight (initializer or Constant), in graph order: what a
    quantizer quantizes (an attention-score MatMul of two activations is not one, nor a Gather that
    picks a dimension out of a shape with a constant index: its table must be the weight), named as
    `nodes_to_exclude` needs them. ONNX graphs are stored topologically sorted."""
    weights = {t.name for t in model.graph.initializer}
    weights |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}

    def weighted(node) -> bool:
        read = node.input[:1] if node.op_type == "Gather" else node.input
        return node.op_type in op_types and any(i in weights for i in read)

    return [Layer(out, node.name, node.op_type) for node in model.graph.node if weighted(node)
            for out in node.output if out]


def squared_norms(ref: Embedder, cand: Embedder, id_lists: list[list[int]], names: list[str]) -> dict:
    """name -> [||ref||^2, ||cand - ref||^2] summed over the texts, each text run alone: no padding
    enters the norms, dynamic INT8 quantizes each text as it would alone, and memory stays one text's
    tensors however large the model. A tensor whose shapes differ is left out."""
    sums = {n: [0.0, 0.0] for n in names}
    for ids in id_lists:
        outs = [dict(zip(names, e.runner.run(names, e.feed([ids])[0]))) for e in (ref, cand)]
        for n in list(sums):
            r, c = outs[0][n].astype(np.float64), outs[1][n].astype(np.float64)
            if r.shape != c.shape:
                del sums[n]
                continue
            sums[n][0] += float(np.sum(r * r))
            sums[n][1] += float(np.sum((c - r) ** 2))
    return sums


def error_numbers(ref_sq: float, diff_sq: float) -> dict:
    """Relative error ||cand - ref|| / ||ref|| and SQNR 20 log10(||ref|| / ||cand - ref||) in dB (None:
    identical, no noise to measure)."""
    rel = math.sqrt(diff_sq / ref_sq) if ref_sq > 0 else (0.0 if diff_sq == 0 else math.inf)
    return {"rel_error": rel, "sqnr_db": 10 * math.log10(ref_sq / diff_sq) if diff_sq > 0 and ref_sq > 0 else None}


def find_jumps(rows: list[dict], factor: float, top: int) -> tuple[dict | None, list[dict]]:
    """Mark each row (graph order) with the largest error before it; a row jumps when its error is
    more than `factor` times that (and above float noise). Returns the first jump and the `top`
    jumps with the largest rise: where error enters, not where earlier error is carried on."""
    worst = 0.0
    for row in rows:
        row["max_before"] = worst
        row["increase"] = row["rel_error"] - worst
        row["jump"] = row["rel_error"] > max(factor * worst, FLOAT_NOISE)
        worst = max(worst, row["rel_error"])
    jumps = [r for r in rows if r["jump"]]
    return (jumps[0] if jumps else None), sorted(jumps, key=lambda r: -r["increase"])[:top]


def _ended(base: dict, status: str, key: str, **args) -> DiagnosisEnded:
    """A diagnosis that stops early: why, as a message (and its English text for the JSON's readers)."""
    reason = msg(key, **args)
    return DiagnosisEnded(**base, status=status, reason=reason.text(), reason_code=reason)


def diagnose(params, name: str, verdict: Status | None, machine: dict | None = None) -> Diagnosis:
    """The diagnose stage's result for one model (schema in README). The reference and PASS
    candidates are skipped without opening a model."""
    settings = params.diagnose
    base = {"model": name, "reference": params.reference, "verdict": verdict}
    if name == params.reference:
        return _ended(base, "skipped", "diag.skip_reference")
    if verdict == Status.PASS:
        return _ended(base, "skipped", "diag.skip_pass")
    runtimes = {params.model(n).runtime for n in (params.reference, name)}
    if runtimes != {"onnxruntime"}:  # OpenVINO compiles the graph: its intermediate tensors are not exposed
        return _ended(base, "not_comparable", "diag.runtime", runtime=", ".join(sorted(runtimes - {"onnxruntime"})))
    ref_graph = load_graph(params.model(params.reference).path)
    layers = weighted_layers(ref_graph, settings.op_types)
    cand_graph = load_graph(params.model(name).path)
    produced = {o for node in cand_graph.graph.node for o in node.output}
    matched = [layer for layer in layers if layer.tensor in produced]
    outputs = [o.name for o in ref_graph.graph.output if o.name in produced]
    names = list(dict.fromkeys([layer.tensor for layer in matched] + outputs))
    ops = ", ".join(settings.op_types)
    if not matched:
        return _ended(base, "not_comparable", "diag.no_match", ops=ops, count=len(layers))
    ref, cand = (open_embedder(params, n, expose=names, graph=g)
                 for n, g in ((params.reference, ref_graph), (name, cand_graph)))
    types = [{o.name: o.type for o in e.runner.outputs} for e in (ref, cand)]
    names = [n for n in names if types[0].get(n) in FLOAT_TYPES and types[1].get(n) in FLOAT_TYPES]
    texts = sample_texts(params.corpus, "documents", settings.texts)  # code: a BEIR corpus has more or fewer queries
    id_lists = ref.tokenizer.encode(texts)
    if cand.tokenizer.encode(texts) != id_lists:
        return _ended(base, "not_comparable", "diag.tokenizers_differ")
    ref.check_ids(id_lists)
    cand.check_ids(id_lists)
    sums = squared_norms(ref, cand, id_lists, names)
    rows = [{"tensor": layer.tensor, "node": layer.node, "op": layer.op, **error_numbers(*sums[layer.tensor])}
            for layer in matched if layer.tensor in sums]
    if not rows:
        return _ended(base, "not_comparable", "diag.no_match", ops=ops, count=len(layers))
    first, top = find_jumps(rows, settings.jump_factor, settings.top)
    return DiagnosisDone(
        **base, status="done", texts=len(id_lists), tokens=sum(map(len, id_lists)),
        op_types=list(settings.op_types), jump_factor=settings.jump_factor,
        layers=LayerCounts(weighted=len(layers), matched=len(matched), compared=len(rows)),
        unmatched=[layer.tensor for layer in layers if layer.tensor not in produced][:10],
        first_jump=LayerError(**first) if first else None, top=[LayerError(**r) for r in top],
        nodes_to_exclude=[r["node"] for r in top if r["node"]],
        outputs=[OutputError(tensor=n, **error_numbers(*sums[n])) for n in outputs if n in sums],
        tensors=[LayerError(**r) for r in rows], machine=machine)
