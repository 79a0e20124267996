"""Bad input through the real command lines: one line naming the file and cause, exit 2, no outputs."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests import tiny

ROOT = Path(__file__).resolve().parents[1]


def _stage(cwd, *args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True)


@pytest.fixture
def work(tmp_path):
    tiny.build_model(tmp_path / "models" / "m")
    tiny.write_jsonl(tmp_path / "data" / "corpus.jsonl", tiny.corpus_rows(6))
    params = {"corpus": "data/corpus.jsonl", "reference": "m", "models": {"m": {"path": "models/m"}},
              "embed": {"pooling": "mean", "max_length": 16}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert _stage(tmp_path, "stages.machine").returncode == 0  # the facts embed/benchmark depend on
    return tmp_path


def _error_line(proc):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def test_typo_in_params_names_the_key(work):
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["embed"]["max_lenght"] = 8
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    line = _error_line(_stage(work, "stages.inspect", "m"))
    assert "embed.max_lenght" in line and "max_length" in line and "params.yaml" in line
    assert not (work / "results" / "inspect").exists()


def test_empty_corpus_leaves_no_output(work):
    (work / "data" / "corpus.jsonl").write_text("")
    line = _error_line(_stage(work, "stages.embed", "m"))
    assert "data/corpus.jsonl" in line and "empty" in line
    assert not (work / "results" / "embed" / "m").exists()


def test_missing_model_leaves_no_output(work):
    (work / "models" / "m" / "model.onnx").unlink()
    line = _error_line(_stage(work, "stages.inspect", "m"))
    assert "models/m" in line
    assert not (work / "results" / "inspect" / "m.json").exists()


def test_embed_writes_embeddings_manifest_and_memory(work):
    proc = _stage(work, "stages.embed", "m")
    assert proc.returncode == 0, proc.stderr
    out = work / "results" / "embed" / "m"
    assert {p.name for p in out.iterdir()} == {"queries.npy", "codes.npy", "query_lengths.npy", "code_lengths.npy",
                                               "manifest.json", "memory.json"}
    assert json.loads((out / "memory.json").read_text())["peak_rss_bytes"] > 0
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp leftovers


def test_stage_refuses_machine_facts_of_another_machine(work):
    """`dvc repro -s embed@m` skips the machine stage: facts from elsewhere must not be recorded as this run's."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EMBED_COMPARE_MACHINE": '{"int8_support": "AMX-INT8"}'}
    proc = subprocess.run([sys.executable, "-m", "stages.embed", "m"], cwd=work, env=env, capture_output=True,
                          text=True)
    line = _error_line(proc)
    assert "results/machine/embed.json: describes another machine" in line and "dvc repro machine/dvc.yaml" in line
    assert not (work / "results" / "embed" / "m").exists()


def _external_model(work):
    """The model of `work` rewritten with its weights in model.onnx_data."""
    tiny.build_model(work / "models" / "m", external_data=True, dim=32)
    return work / "models" / "m" / "model.onnx"


def test_external_data_escaping_the_folder_is_refused(work):
    """An untrusted graph pointing at ../../../etc/hostname must not be read or reported on."""
    import onnx

    model_file = _external_model(work)
    model = onnx.load(str(model_file), load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../../../etc/hostname"
    onnx.save(model, str(model_file))
    line = _error_line(_stage(work, "stages.inspect", "m"))
    assert "models/m/model.onnx" in line and "'../../../etc/hostname'" in line and "'..'" in line
    assert not (work / "results" / "inspect" / "m.json").exists()


def test_hardlinked_external_data_names_the_dvc_setting(work):
    """A DVC cache of type hardlink gives data files a second link, which onnx.load refuses."""
    _external_model(work)
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["models"]["cand"] = {"path": "models/cand"}
    params["quantize"] = {"cand": {"source": "models/m", "method": "dynamic"}}
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    data = work / "models" / "m" / "model.onnx_data"
    os.link(data, work / "cache-copy")
    line = _error_line(_stage(work, "stages.quantize", "cand"))
    assert str(data.relative_to(work)) in line and "hard links" in line
    assert "dvc config cache.type reflink,copy" in line and "dvc checkout --relink" in line
    assert not (work / "models" / "cand").exists()
    (work / "cache-copy").unlink()  # the same model with one link quantizes
    assert _stage(work, "stages.quantize", "cand").returncode == 0
    assert (work / "models" / "cand" / "model.onnx").is_file()


def test_embed_reads_a_beir_folder(work):
    """Documents and queries are embedded on their own counts: distractors included, unjudged queries not."""
    import numpy as np

    rows = tiny.corpus_rows(6)
    docs = [{"_id": f"d{i}", "text": r["code"]} for i, r in enumerate(rows)]
    tiny.write_beir(work / "data" / "beir", docs, [{"_id": "q0", "text": rows[0]["query"]},
                                                    {"_id": "q1", "text": rows[1]["query"]}], [("q0", "d0", 2)])
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["corpus"] = "data/beir"
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    proc = _stage(work, "stages.embed", "m")
    assert proc.returncode == 0, proc.stderr
    out = work / "results" / "embed" / "m"
    assert np.load(out / "codes.npy").shape[0] == 6 and np.load(out / "queries.npy").shape[0] == 1


@pytest.mark.parametrize("key", ["corpus", "snippets"])
def test_corpus_bytes_that_are_not_utf8_stop_embed_with_one_line(work, key):
    """The issue's case: scraped code in Latin-1 on line 4 was a UnicodeDecodeError traceback."""
    path = work / "data" / f"{key}.jsonl"
    rows = tiny.corpus_rows(6)
    tiny.write_jsonl(path, rows)
    lines = path.read_bytes().splitlines(keepends=True)
    lines[3] = lines[3].replace(rows[3]["code"].encode(), b"# r\xe9sum\xe9 " + rows[3]["code"].encode())
    path.write_bytes(b"".join(lines))
    params = yaml.safe_load((work / "params.yaml").read_text())
    params[key] = f"data/{key}.jsonl"
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    line = _error_line(_stage(work, "stages.embed", "m"))
    offset = lines[3].index(b"\xe9")
    assert line == (f"error: data/{key}.jsonl:4: not UTF-8: byte e9 at byte offset {offset} of the line "
                    f"(invalid continuation byte); save the file as UTF-8")
    assert not (work / "results" / "embed" / "m").exists()


def test_params_and_tokenizer_bytes_that_are_not_utf8_are_one_line(work):
    tokenizer = work / "models" / "m" / "tokenizer.json"
    good = tokenizer.read_bytes()
    tokenizer.write_bytes(good.replace(b'"version": "1.0"', b'"version": "1.0\xa0"'))  # a Latin-1 no-break space
    lineno = good[:good.index(b'"version"')].count(b"\n") + 1
    assert _error_line(_stage(work, "stages.embed", "m")).startswith(
        f"error: models/m/tokenizer.json:{lineno}: not UTF-8: byte a0")
    tokenizer.write_bytes(good)
    text = (work / "params.yaml").read_bytes()
    (work / "params.yaml").write_bytes(text + b"# \xa9 2024\n")
    lineno = text.count(b"\n") + 1
    assert _error_line(_stage(work, "stages.inspect", "m")).startswith(
        f"error: params.yaml:{lineno}: not UTF-8: byte a9")
    assert not (work / "results" / "embed" / "m").exists() and not (work / "results" / "inspect").exists()
