"""The house rules, checked on the source: an acyclic import graph (function-level imports
included) that keeps the layers, a math core free of orchestration and I/O, and small files and
functions. A rule broken here is broken for every reader of the code."""

from __future__ import annotations

import ast
import pathlib
import sys

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "speclens"

#: Each module may import speclens modules of its own layer or a lower one. ``errors`` and
#: ``config_messages`` import no other speclens module, so every layer may use them.
LAYERS = {
    "speclens.errors": 0,
    "speclens.config_messages": 0,
    "speclens.spec": 0,
    "speclens.explore": 0,
    "speclens.storage": 1,
    "speclens.datasets": 2,
    "speclens.encoders": 2,
    "speclens.report": 2,
    "speclens.history": 2,
    "speclens.tasks": 3,
    "speclens.export": 3,
    "speclens.config": 4,
    "speclens.config_roles": 4,
    "speclens.flows": 5,
    "speclens.commands": 6,
    "speclens.cli": 6,
}
#: What the math core may import besides the standard library and itself.
SPEC_ALLOWED = {"numpy", "scipy", "torch"}
MAX_FILE_LINES, MAX_FUNCTION_LINES = 400, 60


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _imports(name: str, path: pathlib.Path) -> set[str]:
    """Every module named by an import anywhere in the file (functions included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            for alias in node.names:  # ``from pkg import module`` depends on the module only
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in MODULES else base)
    return found


GRAPH = {
    name: {m for m in _imports(name, path) if m in MODULES and m != name}
    for name, path in MODULES.items()
}


def _layer(module: str) -> int:
    for prefix in sorted(LAYERS, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return LAYERS[prefix]
    return -1  # the speclens package itself


def test_the_import_graph_has_no_cycle():
    state, cycles = {}, []

    def visit(node, trail):
        state[node] = "open"
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == "open":
                cycles.append(trail[trail.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"

    for node in sorted(GRAPH):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_every_import_keeps_the_layers():
    wrong = [
        f"{src} (layer {_layer(src)}) imports {dst} (layer {_layer(dst)})"
        for src, targets in GRAPH.items()
        for dst in targets
        if _layer(dst) > _layer(src) and dst != "speclens"
    ]
    assert not wrong, "\n".join(sorted(wrong))


def test_the_math_core_imports_no_orchestration_storage_or_file_system():
    stdlib_io = {"os", "pathlib", "io", "shutil", "tempfile", "glob", "fsspec"}
    wrong = []
    for name, path in MODULES.items():
        if not (name == "speclens.spec" or name.startswith("speclens.spec.")):
            continue
        for module in _imports(name, path):
            root = module.split(".")[0]
            ok = (
                (root in sys.stdlib_module_names and root not in stdlib_io)
                or (root in SPEC_ALLOWED or module.startswith("speclens.spec"))
                or root == "__future__"
            )
            if not ok:
                wrong.append(f"{name} imports {module}")
    assert not wrong, "\n".join(sorted(wrong))


def _functions(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


@pytest.mark.parametrize("rule", ["files", "functions"])
def test_files_and_functions_stay_small(rule):
    """Functions count from ``def`` to their last line, docstring included; a command's
    option declarations (its signature) do not count."""
    wrong = []
    for name, path in sorted(MODULES.items()):
        text = path.read_text(encoding="utf-8")
        if rule == "files" and len(text.splitlines()) > MAX_FILE_LINES:
            wrong.append(f"{path.relative_to(PACKAGE.parent)}: {len(text.splitlines())} lines")
        if rule != "functions":
            continue
        command = name.startswith("speclens.commands.")
        for fn in _functions(ast.parse(text)):
            first = fn.body[0].lineno if command else fn.lineno
            if fn.end_lineno - first + 1 > MAX_FUNCTION_LINES:
                length = fn.end_lineno - first + 1
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{fn.lineno} {fn.name} {length}")
    assert not wrong, "\n".join(wrong)
