"""Imports flow one way: cli -> bench -> convert -> runtime, train -> runtime, serve -> runtime; no cycles.

Read from the source with `ast`, imports inside functions included (they are
still dependencies), `if TYPE_CHECKING:` blocks left out.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "edgelite"
SHARED = {"errors", "modes", "silence", "atomic", "lazy", "isolated", ""}
# What each stage may import besides the shared modules and itself.
ALLOWED = {
    "runtime": set(),
    "convert": {"runtime"},
    "train": {"runtime"},
    "bench": {"convert", "runtime"},
    "serve": {"runtime"},
    "integrations": {"runtime"},
    "cli": {"runtime", "convert", "train", "bench", "serve", "integrations"},
    "__main__": {"cli"},
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _imports(tree: ast.AST) -> set[str]:
    found = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("edgelite"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("edgelite"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        stack.extend(ast.iter_child_nodes(node))
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        targets = {t for t in _imports(ast.parse(path.read_text())) if t in modules}
        graph[name] = targets - {name}
    return graph


def _stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_no_stage_imports_a_sibling_or_a_higher_stage():
    crossings = []
    for module, targets in _graph().items():
        stage = _stage(module)
        for target in targets:
            other = _stage(target)
            if other == stage or other in SHARED:
                continue
            if stage in SHARED or other not in ALLOWED[stage]:
                crossings.append(f"{module} -> {target}")
    assert crossings == []


def test_no_import_cycles():
    graph = _graph()
    # A package's __init__ importing its own submodules is how packages work, not a cycle of logic.
    edges = {m: {t for t in ts if not (m != "edgelite" and t.startswith(m + ".") and
                                       (PACKAGE.parent / Path(*m.split("."))).is_dir())}
             for m, ts in graph.items()}
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_the_runtime_falls_back_to_tensorflow_only_when_asked(monkeypatch):
    import sys

    import edgelite.runtime.backends as backends
    from edgelite.errors import DependencyError

    for name in ("ai_edge_litert", "ai_edge_litert.interpreter", "tflite_runtime", "tflite_runtime.interpreter"):
        monkeypatch.setitem(sys.modules, name, None)  # as if neither light interpreter were installed
    with pytest.raises(DependencyError, match="pip install ai-edge-litert"):
        backends._import_tflite_interpreter("auto")
    factory, kind, _ = backends._import_tflite_interpreter("tf.lite")
    assert kind == "tf.lite" and factory.__name__ == "Interpreter"
