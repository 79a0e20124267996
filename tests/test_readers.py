"""Every reader of a user file fails with one line "<file>:<line>: <cause>": readers.py itself, and
the readers of a model folder (tokenizer.json, the sentence-transformers JSON files, QUANTIZE.json,
the ONNX file). Corpus readers: test_corpus.py; params.yaml: test_params.py; the command line:
test_cli.py. Expected lines and offsets are computed from the bytes the test writes."""
import json
import re

import pytest

from stages.lib import readers
from stages.lib.errors import UserError
from stages.lib.inspection import inspect_model
from stages.lib.onnxmodel import load_graph
from stages.lib.tokenizing import load_tokenizer, sentence_transformers_head
from tests import tiny


def _error(call, *args) -> str:
    with pytest.raises(UserError) as info:
        call(*args)
    message = str(info.value)
    assert "\n" not in message and message.strip() == message, message
    return message


# ---------------------------------------------------------------- readers.py

def test_lines_are_streamed_and_a_bad_byte_names_its_line_offset_and_bytes(tmp_path):
    bad_line = 'print("caf\xe9")\n'.encode("latin-1")  # Latin-1 e9, as scraped code often has
    path = tmp_path / "f.txt"
    path.write_bytes(b"one\r\ntwo\n" + bad_line + b"four\n")
    lines = readers.text_lines(path)
    assert next(lines) == (1, "one\r\n") and next(lines) == (2, "two\n")  # read before line 3 is reached
    message = _error(list, lines)
    offset = bad_line.index(b"\xe9")
    assert message == (f"{path}:3: not UTF-8: byte e9 at byte offset {offset} of the line "
                       f"(invalid continuation byte); save the file as UTF-8")
    path.write_bytes(b"ok\n" + "é".encode()[:1])  # a multibyte character cut by the end of the file
    assert _error(readers.read_text, path).startswith(f"{path}:2: not UTF-8: byte c3 at byte offset 0 of the line "
                                                      f"(unexpected end of data)")


def test_byte_order_marks(tmp_path):
    """UTF-8's is accepted and dropped (line numbers unchanged); UTF-16 is named, not decoded as noise."""
    path = tmp_path / "f.json"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"a":\n 1}\n')
    assert list(readers.text_lines(path)) == [(1, '{"a":\n'), (2, " 1}\n")]
    assert readers.read_json(path) == {"a": 1}
    path.write_bytes('{"a": 1}\n'.encode("utf-16"))
    assert _error(readers.read_json, path) == (f"{path}:1: the file is UTF-16 (it starts with the byte-order mark "
                                               f"ff fe), not UTF-8; save it as UTF-8")


def test_json_errors_name_the_line_of_the_file(tmp_path):
    path = tmp_path / "f.json"
    third = '  "b": [1 2]'
    path.write_text('{\n  "a": 1,\n' + third + '\n}\n')
    column = third.index("2]") + 1
    assert _error(readers.read_json, path) == f"{path}:3: not valid JSON (Expecting ',' delimiter at column {column})"
    assert _error(readers.parse_json, '{"a": }\n', "c.jsonl", 41) == \
        "c.jsonl:41: not valid JSON (Expecting value at column 7)"  # a JSONL line: the caller's line number
    path.write_text(" \n")
    assert _error(readers.read_json, path) == f"{path}: file is empty, expected JSON"
    assert _error(readers.read_json, tmp_path / "absent.json") == f"{tmp_path / 'absent.json'}: file not found"
    assert _error(readers.read_json, tmp_path) == f"{tmp_path}: cannot read (Is a directory)"


def test_unpaired_surrogate_escapes_are_refused_and_pairs_decoded(tmp_path):
    assert readers.parse_json('{"t": "\\ud83d\\ude00 \\u00e9"}', "c.jsonl", 1) == {"t": "\U0001F600 é"}
    for text in ('{"t": "a\\udc80b"}', '{"t": ["x", {"k": "\\uD800"}]}', '{"\\ud800": 1}'):
        message = _error(readers.parse_json, text + "\n", "c.jsonl", 7)
        assert message.startswith("c.jsonl:7: a \\u escape encodes '\\ud") and "unpaired surrogate" in message
    assert _error(readers.parse_json, '{\n"t": "\\udfff"}', "f.json").startswith(
        "f.json: a \\u escape encodes '\\udfff'")


# ---------------------------------------------------------------- tokenizer.json

