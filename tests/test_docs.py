"""The README and docs/ are all a newcomer has: every link, params key, command and params snippet
they give must work, and the manual must not drift from the code it describes (params.py's schema,
the scripts' options, report.json's keys)."""
from __future__ import annotations

import copy
import dataclasses
import json
import re
import typing
from collections import Counter
from fnmatch import fnmatch
from pathlib import Path

import pytest
import yaml

from stages.lib import params as params_lib

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
DEMO = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))

FENCE = re.compile(r"^```(\w*)\n(.*?)^```[ \t]*$", re.M | re.S)
INLINE = re.compile(r"`([^`]+)`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
FILE_SUFFIXES = {"md", "json", "jsonl", "py", "yaml", "npy", "png", "tsv", "onnx", "txt"}


def _text(page: Path) -> str:
    return page.read_text(encoding="utf-8")


def code_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced block, in order."""
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(text)]


def prose(text: str) -> str:
    """The page without its fenced blocks: what renders as text, tables and inline code."""
    return FENCE.sub("", text)


def spans(text: str) -> list[str]:
    """Inline code spans of the prose, whitespace folded (a span may wrap across lines)."""
    return [" ".join(s.split()) for s in INLINE.findall(prose(text))]


def units(text: str) -> list[str]:
    """What a reader copies: every inline span and every line of every fenced block."""
    return spans(text) + [line for _, body in code_blocks(text) for line in body.splitlines()]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its rendered text (link text kept, code marks dropped) in
    lower case, every character but letters, digits, '_', '-' and space removed, spaces to '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading's anchor; a repeated one gets -1, -2... as on GitHub."""
    seen: Counter = Counter()
    out = set()
    for heading in HEADING.findall(prose(text)):
        s = slug(heading)
        out.add(s if not seen[s] else f"{s}-{seen[s]}")
        seen[s] += 1
    return out


def broken_links(page: Path) -> list[str]:
    bad = []
    for target in LINK.findall(INLINE.sub("", prose(_text(page)))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...: not ours to check
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists() or ROOT not in dest.parents:
            bad.append(f"{target}: no such file")
        elif anchor and (dest.suffix != ".md" or anchor not in anchors(_text(dest))):
            bad.append(f"{target}: no heading with that anchor")
    return bad


# --- params keys ---------------------------------------------------------------------------------

HINTS = typing.get_type_hints(params_lib.Params)


def _record(top: str) -> tuple[type | None, bool]:
    """The dataclass a top-level params key holds, and whether its entries sit under a name."""
    hint = HINTS.get(top)
    if dataclasses.is_dataclass(hint):
        return hint, False
    if typing.get_origin(hint) is dict and dataclasses.is_dataclass(typing.get_args(hint)[1]):
        return typing.get_args(hint)[1], True
    return None, False


def _keys(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if "type" in f.metadata]


SECTIONS = [top for top in params_lib.TOP_KEYS if _record(top)[0]]
KEY_SPAN = re.compile(rf"^((?:{'|'.join(SECTIONS)})(?:\.[\w*${{}}-]+)+)(?:\s*[:=].*)?$")


def key_error(path: str) -> str | None:
    """Why `path` (e.g. benchmark.warmup, models.NAME.pooling, verdict.pass_*) is not a params key."""
    top, *rest = path.split(".")
    cls, named = _record(top)
    if cls is None:
        if top in params_lib.TOP_KEYS and not rest:  # a top-level value: corpus, reference, corpus_sample
            return None
        return f"{path}: '{top}' is not a params section"
    if named:
        rest = rest[1:]  # the model name: any name (NAME, M, int8-pt, ${key})
    if not rest:
        return None
    if len(rest) > 1 or not any(fnmatch(key, rest[0]) for key in _keys(cls)):
        return f"{path}: no such key (allowed under {top}: {', '.join(_keys(cls))})"
    return None


def named_keys(text: str) -> list[str]:
    """params key paths a page names in backticks, file names like report.md left out."""
    found = []
    for span in spans(text):
        m = KEY_SPAN.match(span)
        if m and m.group(1).rsplit(".", 1)[1] not in FILE_SUFFIXES:
            found.append(m.group(1))
    return found


def _merged(base: dict, extra: dict) -> dict:
    """extra's mappings merged into base's key by key (a snippet adds or overrides entries)."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _with(path: str, value) -> dict:
    """The demo params with one key set, as `dvc exp run -S path=value` would set it."""
    raw = copy.deepcopy(DEMO)
    *parents, last = path.split(".")
    node = raw
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return raw


# --- commands ------------------------------------------------------------------------------------

SCRIPT = re.compile(r"python (?:-m (stages(?:\.[a-z_]+)+)|((?:benchmarks|data)/\w+\.py))([^&|;#]*)")
OVERRIDE = re.compile(r"-S\s+([\w.${}-]+)=(\S+)")
CLI = ROOT / "stages" / "lib" / "cli.py"  # the options every stage takes (--params)


def command_errors(unit: str) -> list[str]:
    """A named script that does not exist, or an option it does not declare."""
    bad = []
    for module, script, rest in SCRIPT.findall(unit):
        path = ROOT / (module.replace(".", "/") + ".py" if module else script)
        if path.stem.isupper():  # a placeholder: python data/X.py
            continue
        if not path.is_file():
            bad.append(f"{unit}: {path.relative_to(ROOT)} does not exist")
            continue
        declared = path.read_text(encoding="utf-8") + (CLI.read_text(encoding="utf-8") if module else "")
        bad += [f"{unit}: {path.name} has no option {opt}" for opt in re.findall(r"(?<![\w-])--[\w-]+", rest)
                if f'"{opt}"' not in declared]
    return bad


# --- the tests -----------------------------------------------------------------------------------

def test_the_helpers_follow_githubs_anchor_rules_and_the_schema():
    # anchors worked out by hand from GitHub's rules (github-slugger: lower case, punctuation dropped)
    assert slug("Where the damage comes from (`diagnose`)") == "where-the-damage-comes-from-diagnose"
    assert slug("OpenVINO's default precision is not the file's") == "openvinos-default-precision-is-not-the-files"
    assert slug("quantize.NAME: a candidate made by a recipe") == "quantizename-a-candidate-made-by-a-recipe"
    assert slug("Beyond one machine: the Ray engine") == "beyond-one-machine-the-ray-engine"
    assert anchors("# Notes\n\n## Notes\n\n```\n# not a heading\n```\n") == {"notes", "notes-1"}
    assert key_error("benchmark.speedup_blocks") is None and key_error("models.NAME.pooling") is None
    assert key_error("verdict.pass_*") is None and key_error("quantize.int8-pt") is None
    assert key_error("benchmark.speedup_block") and key_error("models.NAME.pool") and key_error("embed.a.b")
    assert key_error("corpus_sample") is None and key_error("corpus_smaple") and key_error("corpus_sample.n")
    assert named_keys("`embed.json`, `report.md`, `compare.confidence: 95`") == ["compare.confidence"]
    assert command_errors("python benchmarks/scale.py [--sizes 1000 10000]") == []
    assert command_errors("python benchmarks/scale.py --size 1") and command_errors("python -m stages.nope")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    assert not broken_links(page)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_params_key_named_exists(page):
    text = _text(page)
    bad = [e for e in map(key_error, named_keys(text)) if e]
    for unit in units(text):
        for path, value in OVERRIDE.findall(unit):  # dvc exp run -S key=value: the key, and the value valid
            bad += [e for e in [key_error(path)] if e]
            params_lib.parse(_with(path, yaml.safe_load(value)))
    assert not bad


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_command_named_exists(page):
    text = _text(page)
    assert not [e for unit in units(text) for e in command_errors(unit)]
    for _, body in code_blocks(text):
        for req in re.findall(r"pip install[^&\n]*?-r (\S+)", body):  # pip install -r FILE
            assert (ROOT / req).is_file(), req


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_code_blocks_parse(page):
    """YAML blocks are params snippets: merged into the demo params they validate; Python compiles."""
    for lang, body in code_blocks(_text(page)):
        if lang == "yaml":
            snippet = yaml.safe_load(body)
            assert set(snippet) <= set(params_lib.TOP_KEYS), body
            params_lib.parse(_merged(DEMO, snippet))
        elif lang == "python":
            compile(body, str(page), "exec")


def test_readme_starts_with_the_two_commands_ci_runs():
    text = _text(README)
    first, second = code_blocks(text)[:2]
    assert text.index(first[1]) < text.index("\n## ")  # before any section
    assert "dvc repro" in first[1] and "python -m pytest" in second[1]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert second[1].strip() in ci
    assert len(text.splitlines()) <= 250, "README.md is the guide; the manual belongs in docs/"


def test_readme_own_model_steps_fit_together():
    """The README says to replace these sections with its snippet: the result validates, the
    reference is set up as a decoder embedder, and it is the folder the `dvc add` step tracks."""
    text = _text(README)
    snippet = next(yaml.safe_load(b) for lang, b in code_blocks(text) if lang == "yaml" and "reference:" in b)
    params = params_lib.parse({**DEMO, **snippet})
    ref = params.model(params.reference)
    assert set(params.models) == set(snippet["models"])
    assert (ref.pooling, ref.normalize, ref.padding_side) == ("last", True, "left") and ref.query_prompt
    added = re.search(r"^dvc add (\S+)", text, re.M).group(1)
    assert ref.path == added and all(q.source == added for q in params.quantize.values())


def test_params_page_lists_every_key_with_the_schema_default():
    text = _text(DOCS / "params.md")
    rows = {}
    for line in prose(text).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and (m := re.fullmatch(r"`([^`]+)`", cells[0])):
            rows[m.group(1)] = cells[1]
    missing = [top for top in params_lib.TOP_KEYS if top not in rows and f"`{top}`" not in text]
    checked = 0
    for top in SECTIONS:
        cls, named = _record(top)
        for key in _keys(cls):
            path = f"{top}.NAME.{key}" if named else f"{top}.{key}"
            if path not in rows:
                missing.append(path)
            elif m := re.fullmatch(r"`([^`]*)`", rows[path]):
                assert yaml.safe_load(m.group(1)) == getattr(cls(), key), path
                checked += 1
    assert not missing, f"docs/params.md lacks {missing}"
    assert checked >= 50  # the literal defaults were compared, not skipped


def test_report_schema_names_every_key_report_json_has():
    report = json.loads((ROOT / "results" / "report.json").read_text(encoding="utf-8"))
    schema = next(body for _, body in code_blocks(_text(DOCS / "report.md")) if '"schema_version"' in body)
    model = next(m for m in report["models"].values() if "comparison" in m)
    keys = set(report) | set(model) | set(model["comparison"]) | set(report["machines"])
    assert not [k for k in sorted(keys) if not re.search(rf"\b{re.escape(k)}\b", schema)]


def test_docs_index_links_every_page():
    index = _text(DOCS / "README.md")
    linked = {t.partition("#")[0] for t in LINK.findall(index)}
    assert {p.name for p in PAGES if p.parent == DOCS and p.name != "README.md"} <= linked
