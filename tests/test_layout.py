"""The shape of the package itself: no import circle, small files, no capability probes outside the contract.

The import graph is read from the source (every import statement, also those inside functions, since a
lazy import hides a circle rather than removing it).
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "condgan"
MAX_LINES = 400
# commands that must ask the model through its contract (models/base.py), never probe it
COMMANDS = ["export.py", "translate.py", "evaluate.py", "sample.py", "train.py", "trainer.py", "step.py"]


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        mods[".".join(parts)] = path
    return mods


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The condgan modules `name` imports (a name imported from a package counts as its submodule if any)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "condgan")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "condgan":
                continue
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in known]
            found.update(subs if subs else [target])
    return {m for m in found if m in known and m != name}


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: _imports(name, path, set(mods)) for name, path in mods.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_planted_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle_between_condgan_modules():
    graph = _graph()
    assert "condgan.models" in graph["condgan.train"]  # the graph sees real edges
    assert _cycles(graph) == []


def test_the_data_layer_imports_no_model():
    graph = _graph()
    for name, deps in graph.items():
        if name.startswith("condgan.data"):
            assert not [d for d in deps if d.startswith("condgan.models")], name


def test_inference_commands_do_not_import_the_training_loop():
    graph = _graph()
    for name in ("condgan.sample", "condgan.translate", "condgan.evaluate", "condgan.export"):
        assert "condgan.trainer" not in graph[name] and "condgan.train" not in graph[name], name


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_file_over_the_limit(path):
    assert len(path.read_text().splitlines()) <= MAX_LINES


@pytest.mark.parametrize("name", COMMANDS)
def test_commands_ask_the_model_instead_of_probing_it(name):
    text = (PACKAGE / name).read_text()
    assert not re.findall(r"\b(hasattr|getattr)\(", text)


def test_nothing_installed_imports_pytest():
    for path in PACKAGE.rglob("*.py"):
        assert not re.search(r"^\s*(import pytest|from pytest)", path.read_text(), re.M), path
