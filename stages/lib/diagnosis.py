"""Where a candidate's damage comes from: reference and candidate run on a few corpus texts with the
outputs of their weighted layers exposed, matched by tensor name, compared layer by layer.

Matching by name is sound for what onnxruntime's quantizers make: dynamic (QOperator) quantization
replaces a MatMul by DynamicQuantizeLinear + MatMulInteger + Mul whose last node writes the MatMul's
own output name; QDQ keeps the producer and its output name and suffixes only the QuantizeLinear /
DequantizeLinear outputs. A name in both graphs is therefore one value computed two ways.
(onnxruntime.quantization.qdq_loss_debug pairs QDQ tensors the same way, but it writes a shape-inferred
copy next to the model, loads every weight into memory and exposes every float tensor; here only the
weighted layers are exposed and the weights stay on disk. Its SQNR formula is the one used here.)

Memory: the two models are open together, but only while one group of exposed tensors is run: the
tensors are split, in graph order, into groups whose bytes for the longest text stay within a third
of one model's exposed tensors or half the two models' weights, whichever is more (at least
GROUP_FLOOR), and each group gets its own pair of sessions, opened after the last pair is closed.
Both models' groups together so take two thirds of one text's exposed tensors, leaving a third for
the tensors a run makes on the way and the float64 copies the sums are taken in (or, with short
texts, at most the weights' worth): the stage needs about twice the two models' weights plus the
activations of one text, however long the texts, in a few groups. The numbers do not depend on
the grouping (each tensor's sums run over the same texts in the same order). The expected need is
stated before any model is opened, and the result records it next to the measured peak.
"""
from __future__ import annotations

import gc
import math
from dataclasses import dataclass

import numpy as np

from .corpus import sample_texts
from .documents.diagnose import Diagnosis, DiagnosisDone, DiagnosisEnded, DiagnosisMemory, LayerCounts, OutputError
from .documents.diagnose import Layer as LayerError
from .embedding import Embedder, model_tokenizer, open_embedder
from .i18n import msg
from .memory import mib, peak_rss_bytes, rss_bytes, weights_bytes
from .onnxmodel import model_files, model_paths
from .runtimes import FLOAT_TYPES
from .status import Status

FLOAT_NOISE = 1e-5  # float32 reordering alone gives relative errors below this: a rise to it is no jump
GROUP_FLOOR = 16 << 20  # bytes of exposed tensors per model below which splitting into groups is not worth a reload


@dataclass(frozen=True)
class Layer:
    """One exposed tensor and the reference node that writes it; `width`: its elements per token."""

    tensor: str
    node: str
    op: str
    width: int = 0


def weighted_layers(model, op_types) -> list[Layer]:
    """Outputs of `op_types` nodes that read a weight (initializer or Constant), in graph order: what a
    quantizer quantizes (an attention-score MatMul of two activations is not one, nor a Gather that
    picks a dimension out of a shape with a constant index: its table must be the weight), named as
    `nodes_to_exclude` needs them. ONNX graphs are stored topologically sorted."""
    weights = {t.name: list(t.dims) for t in model.graph.initializer}
    weights |= {o: list(a.t.dims) for n in model.graph.node if n.op_type == "Constant"
                for a in n.attribute if a.name == "value" for o in n.output}

    def weight(node) -> str | None:
        read = node.input[:1] if node.op_type == "Gather" else node.input
        found = [i for i in read if i in weights] if node.op_type in op_types else []
        if len(read) > 1 and read[1] in found:
            return read[1]  # MatMul(x, W), Gemm(x, W, bias), Attention(x, W, bias)
        return found[0] if found else None

    return [Layer(out, node.name, node.op_type, _width(node, weights[w], w == node.input[0]))
            for node in model.graph.node if (w := weight(node)) for out in node.output if out]