def test_tokenizer_file_errors_name_the_line(tmp_path):
    path = tiny.build_tokenizer(tmp_path)
    good = path.read_bytes()
    expected = load_tokenizer(path, 16).encode(["read file"])
    path.write_bytes(b"\xef\xbb\xbf" + good)  # a BOM, which the tokenizers library alone refuses
    assert load_tokenizer(path, 16).encode(["read file"]) == expected
    lines = good.split(b"\n")
    target = next(i for i, line in enumerate(lines) if b'"sort"' in line)
    path.write_bytes(b"\n".join(lines[:target] + [lines[target].replace(b"sort", b"s\xf6rt")] + lines[target + 1:]))
    offset = lines[target].index(b"sort") + 1
    assert _error(load_tokenizer, path, 16).startswith(
        f"{path}:{target + 1}: not UTF-8: byte f6 at byte offset {offset} ")
    cut = good[: len(good) // 2]
    path.write_bytes(cut)
    message, last_line = _error(load_tokenizer, path, 16), cut.count(b"\n") + 1
    assert re.fullmatch(rf"{re.escape(str(path))}:{last_line}: not a valid tokenizer\.json "
                        rf"\(EOF while parsing .* at column \d+\)", message), message
    path.write_text(json.dumps({**json.loads(good), "model": 3}, indent=1))
    assert _error(load_tokenizer, path, 16).startswith(f"{path}:")  # serde's type error, with its line
    path.write_text("")
    assert _error(load_tokenizer, path, 16) == f"{path}: file is empty, expected a tokenizer.json"


# ---------------------------------------------------------------- sentence-transformers files

def test_sentence_transformers_files_of_the_wrong_shape_name_file_and_key(tmp_path):
    path = tiny.build_tokenizer(tmp_path)
    tiny.write_pooling_config(tmp_path, "cls")
    assert sentence_transformers_head(path)["pooling"] == "cls"
    modules, config = tmp_path / "modules.json", tmp_path / "1_Pooling" / "config.json"
    good_modules = json.loads(modules.read_text())
    for value, cause in (({"0": "x"}, "expected an array of module objects, got an object"),
                         (["Pooling"], "module [0] must be an object, got a string"),
                         ([{"type": 1}], "module [0] 'type' must be a string, got a number"),
                         ([{"type": "sentence_transformers.models.Pooling"}],
                          "module [0] (sentence_transformers.models.Pooling) has no 'path' to its folder")):
        modules.write_text(json.dumps(value))
        assert _error(sentence_transformers_head, path) == f"{modules}: {cause}"
    modules.write_text(json.dumps(good_modules))
    config.write_text("[true]")
    assert _error(sentence_transformers_head, path) == f"{config}: expected an object of pooling settings, got an array"
    second = b' true, "word_embedding_dimension": \x80}'
    config.write_bytes(b'{"pooling_mode_cls_token":\n' + second)
    offset = second.index(b"\x80")
    assert _error(sentence_transformers_head, path).startswith(
        f"{config}:2: not UTF-8: byte 80 at byte offset {offset} ")


# ---------------------------------------------------------------- QUANTIZE.json, the ONNX file

def test_quantize_json_in_a_model_folder(tmp_path):
    tiny.build_model(tmp_path / "m")
    facts = tmp_path / "m" / "QUANTIZE.json"
    facts.write_text(json.dumps({"function": "f", "recipe": {"method": "dynamic"}}))
    assert inspect_model(tmp_path / "m", "m").recipe["recipe"] == {"method": "dynamic"}
    trailing_comma = ' {"method": "dynamic",}}'
    for text, cause in (('["dynamic"]', ": expected a JSON object, got an array"),
                        ('{"recipe": "dynamic"}', ": 'recipe' must be an object, got a string"),
                        ('{"recipe":\n' + trailing_comma,
                         ":2: not valid JSON (Expecting property name enclosed in "
                         f"double quotes at column {trailing_comma.index(',}') + 2})")):
        facts.write_text(text)
        assert _error(inspect_model, tmp_path / "m", "m") == f"{facts}{cause}"


def test_truncated_onnx_files_are_one_line(tmp_path):
    """protobuf parses a few prefixes of a file without complaint (a cut between two top-level
    fields: right after the graph reads as a model without opset_import). Cuts in the first and
    last 64 bytes (where those fields begin and end) and every 50th between must all be refused."""
    good = tiny.build_model(tmp_path / "m").read_bytes()
    cut = tmp_path / "cut.onnx"
    causes = set()
    for n in sorted({*range(1, 64), *range(64, len(good) - 64, 50), *range(len(good) - 64, len(good))}):
        cut.write_bytes(good[:n])
        causes.add(_error(load_graph, cut).removeprefix(f"{cut}: "))
    assert causes == {"not a readable ONNX model, truncated or corrupt (DecodeError)",
                      "not a complete ONNX model, truncated or corrupt (no graph or opset_import)",
                      "not a complete ONNX model, truncated or corrupt (no opset_import)"}
    cut.write_bytes(good)
    assert len(load_graph(cut).graph.node) > 0
