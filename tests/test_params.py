"""stages/lib/params.py: the repo's params.yaml loads, and every kind of mistake is a one-line UserError."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from stages.lib import params
from stages.lib.errors import UserError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def raw() -> dict:
    """The repo's own params.yaml as plain YAML (independent of params.py)."""
    return yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def load_error(tmp_path: Path, data: dict) -> str:
    with pytest.raises(UserError) as info:
        params.load(write(tmp_path, data))
    message = str(info.value)
    assert "\n" not in message, message  # one line
    assert message.strip() == message and message
    return message


def minimal(**extra) -> dict:
    data = {"corpus": "data/corpus.jsonl", "reference": "ref", "models": {"ref": {"path": "models/ref"}}}
    data.update(extra)
    return data


# ---------------------------------------------------------------- the repo's file

def test_repo_params_load(monkeypatch, raw):
    monkeypatch.chdir(ROOT)
    p = params.load("params.yaml")
    assert isinstance(p, params.Params)
    assert p.reference == raw["reference"]
    assert p.corpus == raw["corpus"] and p.snippets == raw["snippets"]
    assert list(p.models) == list(raw["models"])
    for name, entry in raw["models"].items():
        assert p.models[name].name == name
        assert p.models[name].path == entry["path"]
    assert set(p.quantize) == set(raw.get("quantize") or {})
    for name, entry in (raw.get("quantize") or {}).items():
        assert p.quantize[name].source == entry["source"]
        assert p.quantize[name].per_channel == entry.get("per_channel", False)
    for section, record in (("embed", p.embed), ("benchmark", p.benchmark), ("compare", p.compare),
                            ("verdict", p.verdict)):
        for key, value in raw.get(section, {}).items():
            assert getattr(record, key) == value, f"{section}.{key}"
    assert p.demo == params.DemoSettings(**raw["demo"])


def test_repo_params_parse_equals_load(raw):
    assert params.parse(copy.deepcopy(raw)) == params.load(ROOT / "params.yaml")


def test_minimal_file_gets_all_defaults(tmp_path):
    p = params.load(write(tmp_path, minimal()))
    assert p.embed == params.EmbedSettings()
    assert p.benchmark == params.BenchmarkSettings()
    assert p.compare == params.CompareSettings()
    assert p.verdict == params.VerdictThresholds()
    assert p.quantize == {} and p.snippets is None and p.demo == params.DemoSettings()


def test_int_is_accepted_for_a_float(tmp_path):
    p = params.load(write(tmp_path, minimal(benchmark={"min_seconds": 3})))
    assert p.benchmark.min_seconds == 3.0 and isinstance(p.benchmark.min_seconds, float)


# ---------------------------------------------------------------- typos

@pytest.mark.parametrize("mutate,key,suggestion", [
    (lambda d: d["models"]["fp32"].__setitem__("pooing", "mean"), "models.fp32.pooing", "pooling"),
    (lambda d: d["benchmark"].__setitem__("min_iteration", 5), "benchmark.min_iteration", "min_iterations"),
    (lambda d: d.__setitem__("refrence", "fp32"), "refrence", "reference"),
    (lambda d: d["embed"].__setitem__("batchsize", 8), "embed.batchsize", "batch_size"),
    (lambda d: d["compare"].__setitem__("bootstraps", 10), "compare.bootstraps", "bootstrap"),
    (lambda d: d["verdict"].__setitem__("pass_cosine_man", 0.9), "verdict.pass_cosine_man", "pass_cosine_mean"),
    (lambda d: d["quantize"]["int8-pc"].__setitem__("per_chanel", True), "quantize.int8-pc.per_chanel", "per_channel"),
], ids=["model-key", "benchmark-key", "top-level", "embed-key", "compare-key", "verdict-key", "quantize-key"])
def test_typo_names_the_key_and_suggests_the_right_one(tmp_path, raw, mutate, key, suggestion):
    data = copy.deepcopy(raw)
    mutate(data)
    message = load_error(tmp_path, data)
    assert key in message
    assert f"did you mean '{suggestion}'" in message
    assert str(tmp_path / "params.yaml") in message  # names the file that was read


def test_unknown_key_without_a_close_match_lists_the_allowed(tmp_path, raw):
    data = copy.deepcopy(raw)
    data["embed"]["zzzz"] = 1
    message = load_error(tmp_path, data)
    assert "embed.zzzz" in message and "did you mean" not in message
    assert "batch_size" in message and "max_length" in message


# ---------------------------------------------------------------- types and structure