def _width(node, dims: list[int], first: bool) -> int:
    """Elements per token of a weighted node's output, from its weight's shape: MatMul(x, W[K, N]) and
    Gemm give N, Gather from a [V, D] table D, com.microsoft Attention its value width. Another op
    type: the weight's largest dimension, a guess."""
    attrs = {a.name: a for a in node.attribute}
    if node.op_type == "Gather":
        return math.prod(dims[1:])
    if node.op_type == "MatMul" and len(dims) >= 2:
        return dims[-2] if first else dims[-1]
    if node.op_type == "Gemm" and len(dims) == 2:
        flag = "transA" if first else "transB"  # first: W[M, K] @ X[K, tokens] gives M per token
        transposed = flag in attrs and attrs[flag].i
        return dims[1] if transposed == first else dims[0]
    if node.op_type == "Attention" and len(dims) == 2:
        sizes = list(attrs["qkv_hidden_sizes"].ints) if "qkv_hidden_sizes" in attrs else []
        return sizes[-1] if sizes else dims[1] // 3
    return max(dims, default=1)


def _output_elements(value) -> list[int | None]:
    """A graph output's dims after the batch axis; None for a symbolic one (tokens, at most)."""
    dims = value.type.tensor_type.shape.dim[1:]
    return [d.dim_value if d.HasField("dim_value") else None for d in dims]


def squared_norms(ref: Embedder, cand: Embedder, id_lists: list[list[int]], names: list[str]) -> dict:
    """name -> [||ref||^2, ||cand - ref||^2] summed over the texts, each text run alone: no padding
    enters the norms, dynamic INT8 quantizes each text as it would alone, and memory stays one text's
    tensors however large the model. A tensor whose shapes differ is left out."""
    sums = {n: [0.0, 0.0] for n in names}
    for ids in id_lists:
        outs = [dict(zip(names, e.runner.run(names, e.feed([ids])[0]))) for e in (ref, cand)]
        for n in list(sums):
            if not _accumulate(sums[n], outs[0].pop(n), outs[1].pop(n)):  # each tensor let go once summed
                del sums[n]
        del outs  # before the next text runs: onnxruntime can reuse the buffers
    return sums


def _accumulate(acc: list, ref: np.ndarray, cand: np.ndarray) -> bool:
    """acc += [||ref||^2, ||cand - ref||^2] in float64; False when the shapes differ. The products are
    those of r * r and (c - r) ** 2, made in place: two float64 copies of a tensor at a time, not four,
    and none left over when the next text runs."""
    if ref.shape != cand.shape:
        return False
    r, c = ref.astype(np.float64), cand.astype(np.float64)
    np.subtract(c, r, out=c)
    np.multiply(c, c, out=c)
    np.multiply(r, r, out=r)
    acc[0] += float(np.sum(r))
    acc[1] += float(np.sum(c))
    return True


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


def diagnose(params, name: str, verdict: Status | None, machine: dict | None = None, say=None,
             group_bytes: int | None = None) -> Diagnosis:
    """The diagnose stage's result for one model (schema in README). The reference and PASS
    candidates are skipped without opening a model. `say(line)` gets the expected memory need before
    any model is opened; `group_bytes` overrides the exposed bytes per group and model (tests)."""
    settings = params.diagnose
    base = {"model": name, "reference": params.reference, "verdict": verdict}
    if name == params.reference:
        return _ended(base, "skipped", "diag.skip_reference")
    if verdict == Status.PASS:
        return _ended(base, "skipped", "diag.skip_pass")
    runtimes = {params.model(n).runtime for n in (params.reference, name)}
    if runtimes != {"onnxruntime"}:  # OpenVINO compiles the graph: its intermediate tensors are not exposed
        return _ended(base, "not_comparable", "diag.runtime", runtime=", ".join(sorted(runtimes - {"onnxruntime"})))
    # what is needed from the two graphs, read one at a time and let go before any model is opened
    ref_file, ref_graph, data = model_files(params.model(params.reference).path)
    weights = {params.reference: weights_bytes(model_paths(ref_file, data))}
    layers = weighted_layers(ref_graph, settings.op_types)
    shapes = {o.name: _output_elements(o) for o in ref_graph.graph.output}
    del ref_graph
    cand_file, cand_graph, data = model_files(params.model(name).path)
    weights[name] = weights_bytes(model_paths(cand_file, data))
    produced = {o for node in cand_graph.graph.node for o in node.output}
    del cand_graph
    matched = [layer for layer in layers if layer.tensor in produced]
    outputs = [o for o in shapes if o in produced]
    shapes |= {layer.tensor: [None, layer.width] for layer in matched}  # per token: [tokens, width]
    names = list(dict.fromkeys([layer.tensor for layer in matched] + outputs))
    ops = ", ".join(settings.op_types)
    if not matched:
        return _ended(base, "not_comparable", "diag.no_match", ops=ops, count=len(layers))
    texts = sample_texts(params.corpus, "documents", settings.texts)  # code: a BEIR corpus has more or fewer queries
    id_lists = model_tokenizer(params, params.reference, ref_file).encode(texts)
    if model_tokenizer(params, name, cand_file).encode(texts) != id_lists:
        return _ended(base, "not_comparable", "diag.tokenizers_differ")
    plan = memory_plan(names, shapes, max(map(len, id_lists)), weights, outputs, group_bytes)
    if say:
        say(f"{name}: expected peak memory about {mib(plan['expected_peak_bytes'])}: this process "
            f"{mib(plan['before_models_bytes'])} + 2 x the weights ({' + '.join(mib(w) for w in weights.values())}) "
            f"+ 2 models x the exposed tensors of the longest text ({plan['longest_text_tokens']} tokens) in "
            f"{plan['groups']} group(s) of at most {mib(plan['group_bytes'])}, with working copies")
    sums, options = {}, None
    groups = plan.pop("group_names")
    for group in groups:
        group_sums, options = _group_sums(params, name, group, id_lists)
        sums.update(group_sums)
        gc.collect()  # this pair of sessions is gone before the next opens
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
        tensors=[LayerError(**r) for r in rows], machine=machine,
        memory=DiagnosisMemory(**plan, peak_rss_bytes=peak_rss_bytes(), memory_options=options))


