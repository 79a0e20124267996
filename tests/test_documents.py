"""The stage documents have one shape, written down: docs/schemas/ is generated from the types in
stages/lib/documents/, every real document (the demo's and the tiny pipeline's stage outputs, the
golden reports, and every committed result this code wrote) validates against it, and reads back
into its type with the same bytes; a document of another shape is one line naming file and key."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

import jsonschema
import pytest
import yaml

from stages.lib.documents import schemas
from stages.lib.documents.compare import Comparison
from stages.lib.documents.record import Record, flat, read, read_document, read_jsonl
from stages.lib.errors import UserError
from stages.lib.outputs import write_json, write_jsonl

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
STAGE_OUTPUTS = [FIXTURES / "demo-results", FIXTURES / "tiny-results", FIXTURES / "golden" / "demo",
                 FIXTURES / "golden" / "tiny"]


def documents(root: Path) -> list[tuple[str, Path]]:
    """(schema name, file) for every stage document under a results folder."""
    return [(name, path) for name, (_, _, pattern) in schemas.DOCUMENTS.items() for path in sorted(root.glob(pattern))]


def check(name: str, path: Path, tmp_path: Path) -> None:
    """Valid against its schema, and read into its type and written back, the same bytes; a JSONL
    file line by line (its schema is one line's)."""
    tp, schema = schemas.DOCUMENTS[name][0], schemas.schema(name)
    if path.suffix == ".jsonl":
        lines = path.read_text(encoding="utf-8").splitlines()
        assert lines, path
        for line in lines:
            jsonschema.validate(json.loads(line), schema)
        typed = list(read_jsonl(path, tp))
        assert write_jsonl(tmp_path / "again.jsonl", typed).read_bytes() == path.read_bytes(), path
        return
    data = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.validate(data, schema)
    typed = read(tp, data)
    assert write_json(tmp_path / "again.json", typed).read_bytes() == path.read_bytes(), path


def test_the_schemas_in_docs_are_the_types():
    for name in schemas.DOCUMENTS:
        assert (schemas.FOLDER / f"{name}.schema.json").read_text(encoding="utf-8") == schemas.schema_text(name), \
            f"docs/schemas/{name}.schema.json is stale: python -m stages.lib.documents.schemas"
    assert {p.name for p in schemas.FOLDER.iterdir()} == {f"{n}.schema.json" for n in schemas.DOCUMENTS}


@pytest.mark.parametrize("root", STAGE_OUTPUTS, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_real_stage_outputs_validate_and_keep_their_bytes(root, tmp_path):
    found = documents(root)
    assert found  # the fixture holds documents
    for name, path in found:
        check(name, path, tmp_path)


def _stage_is_current(stage: dict) -> bool:
    """Did this checkout's code write the stage's outputs (every stages/ module it ran unchanged)?"""
    code = [d for d in stage.get("deps", []) if d["path"].startswith("stages/")]
    return bool(code) and all((ROOT / d["path"]).is_file()
                              and hashlib.md5((ROOT / d["path"]).read_bytes()).hexdigest() == d["md5"]
                              for d in code)


def test_committed_results_written_by_this_code_validate(tmp_path):
    """Every committed document whose stage ran this checkout's code (dvc.lock records the code's
    hashes). Results an older checkout wrote are not this code's to vouch for: a refactor's branch
    lists them, and `dvc repro` makes them current."""
    lock = yaml.safe_load((ROOT / "dvc.lock").read_text(encoding="utf-8"))["stages"]
    owner = {out["path"]: name for name, stage in lock.items() for out in stage.get("outs", [])}
    current = {name for name, stage in lock.items() if _stage_is_current(stage)}
    checked, stale = 0, []
    for name, path in documents(ROOT / "results"):
        rel = path.relative_to(ROOT).as_posix()
        stage = next((s for out, s in owner.items() if rel == out or rel.startswith(out + "/")
                      or fnmatch(rel, out)), None)
        if stage in current:
            check(name, path, tmp_path)
            checked += 1
        else:
            stale.append(rel)
    if stale and not checked:
        pytest.skip(f"results/ were written by an older checkout ({len(stale)} documents, e.g. {stale[0]}): "
                    "dvc repro makes them current, and this test then validates them")


def test_a_document_of_another_shape_is_one_line_naming_file_and_key(tmp_path):
    good = json.loads((FIXTURES / "tiny-results" / "compare" / "cand-a.json").read_text())
    for change, where in ((lambda d: d["machines"]["embed"].pop("description_code"), "machines.embed.description_code"),
                          (lambda d: d["verdict"].update(status="MAYBE"), "verdict.status"),
                          (lambda d: d["agreement"]["similarity"].update(pearson="high"), "similarity.pearson"),
                          (lambda d: d.update(extra=1), "extra")):
        doc = json.loads(json.dumps(good))
        change(doc)
        path = write_json(tmp_path / "compare.json", doc)
        with pytest.raises(UserError) as info:
            read_document(path, Comparison)
        message = str(info.value)
        assert message.startswith(f"{path}: ") and where in message and "\n" not in message, message


@dataclass(kw_only=True)
class Row(Record):
    """A JSONL line's type for the test: nullable numbers, a flat "@" key, a non-ASCII text."""

    query: int
    rank: int | None
    hits: dict[str, bool] = flat(r"hit@\d+")
    text: str


def test_a_jsonl_document_streams_in_and_out_and_a_bad_line_is_named(tmp_path):
    rows = [{"query": i, "rank": None if i == 0 else i * 7, "hit@10": i == 1, "text": "ünïcode | text"}
            for i in range(3)]
    path = write_jsonl(tmp_path / "cases" / "m.jsonl", (r for r in rows))  # a generator: streamed
    assert path.read_text(encoding="utf-8").splitlines() == [json.dumps(r, ensure_ascii=False, separators=(",", ":"))
                                                             for r in rows]
    typed = list(read_jsonl(path, Row))
    assert [r.hits for r in typed] == [{"hit@10": i == 1} for i in range(3)]
    assert [r.to_dict() for r in typed] == rows
    bad = path.read_text(encoding="utf-8").splitlines()
    bad[1] = bad[1].replace('"rank":7', '"rank":"7"')
    (tmp_path / "bad.jsonl").write_text("\n".join(bad) + "\n", encoding="utf-8")
    with pytest.raises(UserError) as info:
        list(read_jsonl(tmp_path / "bad.jsonl", Row))
    assert str(info.value).startswith(f"{tmp_path / 'bad.jsonl'}:2: rank: expected an integer")
    with pytest.raises(UserError, match="file not found"):
        list(read_jsonl(tmp_path / "none.jsonl", Row))

    def failing():
        yield rows[0]
        raise RuntimeError("killed half way")
    with pytest.raises(RuntimeError):
        write_jsonl(path, failing())
    assert [p.name for p in path.parent.iterdir()] == ["m.jsonl"]  # no temp file left
    assert [r.query for r in read_jsonl(path, Row)] == [0, 1, 2]  # and the old file whole
