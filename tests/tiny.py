"""Tiny ONNX embedding models and tokenizers built in the test, with outputs numpy can recompute.

Token output: last_hidden_state = E[input_ids] @ W (each position depends only on its own token),
so every pooling result has an exact independent value.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer, models, pre_tokenizers, processors

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
WORDS = ("return sort list dict value key sum add file read write open close parse json string number "
         "find max min count loop print error list user name id query select from where table join order by "
         "group http get post fetch retry cache map filter reduce binary search tree node graph path").split()


def vocab() -> dict[str, int]:
    words = list(dict.fromkeys(WORDS))
    return {tok: i for i, tok in enumerate(SPECIALS + words)}


def build_tokenizer(folder: Path) -> Path:
    """A WordLevel tokenizer with BERT-style [CLS] ... [SEP], saved as tokenizer.json."""
    v = vocab()
    tok = Tokenizer(models.WordLevel(v, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", v["[CLS]"]), ("[SEP]", v["[SEP]"])])
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    return folder / "tokenizer.json"


def weights(vocab_size: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(vocab_size, dim)).astype(np.float32),
            rng.normal(scale=0.5, size=(dim, dim)).astype(np.float32))


def build_model(folder: Path, *, vocab_size: int | None = None, dim: int = 8, seed: int = 0,
                pooled: str | None = None, external_data: bool = False, nan: bool = False,
                fixed_seq: int | None = None, fixed_batch: int | None = None, tokenizer: bool = True,
                positions: bool = False) -> Path:
    """Write folder/model.onnx (+ tokenizer.json). pooled: None, 'masked_mean' (correct) or
    'unmasked_mean' (ignores the attention mask, a bug the batch-invariance check must catch).
    positions: a decoder-style `position_ids` input adding a position embedding P[position_ids],
    so left padding gives the same vectors only if position ids are counted from the mask."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab_size = vocab_size or len(vocab())
    emb, w = weights(vocab_size, dim, seed)
    seq = fixed_seq if fixed_seq else "seq"
    batch = fixed_batch if fixed_batch else "batch"
    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [batch, seq]),
              helper.make_tensor_value_info("attention_mask", TensorProto.INT64, [batch, seq])]
    inits = [numpy_helper.from_array(emb, "embeddings.weight"), numpy_helper.from_array(w, "dense.weight")]
    nodes = [helper.make_node("Gather", ["embeddings.weight", "input_ids"], ["x0"])]
    if positions:
        inputs.append(helper.make_tensor_value_info("position_ids", TensorProto.INT64, ["batch", seq]))
        pos = np.random.default_rng(seed + 1).normal(size=(64, dim)).astype(np.float32)
        inits.append(numpy_helper.from_array(pos, "positions.weight"))
        nodes += [helper.make_node("Gather", ["positions.weight", "position_ids"], ["p"]),
                  helper.make_node("Add", ["x0", "p"], ["x"])]
    else:
        nodes.append(helper.make_node("Identity", ["x0"], ["x"]))
    nodes.append(helper.make_node("MatMul", ["x", "dense.weight"], ["h"], name="dense"))
    if nan:
        inits.append(numpy_helper.from_array(np.array([np.nan], dtype=np.float32), "nan"))
        nodes.append(helper.make_node("Mul", ["h", "nan"], ["last_hidden_state"]))
    else:
        nodes.append(helper.make_node("Identity", ["h"], ["last_hidden_state"]))
    outputs = [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", seq, dim])]
    if pooled:
        inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"))
        inits.append(numpy_helper.from_array(np.array([2], dtype=np.int64), "axis2"))
        if pooled == "masked_mean":
            nodes += [helper.make_node("Cast", ["attention_mask"], ["maskf"], to=TensorProto.FLOAT),
                      helper.make_node("Unsqueeze", ["maskf", "axis2"], ["mask3"]),
                      helper.make_node("Mul", ["last_hidden_state", "mask3"], ["masked"]),
                      helper.make_node("ReduceSum", ["masked", "axis1"], ["num"], keepdims=0),
                      helper.make_node("ReduceSum", ["mask3", "axis1"], ["den"], keepdims=0),
                      helper.make_node("Div", ["num", "den"], ["sentence_embedding"])]
        else:
            nodes.append(helper.make_node("ReduceMean", ["last_hidden_state", "axis1"], ["sentence_embedding"],
                                          keepdims=0))
        outputs.append(helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", dim]))
    graph = helper.make_graph(nodes, "tiny", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="tests.tiny")
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = folder / "model.onnx"
    if external_data:
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location="model.onnx_data", size_threshold=64)
    else:
        onnx.save_model(model, str(path))
    if tokenizer:
        build_tokenizer(folder)
    return path


def expected_tokens(ids: list[int], dim: int = 8, seed: int = 0) -> np.ndarray:
    """The tiny model's token output for one unpadded sequence, computed by numpy alone."""
    emb, w = weights(len(vocab()), dim, seed)
    return emb[np.asarray(ids)] @ w


def write_pooling_config(folder: Path, mode: str, normalize: bool = False) -> None:
    """A sentence-transformers head next to the tokenizer: modules.json + 1_Pooling/config.json."""
    keys = {"cls": "pooling_mode_cls_token", "mean": "pooling_mode_mean_tokens", "last": "pooling_mode_lasttoken"}
    (folder / "1_Pooling").mkdir(parents=True, exist_ok=True)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({k: k == keys[mode] for k in keys.values()}))
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    (folder / "modules.json").write_text(json.dumps(modules))