@pytest.mark.parametrize("section,key,value,kind", [
    ("embed", "batch_size", "32", "int"),
    ("embed", "max_length", 12.5, "int"),
    ("benchmark", "warmup", True, "int"),       # a bool is not an int here
    ("benchmark", "min_seconds", "2s", "float"),
    ("compare", "seed", None, "int"),
    ("verdict", "pass_spearman", "0.98", "float"),
    ("embed", "query_prompt", 5, "str"),
])
def test_wrong_type_names_the_key(tmp_path, raw, section, key, value, kind):
    data = copy.deepcopy(raw)
    data[section][key] = value
    message = load_error(tmp_path, data)
    assert f"{section}.{key}" in message
    assert kind in message
    assert repr(value) in message


def test_wrong_type_in_a_model_entry(tmp_path):
    data = minimal()
    data["models"]["ref"]["max_length"] = "64"
    message = load_error(tmp_path, data)
    assert "models.ref.max_length" in message and "int" in message


def test_reference_must_be_a_model(tmp_path, raw):
    data = copy.deepcopy(raw)
    data["reference"] = "fp64"
    message = load_error(tmp_path, data)
    assert "fp64" in message and "models" in message
    for name in raw["models"]:
        assert name in message  # lists what there is


def test_quantize_entry_needs_a_models_entry(tmp_path, raw):
    data = copy.deepcopy(raw)
    del data["models"]["int8-pc"]
    message = load_error(tmp_path, data)
    assert "quantize.int8-pc" in message
    assert "models.int8-pc" in message  # says what to add


@pytest.mark.parametrize("section", ["models", "quantize"])
@pytest.mark.parametrize("bad", ["int8.pc", "int8 pc", "a/b", ""])
def test_invalid_model_names(tmp_path, raw, section, bad):
    data = copy.deepcopy(raw)
    if section == "models":
        data["models"][bad] = {"path": "models/x"}
    else:
        data["models"][bad] = {"path": "models/x"}
        data["quantize"] = {bad: {"source": "models/fp32"}}
    message = load_error(tmp_path, data)
    assert f"{bad}" in message and "letters, digits" in message


@pytest.mark.parametrize("mutate,words", [
    (lambda d: d.pop("corpus"), "params.corpus"),
    (lambda d: d.pop("models"), "params.models"),
    (lambda d: d.__setitem__("models", {}), "models"),
    (lambda d: d["models"]["fp32"].pop("path"), "models.fp32.path"),
    (lambda d: d["quantize"]["int8-pt"].pop("source"), "quantize.int8-pt.source"),
    (lambda d: d.__setitem__("embed", [1, 2]), "embed"),
    (lambda d: d["quantize"]["int8-pt"].__setitem__("weight_type", "QInt4"), "weight_type"),
    (lambda d: d["embed"].__setitem__("padding_side", "top"), "padding_side"),
    (lambda d: d["models"]["fp32"].__setitem__("normalize", "yes"), "models.fp32.normalize"),
    (lambda d: d["embed"].__setitem__("batch_size", 0), "embed.batch_size"),
], ids=["no-corpus", "no-models", "empty-models", "no-path", "no-source", "section-not-mapping", "weight-type",
        "padding-side", "normalize", "batch-size-zero"])
def test_structural_mistakes(tmp_path, raw, mutate, words):
    data = copy.deepcopy(raw)
    mutate(data)
    assert words in load_error(tmp_path, data)


