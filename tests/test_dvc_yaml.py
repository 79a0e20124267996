"""dvc.yaml is the map: each stage must declare every module it runs and the machine facts it reads,
or editing that module (or moving to another machine) would silently rerun nothing."""
import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# The machine stage has a pipeline file of its own (machine/dvc.yaml, wdir: the repository root):
# its run on every repro then rewrites only its small lock file
MACHINE_FILE = yaml.safe_load((ROOT / "machine" / "dvc.yaml").read_text())
MAIN_STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
STAGES = {**MAIN_STAGES, **MACHINE_FILE["stages"]}


def _imports(path: Path) -> set[Path]:
    """stages.* modules one file imports: absolute (`stages.lib.x`, `from stages.lib import x`) or
    relative (`.x`, `..x`, `from . import x`), as module files (a package's own __init__ holds no code)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = path.parents[node.level - 1]
        elif node.module and node.module.split(".")[0] == "stages":
            base = ROOT
        else:
            continue
        module = base.joinpath(*node.module.split(".")) if node.module else base
        found.add(module.with_suffix(".py"))
        found |= {module / f"{a.name}.py" for a in node.names}  # from PACKAGE import module
    return {p for p in found if p.is_file()}


def closure(module_file: Path) -> set[str]:
    seen, todo = set(), [module_file]
    while todo:
        p = todo.pop()
        if p not in seen:
            seen.add(p)
            todo.extend(_imports(p))
    return {str(p.relative_to(ROOT)) for p in seen}


def _body(name: str) -> dict:
    stage = STAGES[name]
    return stage.get("do", stage)


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_declares_exactly_the_modules_it_imports(name):
    body = _body(name)
    module = re.match(r"python -m (stages\.\w+)", body["cmd"]).group(1)
    needed = closure(ROOT / (module.replace(".", "/") + ".py"))
    assert "stages/lib/params.py" in needed or name == "machine"  # the walk follows imports
    missing = needed - set(body["deps"])
    assert not missing, f"{name}: deps lack {sorted(missing)}"
    stale = {d for d in body["deps"] if d.startswith("stages/") and d.endswith(".py")} - needed
    assert not stale, f"{name}: deps name code it no longer runs (a needless rerun): {sorted(stale)}"


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_depends_on_the_machine_facts_it_reads(name):
    body = _body(name)
    if name == "machine":
        return  # it writes them
    module = re.match(r"python -m (stages\.\w+)", body["cmd"]).group(1)
    source = "".join((ROOT / p).read_text() for p in closure(ROOT / (module.replace(".", "/") + ".py")))
    for kind in ("embed", "timing"):
        reads = f'current("{kind}"' in source or f'.machine("{kind}")' in source
        assert reads == (f"results/machine/{kind}.json" in body["deps"]), (name, kind)


def test_the_machine_stage_runs_every_time_in_its_own_pipeline_file_and_its_facts_are_in_git():
    assert list(MACHINE_FILE) == ["stages"] and list(MACHINE_FILE["stages"]) == ["machine"]
    assert "machine" not in MAIN_STAGES
    machine = STAGES["machine"]
    assert machine["always_changed"] is True
    assert machine["wdir"] == ".."  # its paths (and params.yaml) are the repository root's, like every stage's
    outs = {list(o)[0]: o[list(o)[0]] for o in machine["outs"]}
    assert outs == {"results/machine/embed.json": {"cache": False}, "results/machine/timing.json": {"cache": False}}