def corpus_rows(n: int, seed: int = 0) -> list[dict]:
    """Labelled pairs from the tiny vocabulary: each query shares words with its own code."""
    rng = np.random.default_rng(seed)
    words = list(dict.fromkeys(WORDS))
    rows = []
    for i in range(n):
        code_words = [words[j] for j in rng.choice(len(words), size=int(rng.integers(3, 12)), replace=False)]
        query = code_words[: max(2, len(code_words) // 3)] + [words[int(rng.integers(len(words)))]]
        rows.append({"id": f"t{i:03d}", "lang": ["python", "javascript"][i % 2], "query": " ".join(query),
                     "code": " ".join(code_words)})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def layer_weights(vocab_size: int, dim: int, layers: int, seed: int = 0) -> tuple[np.ndarray, list[np.ndarray]]:
    """An embedding table and orthogonal layer matrices: an orthogonal layer keeps a relative error
    exactly as it came, so only a damaged layer can make it jump."""
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(vocab_size, dim)).astype(np.float32)
    return emb, [np.linalg.qr(rng.normal(size=(dim, dim)))[0].astype(np.float32) for _ in range(layers)]


def build_layers(folder: Path, mats: list[np.ndarray] | None = None, *, dim: int = 16, layers: int = 3,
                 seed: int = 0, external_data: bool = False, prefix: str = "") -> Path:
    """folder/model.onnx: input_ids -> Gather 'embed/Gather' -> MatMul 'layer.i/MatMul' (tensor
    'layer.i/out') ... -> last_hidden_state, + tokenizer.json. `mats` replaces the layer matrices
    (a damaged copy); `prefix` renames every tensor (a graph that is not a copy)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    emb, default = layer_weights(len(vocab()), dim, layers, seed)
    mats = default if mats is None else mats
    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
              helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])]
    inits = [numpy_helper.from_array(emb, "embeddings.weight")]
    nodes = [helper.make_node("Gather", ["embeddings.weight", "input_ids"], [prefix + "embed/out"],
                              name="embed/Gather")]
    x = prefix + "embed/out"
    for i, w in enumerate(mats):
        inits.append(numpy_helper.from_array(w, f"layer.{i}.weight"))
        nodes.append(helper.make_node("MatMul", [x, f"layer.{i}.weight"], [f"{prefix}layer.{i}/out"],
                                      name=f"layer.{i}/MatMul"))
        x = f"{prefix}layer.{i}/out"
    nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="output"))
    outputs = [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "seq", dim])]
    model = helper.make_model(helper.make_graph(nodes, "layers", inputs, outputs, inits),
                              opset_imports=[helper.make_opsetid("", 18)], producer_name="tests.tiny")
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = folder / "model.onnx"
    onnx.save_model(model, str(path), save_as_external_data=external_data, all_tensors_to_one_file=True,
                    location="model.onnx_data", size_threshold=64)
    build_tokenizer(folder)
    return path


def dynamic_int8(source: Path, folder: Path) -> Path:
    """folder/model.onnx: onnxruntime's dynamic INT8 (per tensor, MatMul) of source/model.onnx, with
    its tokenizer: the kind of candidate the quantize stage makes."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    quantize_dynamic(str(Path(source) / "model.onnx"), str(folder / "model.onnx"), weight_type=QuantType.QInt8,
                     op_types_to_quantize=["MatMul"])
    (folder / "tokenizer.json").write_bytes((Path(source) / "tokenizer.json").read_bytes())
    return folder


def write_beir(folder: Path, docs: list[dict], queries: list[dict], qrels: list[tuple[str, str, int]]) -> Path:
    """A BEIR-layout corpus folder: corpus.jsonl, queries.jsonl, qrels/test.tsv (with its header)."""
    folder = Path(folder)
    write_jsonl(folder / "corpus.jsonl", docs)
    write_jsonl(folder / "queries.jsonl", queries)
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{s}\n" for q, d, s in qrels))
    return folder


def paired_as_beir(folder: Path, rows: list[dict]) -> Path:
    """The paired rows in BEIR layout: query i -> code i, grade 1, languages in `metadata`."""
    docs = [{"_id": f"c-{r['id']}", "text": r["code"], "metadata": {"lang": r["lang"]}} for r in rows]
    queries = [{"_id": f"q-{r['id']}", "text": r["query"], "lang": r["lang"]} for r in rows]
    return write_beir(folder, docs, queries, [(f"q-{r['id']}", f"c-{r['id']}", 1) for r in rows])