def memory_plan(names: list[str], shapes: dict, tokens: int, weights: dict, outputs: list[str] = (),
                group_bytes: int | None = None) -> dict:
    """Groups of `names` (graph order) to expose one pair of sessions at a time, and the memory that
    needs. Per model, a run holds its group's tensors and the graph's `outputs` (made in every run;
    compared with the last group) for the longest text (float32, batch 1); `group_bytes` is the
    largest such sum. Expected: this process now, twice the weights (onnxruntime's copy, and the
    graph it parses them from while loading), and for both models a group plus two working tensors
    as large as the largest exposed one (a node's input and output), plus the two float64 copies
    of that one its sums are taken in."""
    sizes = {n: 4 * math.prod(tokens if d is None else d for d in shapes.get(n) or [None]) for n in names}
    budget = group_bytes or max(sum(weights.values()) // 2, sum(sizes.values()) // 3, GROUP_FLOOR)
    always = [n for n in names if n in outputs]
    groups: list[list[str]] = []
    total = 0
    for n in (n for n in names if n not in always):
        if not groups or total + sizes[n] > budget:
            groups.append([])
            total = sum(sizes[o] for o in always)
        groups[-1].append(n)
        total += sizes[n]
    groups = groups or [[]]
    groups[-1] += always
    held = max(sum(sizes[n] for n in set(g) | set(always)) for g in groups)
    largest = max(sizes.values())
    before = rss_bytes()
    return {"weights_bytes": weights, "longest_text_tokens": tokens, "exposed_bytes": sum(sizes.values()),
            "groups": len(groups), "group_bytes": held, "before_models_bytes": before,
            "expected_peak_bytes": before + 2 * sum(weights.values()) + 2 * (held + 2 * largest) + 4 * largest,
            "group_names": groups}


def _group_sums(params, name: str, group: list[str], id_lists) -> tuple[dict, dict]:
    """Squared norms of one group's tensors, the reference and the candidate opened with only these
    exposed (and closed on return), and the onnxruntime memory options the sessions ran with."""
    ref, cand = (open_embedder(params, n, expose=group) for n in (params.reference, name))
    types = [{o.name: o.type for o in e.runner.outputs} for e in (ref, cand)]
    floats = [n for n in group if types[0].get(n) in FLOAT_TYPES and types[1].get(n) in FLOAT_TYPES]
    ref.check_ids(id_lists)
    cand.check_ids(id_lists)
    return squared_norms(ref, cand, id_lists, floats), ref.runner.facts()["memory_options"]
