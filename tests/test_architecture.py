"""The package layout: no import circles between modules, and every module in docs/architecture.md."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "functions" / "retailopt"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def module_imports(path: Path, known: set[str]) -> set[str]:
    """The package modules `path` imports when it is loaded (module level: not inside functions)."""
    module, tree = _module_name(path), ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                target = _resolve(module, path.name == "__init__.py", node)
                found.add(target)
                found.update(f"{target}.{a.name}" for a in node.names)
            elif isinstance(node, (ast.If, ast.Try)):  # conditional imports still run at load time
                if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test):
                    continue
                visit(node.body)
                visit(getattr(node, "orelse", []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)

    visit(tree.body)
    return {name for name in found if name in known and name != module}


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    known = {_module_name(p) for p in paths}
    # Importing a.b.c loads the packages a and a.b first; a package's own imports of its modules
    # are its business, so edges into a package stand for the package's __init__ only.
    return {_module_name(p): module_imports(p, known) for p in paths}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle (its modules in order, the first repeated at the end), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_finds_a_circle_and_accepts_a_tree():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_routing_request_and_loads_share_lines_without_a_circle():
    graph = import_graph()
    assert "retailopt.routing.lines" in graph["retailopt.routing.loads"]
    assert "retailopt.routing.lines" in graph["retailopt.routing.request"]
    assert "retailopt.routing.request" not in graph["retailopt.routing.loads"]
    assert not {m for m in graph["retailopt.routing.lines"] if m.startswith("retailopt.routing.")}


def test_no_import_circle_between_modules():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


def test_every_routing_module_is_listed_in_docs():
    text = (ROOT / "docs" / "routing.md").read_text(encoding="utf-8")
    for path in sorted((PACKAGE / "routing").glob("*.py")):
        if path.name in ("__init__.py",):
            continue
        assert re.search(rf"`{re.escape(path.name)}`", text), f"docs/routing.md does not list {path.name}"


def test_domain_modules_never_import_the_benchmarks():
    graph = import_graph()
    domain = {m: deps for m, deps in graph.items() if not m.startswith("retailopt.benchmarks")}
    offenders = {m: sorted(d for d in deps if d.startswith("retailopt.benchmarks")) for m, deps in domain.items()}
    assert not {m: d for m, d in offenders.items() if d}


def test_every_benchmarks_module_is_listed_in_the_architecture_page():
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith("| `benchmarks/`"))
    for path in sorted((PACKAGE / "benchmarks").glob("*.py")):
        if path.name != "__init__.py":
            assert f"`{path.name}`" in row, f"docs/architecture.md does not list benchmarks/{path.name}"
