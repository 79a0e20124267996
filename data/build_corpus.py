"""Build the labelled query->code corpus used to compare embedding models.

The embedding comparison needs a few hundred realistic (natural-language query,
code) pairs with a known right answer, in more than one programming language,
and it must be reproducible without network access.  Documented functions in
sources that ship with the toolchain give exactly that: the first sentence of a
function's doc comment is the query and the function body (with the doc
comment removed, so retrieval is not a trivial string match) is the code.
Sources: the CPython standard library (parsed with ``ast``) and the JavaScript
of the global npm package that comes with Node.js, including its bundled
node_modules (JSDoc ``/** ... */`` comments).  The traversal is sorted, caps
are fixed, duplicates keep the first occurrence in that order, and subsampling
uses ``random.Random(0)``, so two runs on the same machine produce
byte-identical files; the source versions are recorded in
``<out stem>.meta.json`` next to the corpus.

Usage (from the repo root):  python data/build_corpus.py [--out data/corpus.jsonl]
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
from pathlib import Path

SEED = 0
PY_CAP = 500  # Python pairs kept (seeded subsample)
JS_CAP = 400  # JavaScript pairs kept (seeded subsample if more)
JS_MIN = 150  # fewer than this from npm is treated as a broken source
PER_FILE_CAP = {"python": 6, "javascript": 10}  # first N candidates of a file, in file order
QUERY_WORDS = (4, 30)
CODE_LINES = (3, 60)
CODE_CHARS = 2000

SKIP_DIRS = {
    "test", "tests", "__tests__", "idle_test", "testing", "site-packages",
    "__pycache__", "docs", "doc", "example", "examples", "bench", "benchmark",
    "benchmarks", "fixtures",
}
# Queries starting with one of these are placeholders, not descriptions.
BAD_QUERY_START = re.compile(
    r"^(todo|fixme|xxx|hack|internal|private|copyright|license|licence|"
    r"deprecated|obsolete|undocumented|not implemented|do not use|don't use|"
    r"see |same as|alias |an alias|override|overrides|overridden|"
    r"this is deprecated|this method is deprecated|@|\(c\))",
    re.IGNORECASE,
)
SIGNATURE_LIKE = re.compile(r"^[\w.$]+\s*\(.*\)\s*(->|$|:)")
# Applications/demos shipped with the stdlib rather than library code.
SKIP_PY_PACKAGES = {"idlelib", "turtledemo", "pydoc_data", "test"}
ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "vs.", "cf.", "approx.", "resp.")


def die(msg: str) -> None:
    print(f"build_corpus: error: {msg}", file=sys.stderr)
    raise SystemExit(1)


# --------------------------------------------------------------------------- text

def first_sentence(doc: str) -> str:
    """Return the first sentence of the first paragraph of ``doc``, one line."""
    para = []
    for line in doc.strip().splitlines():
        if not line.strip():
            break
        para.append(line.strip())
    text = " ".join(para)
    masked = text
    for abbr in ABBREVIATIONS:
        masked = masked.replace(abbr, abbr.replace(".", "\0"))
    m = re.search(r"[.!?](\s|$)", masked)
    if m:
        text = text[: m.start() + 1]
    return re.sub(r"\s+", " ", text).strip()


def good_query(q: str) -> bool:
    words = q.split()
    if not (QUERY_WORDS[0] <= len(words) <= QUERY_WORDS[1]):
        return False
    if BAD_QUERY_START.match(q) or SIGNATURE_LIKE.match(q):
        return False
    if q.endswith((":", ",", ";")) or ">>>" in q or "copyright" in q.lower():
        return False
    return sum(c.isalpha() for c in q) >= 0.6 * len(q.replace(" ", ""))


def good_code(code: str) -> bool:
    n = code.count("\n") + 1
    return CODE_LINES[0] <= n <= CODE_LINES[1] and len(code) <= CODE_CHARS and code.strip() != ""


def norm_code(code: str) -> str:
    return re.sub(r"\s+", " ", code).strip()


def skip_path(rel: Path) -> bool:
    parts = rel.parts
    if any(p in SKIP_DIRS for p in parts[:-1]):
        return True
    name = parts[-1].lower()
    return (
        name.startswith("test") or name == "conftest.py"
        or name.endswith(("_test.py", ".test.js", ".spec.js", ".test.mjs", ".test.cjs", ".min.js", ".min.mjs"))
    )


# ------------------------------------------------------------------------- Python

def python_source() -> tuple[Path, dict]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    if not (stdlib / "json" / "encoder.py").is_file():
        die(f"Python standard library sources not found at {stdlib} (need the .py files)")
    info = {
        "language": "python",
        "source": "CPython standard library (.py files of sysconfig 'stdlib'), functions and "
                  "methods of top-level classes with a docstring",
        "python_version": sys.version.split()[0],
        "implementation": sys.implementation.name,
    }
    return stdlib, info


def python_candidates(stdlib: Path) -> list[dict]:
    out = []
    files = sorted(p for p in stdlib.rglob("*.py"))
    for path in files:
        rel = path.relative_to(stdlib)
        if skip_path(rel):
            continue
        modparts = list(rel.with_suffix("").parts)
        if modparts[-1] == "__init__":
            modparts.pop()
        if not modparts or modparts[0] in SKIP_PY_PACKAGES or any(
            p.startswith("_") for p in modparts
        ) or any(
            not p.isidentifier() for p in modparts
        ):
            continue
        module = ".".join(modparts)
        try:
            src = path.read_text(encoding="utf-8")
            tree = ast.parse(src)
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        lines = src.splitlines()
        taken = 0
        for qual, node in iter_py_functions(tree):
            item = python_item(module, qual, node, lines)
            if item is None:
                continue
            out.append(item)
            taken += 1
            if taken >= PER_FILE_CAP["python"]:
                break
    return out


def iter_py_functions(tree: ast.Module):
    funcs = (ast.FunctionDef, ast.AsyncFunctionDef)
    for node in tree.body:
        if isinstance(node, funcs) and not node.name.startswith("_"):
            yield node.name, node
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            for sub in node.body:
                if isinstance(sub, funcs) and not sub.name.startswith("_"):
                    yield f"{node.name}.{sub.name}", sub


def python_item(module: str, qual: str, node, lines: list[str]) -> dict | None:
    doc = ast.get_docstring(node, clean=True)
    if not doc:
        return None
    ds = node.body[0]
    if ds.lineno == node.lineno or len(node.body) < 2:
        return None  # one-line def with docstring, or docstring-only body
    start = min([node.lineno] + [d.lineno for d in node.decorator_list])
    end = node.end_lineno
    keep = [
        lines[i - 1] for i in range(start, end + 1) if not (ds.lineno <= i <= ds.end_lineno)
    ]
    code = textwrap.dedent("\n".join(keep)).strip("\n")
    code = "\n".join(line.rstrip() for line in code.splitlines())
    query = first_sentence(doc)
    if not good_query(query) or not good_code(code):
        return None
    return {"id": f"py:{module}:{qual}", "lang": "python", "query": query, "code": code}


# --------------------------------------------------------------------- JavaScript

def npm_source() -> tuple[Path, dict]:
    node = shutil.which("node")
    candidates = []
    if node:
        candidates.append(Path(os.path.realpath(node)).parent.parent / "lib" / "node_modules" / "npm")
    npm = shutil.which("npm")
    if npm:
        try:
            root = subprocess.run([npm, "root", "-g"], capture_output=True, text=True,
                                  timeout=60, check=True).stdout.strip()
            candidates.append(Path(root) / "npm")
        except (OSError, subprocess.SubprocessError):
            pass
    npm_dir = next((c for c in candidates if (c / "package.json").is_file()), None)
    if npm_dir is None:
        die("npm package sources not found (need Node.js with its bundled npm: "
            "<node prefix>/lib/node_modules/npm or `npm root -g`/npm)")
    npm_version = json.loads((npm_dir / "package.json").read_text(encoding="utf-8"))["version"]
    node_version = None
    if node:
        try:
            node_version = subprocess.run([node, "--version"], capture_output=True, text=True,
                                          timeout=60, check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    info = {
        "language": "javascript",
        "source": "JavaScript (.js/.cjs/.mjs) of the global npm package and its bundled "
                  "node_modules, functions/methods preceded by a JSDoc /** */ comment",
        "npm_version": npm_version,
        "node_version": node_version,
    }
    return npm_dir, info


IDENT = r"[A-Za-z_$][\w$]*"
JS_DECL = [
    # function name(   / export default async function* name(
    re.compile(rf"(?:export\s+)?(?:default\s+)?(?:async\s+)?function\s*\*?\s*(?P<name>{IDENT})\s*\("),
    # const name = async function (  | const name = (a) => { | const name = async x => {
    re.compile(rf"(?:export\s+)?(?:const|let|var)\s+(?P<name>{IDENT})\s*=\s*(?:async\s+)?"
               rf"(?:function\b\s*\*?\s*(?:{IDENT})?\s*\(|\(|{IDENT}\s*=>\s*\{{)"),
    # exports.name = function (  | module.exports.name = async (
    re.compile(rf"(?:module\.)?exports\.(?P<name>{IDENT})\s*=\s*(?:async\s+)?"
               rf"(?:function\b\s*\*?\s*(?:{IDENT})?\s*\(|\()"),
    # Foo.prototype.name = function (  | this.name = async (
    re.compile(rf"(?:{IDENT}\.prototype|this)\.(?P<name>{IDENT})\s*=\s*(?:async\s+)?"
               rf"(?:function\b\s*\*?\s*(?:{IDENT})?\s*\(|\()"),
    # name: function (  | name: async (a) => {
    re.compile(rf"(?P<name>{IDENT})\s*:\s*(?:async\s+)?(?:function\b\s*\*?\s*(?:{IDENT})?\s*\(|\()"),
    # class method:  static async get name (
    re.compile(rf"(?:static\s+)?(?:async\s+)?(?:(?:get|set)\s+)?\*?\s*(?P<name>#?{IDENT})\s*\("),
]
JS_KEYWORDS = {
    "if", "for", "while", "switch", "catch", "return", "function", "with", "do", "else",
    "typeof", "new", "await", "yield", "super", "import", "require", "throw", "delete",
}
REGEX_PREV = set("(,=:[!&|?{};+-*%<>~^")


def js_match_block(src: str, i: int) -> int:
    """Index just past the ``}`` matching the ``{`` or ``(`` at ``src[i]`` (-1 if none).

    A small lexer that skips strings, template literals (with ``${}`` nesting),
    comments and regex literals (heuristic on the previous significant char).
    """
    stack = []
    n = len(src)
    prev = "("  # previous significant char, for regex detection
    pairs = {"(": ")", "{": "}", "[": "]"}
    while i < n:
        c = src[i]
        if c in " \t\r\n":
            i += 1
            continue
        if c == "/" and src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
            continue
        if c == "/" and src.startswith("/*", i):
            j = src.find("*/", i + 2)
            if j < 0:
                return -1
            i = j + 2
            continue
        if c in "'\"":
            i += 1
            while i < n and src[i] != c:
                if src[i] == "\\":
                    i += 1
                elif src[i] == "\n":
                    return -1
                i += 1
            i += 1
            prev = "a"
            continue
        if c == "`":
            stack.append("`")
            i += 1
            i = js_template(src, i, stack)
            if i < 0:
                return -1
            prev = "a"
            if not stack:
                return i
            continue
        if c == "/" and (prev in REGEX_PREV or re.search(r"\b(return|typeof|case|in|of)\s*$",
                                                            src[max(0, i - 8):i])):
            i += 1
            in_class = False
            while i < n:
                ch = src[i]
                if ch == "\\":
                    i += 2
                    continue
                if ch == "\n":
                    return -1
                if ch == "[":
                    in_class = True
                elif ch == "]":
                    in_class = False
                elif ch == "/" and not in_class:
                    break
                i += 1
            i += 1
            while i < n and (src[i].isalnum()):
                i += 1
            prev = "a"
            continue
        if c in pairs:
            stack.append(pairs[c])
        elif c in ")}]":
            if not stack:
                return -1
            top = stack.pop()
            if top != c:
                return -1
            if top == "}" and stack and stack[-1] == "${":
                stack.pop()
                i = js_template(src, i + 1, stack)
                if i < 0:
                    return -1
                prev = "a"
                if not stack:
                    return i
                continue
            if not stack:
                return i + 1
        prev = c if not (c.isalnum() or c in "_$") else "a"
        i += 1
    return -1


def js_template(src: str, i: int, stack: list) -> int:
    """Scan template-literal text from ``i``; stack top is '`'. Returns new index."""
    n = len(src)
    while i < n:
        ch = src[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "`":
            stack.pop()
            return i + 1
        if ch == "$" and src.startswith("${", i):
            stack.append("${")
            stack.append("}")
            return i + 2
        i += 1
    return -1


def jsdoc_text(raw: str) -> str:
    lines = []
    for line in raw.splitlines():
        line = re.sub(r"^\s*\*? ?", "", line)
        if line.lstrip().startswith("@"):
            break
        lines.append(line)
    text = "\n".join(lines)
    text = re.sub(r"\{@(?:link|linkcode|linkplain|code)\s+([^}|]*?)(?:\|[^}]*)?\}", r"\1", text)
    text = re.sub(r"</?[a-zA-Z][^>]*>", "", text)
    return text.strip()


def js_candidates(npm_dir: Path) -> list[dict]:
    out = []
    files = sorted(
        p for p in npm_dir.rglob("*") if p.suffix in (".js", ".cjs", ".mjs") and p.is_file()
    )
    for path in files:
        rel = path.relative_to(npm_dir)
        if skip_path(rel):
            continue
        try:
            src = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        if "/**" not in src or any(len(line) > 400 for line in src.splitlines()):
            continue  # no JSDoc, or minified/bundled
        taken = 0
        for m in re.finditer(r"^[ \t]*/\*\*(?![*/])(.*?)\*/", src, re.DOTALL | re.MULTILINE):
            item = js_item(src, m, rel.as_posix())
            if item is None:
                continue
            out.append(item)
            taken += 1
            if taken >= PER_FILE_CAP["javascript"]:
                break
    return out


def js_item(src: str, m: re.Match, rel: str) -> dict | None:
    j = m.end()
    # declaration must start on the line right after the comment
    ws = re.match(r"[ \t]*\r?\n([ \t]*)", src[j:])
    if not ws:
        return None
    decl_start = j + ws.end()
    line_start = j + ws.start(1)
    for pat in JS_DECL:
        d = pat.match(src, decl_start)
        if d:
            break
    else:
        return None
    name = d.group("name")
    if name in JS_KEYWORDS or name.startswith(("_", "#")):
        return None
    # find the parameter list: last '(' in the match, or none for `x => {`
    k = src.rfind("(", decl_start, d.end())
    if k >= 0:
        after = js_match_block(src, k)
        if after < 0:
            return None
        rest = re.match(r"\s*(?:=>\s*)?\{", src[after:])
        if not rest:
            return None
        brace = after + rest.end() - 1
    else:
        brace = d.end() - 1
    end = js_match_block(src, brace)
    if end < 0:
        return None
    code = textwrap.dedent(src[line_start:end]).strip("\n")
    code = "\n".join(line.rstrip() for line in code.splitlines())
    query = first_sentence(jsdoc_text(m.group(1)))
    if not good_query(query) or not good_code(code):
        return None
    line_no = src.count("\n", 0, decl_start) + 1
    return {"id": f"js:{rel}:{name}:{line_no}", "lang": "javascript", "query": query,
            "code": code}


# -------------------------------------------------------------------------- main

def dedupe(items: list[dict], seen_q: set, seen_c: set) -> list[dict]:
    """Drop duplicate ids, queries (case-insensitive) and code (whitespace-normalised)."""
    kept, seen_id = [], set()
    for it in items:
        q = it["query"].lower()
        c = norm_code(it["code"])
        if it["id"] in seen_id or q in seen_q or c in seen_c:
            continue
        seen_id.add(it["id"])
        seen_q.add(q)
        seen_c.add(c)
        kept.append(it)
    return kept


def subsample(items: list[dict], cap: int) -> list[dict]:
    if len(items) <= cap:
        return items
    return random.Random(SEED).sample(items, cap)


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="data/corpus.jsonl", help="output JSONL path")
    args = ap.parse_args(argv)
    out = Path(args.out)
    meta_path = out.with_name(out.name.split(".")[0] + ".meta.json")

    stdlib, py_info = python_source()
    npm_dir, js_info = npm_source()

    seen_q: set = set()
    seen_c: set = set()
    py_all = dedupe(python_candidates(stdlib), seen_q, seen_c)
    py = subsample(py_all, PY_CAP)
    js_all = dedupe(js_candidates(npm_dir), seen_q, seen_c)
    if len(js_all) < JS_MIN:
        die(f"npm package at {npm_dir} gave only {len(js_all)} documented JavaScript "
            f"functions (need >= {JS_MIN})")
    js = subsample(js_all, JS_CAP)
    py_info["candidates_after_filters"] = len(py_all)
    js_info["candidates_after_filters"] = len(js_all)
    rows = sorted(py + js, key=lambda r: r["id"])

    for r in rows:
        assert list(r) == ["id", "lang", "query", "code"] and all(r.values()), r
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)

    counts = {}
    for r in rows:
        counts[r["lang"]] = counts.get(r["lang"], 0) + 1
    meta = {
        "script": "data/build_corpus.py",
        "output": out.as_posix(),
        "total": len(rows),
        "counts": counts,
        "seed": SEED,
        "caps": {"python": PY_CAP, "javascript": JS_CAP, "per_file": PER_FILE_CAP},
        "filters": {"query_words": list(QUERY_WORDS), "code_lines": list(CODE_LINES),
                    "code_max_chars": CODE_CHARS},
        "sources": [py_info, js_info],
    }
    write_atomic(out, text)
    write_atomic(meta_path, json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {out} ({len(rows)} pairs: {counts}) and {meta_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