def test_file_problems_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="file not found"):
        params.load(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [unclosed\n  - x: {\n", encoding="utf-8")
    with pytest.raises(UserError) as info:
        params.load(bad)
    assert "not valid YAML" in str(info.value) and "\n" not in str(info.value)
    top = tmp_path / "list.yaml"
    top.write_text("- 1\n- 2\n", encoding="utf-8")
    with pytest.raises(UserError, match="top level must be a mapping"):
        params.load(top)


# ---------------------------------------------------------------- Params.embed_for

def test_setting_falls_back_to_embed_and_model_overrides(tmp_path):
    data = minimal(embed={"max_length": 256, "pooling": "mean", "normalize": True, "query_prompt": "query: "})
    data["models"]["cand"] = {"path": "models/cand", "max_length": 64, "pooling": "cls", "normalize": False,
                              "query_prompt": "", "padding_side": "left"}
    p = params.load(write(tmp_path, data))
    # defaults from `embed`
    assert p.embed_for("ref").max_length == 256
    assert p.embed_for("ref").pooling == "mean"
    assert p.embed_for("ref").normalize is True
    assert p.embed_for("ref").query_prompt == "query: "
    assert p.embed_for("ref").padding_side == "right"  # EmbedSettings default, not in the file
    # overrides, including falsy ones (False, "") that must not fall back
    assert p.embed_for("cand").max_length == 64
    assert p.embed_for("cand").pooling == "cls"
    assert p.embed_for("cand").normalize is False
    assert p.embed_for("cand").query_prompt == ""
    assert p.embed_for("cand").padding_side == "left"
    assert p.embed_for("cand").batch_size == p.embed.batch_size  # one batch size for all: identical batches


def test_setting_of_an_unknown_model(tmp_path):
    p = params.load(write(tmp_path, minimal()))
    with pytest.raises(UserError) as info:
        p.embed_for("nope")
    assert "nope" in str(info.value) and "ref" in str(info.value) and "\n" not in str(info.value)


def test_internal_name_field_is_not_a_params_key(tmp_path):
    data = minimal()
    data["models"]["ref"]["name"] = "something-else"
    message = load_error(tmp_path, data)
    assert "models.ref.name" in message


@pytest.mark.parametrize("key, value", [("batch_sizes", [1, "8"]), ("seq_lengths", []), ("batch_sizes", [0])])
def test_benchmark_lists_must_hold_positive_integers(tmp_path, key, value):
    data = minimal()
    data["benchmark"] = {key: value}
    assert f"benchmark.{key}" in load_error(tmp_path, data)


@pytest.mark.parametrize("section, key, value", [
    ("compare", "confidence", 95), ("compare", "bootstrap", 0), ("compare", "k", 0),
    ("benchmark", "min_iterations", 0), ("benchmark", "throughput_repeats", 0),
    ("embed", "invariance_sample", -1), ("embed", "padding_side", "middle"), ("embed", "normalize", "yes"),
])
def test_out_of_range_values_name_their_key(tmp_path, section, key, value):
    data = minimal()
    data[section] = {key: value}
    message = load_error(tmp_path, data)
    assert f"'{section}.{key}' must be" in message


def test_model_override_errors_name_the_model_key(tmp_path):
    data = minimal()
    data["models"]["ref"]["max_length"] = 0
    assert "'models.ref.max_length' must be at least 1" in load_error(tmp_path, data)


def test_quantize_output_must_be_the_models_path(tmp_path):
    data = minimal()
    data["models"]["q"] = {"path": "elsewhere/q"}
    data["quantize"] = {"q": {"source": "models/r"}}
    assert "'models.q.path' must be models/q" in load_error(tmp_path, data)


def test_unknown_demo_key_is_an_error(tmp_path):
    data = minimal()
    data["demo"] = {"model_pakage": "x"}
    assert "demo.model_pakage" in load_error(tmp_path, data)


def test_runtime_defaults_to_onnxruntime_and_openvino_precision_is_kept(tmp_path):
    data = minimal()
    data["models"]["ov"] = {"path": "models/ref", "runtime": "openvino", "precision": "f32"}
    data["models"]["ov-auto"] = {"path": "models/ref", "runtime": "openvino"}  # same file, third name
    p = params.load(write(tmp_path, data))
    assert (p.models["ref"].runtime, p.models["ref"].precision) == ("onnxruntime", None)
    assert (p.models["ov"].runtime, p.models["ov"].precision) == ("openvino", "f32")
    assert p.models["ov-auto"].precision is None  # the runner reads None as auto


@pytest.mark.parametrize("entry, words", [
    ({"runtime": "tensorrt"}, "'models.ref.runtime' must be onnxruntime or openvino, got 'tensorrt'"),
    ({"precision": "f32"}, "'models.ref.precision' applies only to runtime openvino"),
    ({"runtime": "onnxruntime", "precision": "auto"}, "'models.ref.precision' applies only to runtime openvino"),
    ({"runtime": "openvino", "precision": "int8"}, "'models.ref.precision' must be auto, f32, bf16, f16, got 'int8'"),
    ({"runtime": "openvino", "precison": "f32"}, "unknown key 'models.ref.precison' (did you mean 'precision'?)"),
])
def test_runtime_and_precision_errors_name_the_key(tmp_path, entry, words):
    data = minimal()
    data["models"]["ref"].update(entry)
    assert words in load_error(tmp_path, data)


# ---------------------------------------------------------------- the file's bytes and YAML syntax

def _file_error(path: Path) -> str:
    with pytest.raises(UserError) as info:
        params.load(path)
    message = str(info.value)
    assert "\n" not in message, message
    return message


def test_bytes_that_are_not_utf8_name_the_line(tmp_path, raw):
    """A params.yaml saved as Latin-1 (an accented prompt): the line and the byte, not a traceback."""
    path = write(tmp_path, raw)
    lines = path.read_bytes().splitlines(keepends=True)
    bad = b'  query_prompt: "requ\xeate: "\n'
    at = next(i for i, line in enumerate(lines) if line.startswith(b"  query_prompt:"))
    path.write_bytes(b"".join(lines[:at] + [bad] + lines[at + 1:]))
    offset = bad.index(b"\xea")
    assert _file_error(path) == (f"{path}:{at + 1}: not UTF-8: byte ea at byte offset {offset} of the "
                                 f"line (invalid continuation byte); save the file as UTF-8")
    path.write_bytes(path.read_bytes().replace(b"\xea", "ê".encode()))
    assert params.load(path).embed.query_prompt == "requête: "


def test_byte_order_mark_is_accepted_and_utf16_named(tmp_path, raw):
    path = write(tmp_path, raw)
    plain = params.load(path)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert params.load(path) == plain
    path.write_bytes(path.read_bytes()[3:].decode().encode("utf-16"))
    assert _file_error(path).startswith(f"{path}:1: the file is UTF-16")


@pytest.mark.parametrize("text,cause", [
    ("corpus: c\nmodels: [one,\n  two\nreference: x\n",
     "4: not valid YAML (expected ',' or ']', but got ':' at column 10, while parsing a flow sequence started on "
     "line 2)"),
    ("corpus: c\nreference: x\n\tmodels: {}\n",
     "3: not valid YAML (found character '\\t' that cannot start any token at column 1)"),
    ("corpus: c\nreference: \"x\n", "3: not valid YAML (found unexpected end of stream at column 1, while scanning a "
                                    "quoted scalar started on line 2)"),
    ("corpus: c\nreference: x\x00\n", "2: not valid YAML (character U+0000: special characters are not allowed)"),
    ("", " file is empty (no settings)"),
    ("# only a comment\n", " file is empty (no settings)"),
], ids=["flow", "tab", "unclosed-quote", "nul", "empty", "comment-only"])
def test_yaml_errors_name_the_line(tmp_path, text, cause):
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8")
    assert _file_error(path) == f"{path}:{cause}"


def test_onnxruntime_memory_options_default_to_onnxruntimes_own(tmp_path, raw):
    import onnxruntime as ort

    own = ort.SessionOptions()
    p = params.load(write(tmp_path, minimal()))
    assert (p.onnxruntime.enable_cpu_mem_arena, p.onnxruntime.enable_mem_pattern) == \
        (own.enable_cpu_mem_arena, own.enable_mem_pattern)
    assert params.parse(copy.deepcopy(raw)).onnxruntime == p.onnxruntime  # the repo's file states the defaults
    p = params.load(write(tmp_path, minimal(onnxruntime={"enable_cpu_mem_arena": False})))
    assert (p.onnxruntime.enable_cpu_mem_arena, p.onnxruntime.enable_mem_pattern) == (False, own.enable_mem_pattern)


@pytest.mark.parametrize("section, words", [
    ({"enable_cpu_mem_arena": "no"}, "'onnxruntime.enable_cpu_mem_arena' must be bool, got 'no'"),
    ({"enable_mem_arena": False}, "unknown key 'onnxruntime.enable_mem_arena' (did you mean 'enable_cpu_mem_arena'?)"),
])
def test_onnxruntime_option_mistakes_name_the_key(tmp_path, section, words):
    assert words in load_error(tmp_path, minimal(onnxruntime=section))


# ---------------------------------------------------------------- corpus_sample (a quick look)

def test_corpus_sample_defaults_to_the_whole_corpus_and_takes_a_count(tmp_path, raw):
    assert params.load(write(tmp_path, minimal())).corpus_sample == 0
    assert raw["corpus_sample"] == 0  # the repo's file names it: dvc.yaml lists it as a parameter
    assert params.load(write(tmp_path, minimal(corpus_sample=200))).corpus_sample == 200


@pytest.mark.parametrize("value, words", [
    (5, "'corpus_sample' must be 0 (the whole corpus) or at least 10 queries"),
    (-1, "'corpus_sample' must be 0 (the whole corpus) or at least 10 queries"),
    ("200", "'corpus_sample' must be int, got '200'"),
    (0.5, "'corpus_sample' must be int, got 0.5"),
    (True, "'corpus_sample' must be int, got True"),
])
def test_corpus_sample_out_of_range_or_wrong_type_names_the_key(tmp_path, value, words):
    assert words in load_error(tmp_path, minimal(corpus_sample=value))


def test_corpus_sample_typo_suggests_the_key(tmp_path):
    assert "unknown key 'params.corpus_smaple' (did you mean 'corpus_sample'?)" in \
        load_error(tmp_path, minimal(corpus_smaple=200))
