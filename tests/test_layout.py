"""The package is laid out by pipeline stage: no import goes back up the pipeline, no cycle.

Stages, in pipeline order (README, "How it works"): a module may import its own stage and
earlier ones, never a later one. Function-level (lazy) imports count like any other.
``pyasp_screen.extras`` (optional features) comes first: any stage may ask it for an extra.
"""

import ast
from pathlib import Path

import networkx as nx

PACKAGE = Path(__file__).resolve().parent.parent / "pyasp_screen"
STAGES = ["extras", "knowledge", "inputs", "findings", "engine", "explain", "outputs", "cohorts", "scale",
          "authoring", "web", "cli"]


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pyasp_screen"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("pyasp_screen"))
    return found


def _stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in STAGES else None


def _graph() -> nx.DiGraph:
    modules = _modules()
    g = nx.DiGraph()
    for name, path in modules.items():
        g.add_node(name)
        for target in _imports(path):
            if target in modules and target != name:
                g.add_edge(name, target)
    return g


def test_every_module_belongs_to_a_stage():
    loose = [m for m in _modules() if m != "pyasp_screen" and _stage(m) is None]
    assert loose == [], f"modules outside the stage packages: {loose}"


def test_no_import_goes_back_up_the_pipeline():
    backward = [(a, b) for a, b in _graph().edges
                if _stage(a) and _stage(b) and STAGES.index(_stage(b)) > STAGES.index(_stage(a))]
    assert backward == [], f"imports of a later stage: {backward}"


def test_no_import_cycle():
    assert list(nx.simple_cycles(_graph())) == []
