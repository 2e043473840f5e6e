"""The import graph of seqlab/, read with ``ast``: no import cycles, and the layers the modules promise.

Every import counts, also those inside functions (they run as soon as the function does), except those
under ``if TYPE_CHECKING:``. ``from pkg import name`` is an edge to ``pkg.name`` when that is a module,
else to ``pkg``. A package is not given an edge to the submodules Python loads before it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Edges allowed to close a cycle (none: keep it that way).
ALLOWED_UPWARD: set[tuple[str, str]] = set()


# Private names still imported across modules, in files this change could not edit (their owners' work).
KNOWN_PRIVATE_IMPORTS: set[tuple[str, str, str]] = set()


def _modules() -> dict[str, Path]:
    mods = {}
    for path in (ROOT / "seqlab").rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        mods[".".join(parts)] = path
    return mods


def _imports(path: Path) -> list[tuple[str, str | None]]:
    """``(module, name)`` for each seqlab import in ``path`` (name None for ``import module``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {
        id(node)
        for branch in ast.walk(tree)
        if isinstance(branch, ast.If) and "TYPE_CHECKING" in ast.unparse(branch.test)
        for stmt in branch.body
        for node in ast.walk(stmt)
    }
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found += [(a.name, None) for a in node.names if a.name.split(".")[0] == "seqlab"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] == "seqlab":
                found += [(node.module, a.name) for a in node.names]
    return found


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        targets = set()
        for module, imported in _imports(path):
            sub = f"{module}.{imported}"
            targets.add(sub if imported and sub in mods else module)
        graph[name] = {t for t in targets if t in mods and t != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return _graph()


def test_no_import_cycles_in_seqlab(graph):
    pruned = {m: {t for t in targets if (m, t) not in ALLOWED_UPWARD} for m, targets in graph.items()}
    assert _cycles(pruned) == []


def test_the_allowed_upward_edge_still_exists(graph):
    # When the shim goes, this fails: drop its entry from ALLOWED_UPWARD so no new cycle can hide behind it.
    assert all(target in graph[source] for source, target in ALLOWED_UPWARD)


def test_the_corpus_contract_depends_on_no_producer(graph):
    assert not {t for t in graph["seqlab.corpus"] if t.startswith("seqlab.synth")}
    assert "seqlab.synth.corpus" in graph["seqlab.corpus_source"]


def test_the_artifact_layers(graph):
    assert graph["seqlab.storage"] == set()
    assert graph["seqlab.manifest"] == {"seqlab.storage"}
    assert graph["seqlab.outputs"] == {"seqlab.storage", "seqlab.manifest"}
    assert graph["seqlab.artifacts"] == {"seqlab.storage", "seqlab.manifest", "seqlab.outputs"}


def test_the_batch_kernel_is_below_normalize(graph):
    assert not {t for t in graph["seqlab.text.normalize_kernel"] if t.startswith("seqlab.text")}
    assert "seqlab.text.normalize_kernel" in graph["seqlab.text.normalize"]


def test_no_private_names_imported_across_modules():
    private = set()
    for name, path in _modules().items():
        for module, imported in _imports(path):
            if imported and imported.startswith("_") and not imported.startswith("__") and module != name:
                private.add((path.relative_to(ROOT).as_posix(), module, imported))
    assert private == KNOWN_PRIVATE_IMPORTS
