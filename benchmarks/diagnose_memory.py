"""Peak memory of the diagnose stage on a synthetic model bigger than the demo's, and long texts.
(A benchmark, not a test: the numbers depend on the machine and the allocator.)

The reference: a [vocab, D] embedding Gather and `--layers` D x D MatMuls, each followed by a Relu,
weights in external data (about 4 * layers * D * D bytes); the candidate: onnxruntime's dynamic
INT8 of it. Both get the tiny test tokenizer (tests/tiny.py); the corpus holds texts of exactly
`--tokens` tokens, so each exposed tensor is tokens x D floats. For each token count, in a temp
folder, `python -m stages.diagnose cand` runs in its own process (`--code DIR`: another checkout's
stages, e.g. an older commit unpacked with `git archive`), and the peak RSS is the process's own,
by os.wait4 (this process stays small; the model is built in a child too).

    python benchmarks/diagnose_memory.py [--layers 20] [--dim 1024] [--tokens 512 2048] [--no-arena] [--code DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BUILD = """
import sys, numpy as np, onnx, yaml
from pathlib import Path
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic
from tests import tiny
layers, dim, tokens, texts, arena = map(int, sys.argv[1:6])
vocab = tiny.vocab()
rng = np.random.default_rng(0)
inits = [numpy_helper.from_array(rng.normal(size=(len(vocab), dim)).astype(np.float32), "embed.weight")]
nodes = [helper.make_node("Gather", ["embed.weight", "input_ids"], ["x0"], name="embed/Gather")]
x = "x0"
for i in range(layers):
    w = (rng.normal(size=(dim, dim)) * (2 / dim) ** 0.5).astype(np.float32)
    inits.append(numpy_helper.from_array(w, f"layer.{i}.weight"))
    nodes += [helper.make_node("MatMul", [x, f"layer.{i}.weight"], [f"layer.{i}/out"], name=f"layer.{i}/MatMul"),
              helper.make_node("Relu", [f"layer.{i}/out"], [f"layer.{i}/act"], name=f"layer.{i}/Relu")]
    x = f"layer.{i}/act"
nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"]))
inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "seq"])
          for n in ("input_ids", "attention_mask")]
outputs = [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "seq", dim])]
model = helper.make_model(helper.make_graph(nodes, "synthetic", inputs, outputs, inits),
                          opset_imports=[helper.make_opsetid("", 18)])
model.ir_version = 8
for name in ("ref", "cand"):
    Path("models", name).mkdir(parents=True)
    tiny.build_tokenizer(Path("models", name))
onnx.save_model(model, "models/ref/model.onnx", save_as_external_data=True, location="model.onnx_data")
quantize_dynamic("models/ref/model.onnx", "models/cand/model.onnx", weight_type=QuantType.QInt8,
                 op_types_to_quantize=["MatMul"], use_external_data_format=True)
words = [w for w in vocab if not w.startswith("[")]
rows = [{"id": f"t{i}", "lang": "python", "query": "sort list",
         "code": " ".join(words[(i + j) % len(words)] for j in range(tokens - 2))} for i in range(texts)]
tiny.write_jsonl(Path("corpus.jsonl"), rows)
Path("params.yaml").write_text(yaml.safe_dump({
    "corpus": "corpus.jsonl", "reference": "ref",
    "models": {"ref": {"path": "models/ref"}, "cand": {"path": "models/cand"}},
    "embed": {"pooling": "mean", "max_length": tokens}, "diagnose": {"texts": texts},
    **({} if arena else {"onnxruntime": {"enable_cpu_mem_arena": False}})}))
Path("results/compare").mkdir(parents=True)
Path("results/compare/cand.json").write_text('{"verdict": {"status": "FAIL"}}')
"""


def measured(cmd: list[str], cwd: Path, code: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one child process."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.read()[-800:]}")
    return wall, usage.ru_maxrss / 1024  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=20)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--tokens", type=int, nargs="+", default=[512, 2048])
    parser.add_argument("--texts", type=int, default=2)
    parser.add_argument("--no-arena", action="store_true", help="params onnxruntime.enable_cpu_mem_arena: false")
    parser.add_argument("--code", type=Path, default=ROOT, help="checkout whose stages run (default: this one)")
    args = parser.parse_args()
    py = sys.executable
    print("| tokens | weights MiB (ref + cand) | groups | expected MiB | peak RSS MiB | wall s |")
    print("|---|---|---|---|---|---|")
    for tokens in args.tokens:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            measured([py, "-c", BUILD, str(args.layers), str(args.dim), str(tokens), str(args.texts),
                      str(int(not args.no_arena))], folder, ROOT)
            measured([py, "-m", "stages.machine"], folder, args.code)
            wall, peak = measured([py, "-m", "stages.diagnose", "cand"], folder, args.code)
            result = json.loads((folder / "results" / "diagnose" / "cand.json").read_text())
            weights = sum(f.stat().st_size for m in ("ref", "cand")
                          for f in (folder / "models" / m).glob("model.onnx*"))
            mem = result.get("memory", {})
            groups = mem.get("groups", "-")
            expected = f"{mem['expected_peak_bytes'] / 2**20:.0f}" if mem else "-"
            print(f"| {tokens} | {weights / 2**20:.0f} | {groups} | {expected} | {peak:.0f} | {wall:.1f} |", flush=True)


if __name__ == "__main__":
    main()
