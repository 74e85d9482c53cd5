"""Print the project's import cycles, its layering breaches and its function-level imports of project modules.

Why: a cycle between modules is a tangle a reader must hold in mind at once, and an
import hidden inside a function is usually a cycle someone walked around. The numbers
this prints are the ones the README's architecture section quotes; `--max-cycles N`
makes it a check (exit 1 when there are more cycles outside the simulator than N,
counting those that only function-level imports close).

Run from the checkout: `python -m scripts.import_cycles [--max-cycles N]`.
Only imports that run when a module is imported count towards cycles; imports under
`if TYPE_CHECKING:` are annotations only and are left out.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

PACKAGES = ("callcenter", "ari_app", "agi_scripts", "api", "bridges", "dialplan", "asterisk_sim")
SIMULATOR = "asterisk_sim"
ADAPTERS = ("ari_app", "agi_scripts", "api", "bridges", "dialplan")
# The composition root: the modules that wire adapters together (the service, and the whole-product commands
# `demo` and `doctor`). Only they may import adapters; no adapter may import them.
ROOT = ("callcenter.cli", "callcenter.runner", "callcenter.demo", "callcenter.doctor")


@dataclass
class ModuleImports:
    """What one module imports of the project, split by when the import runs."""

    name: str
    at_import: set[str] = field(default_factory=set)
    in_functions: list[tuple[int, str]] = field(default_factory=list)


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def resolve(current: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module a `from ... import` names (relative imports resolved)."""
    if node.level == 0:
        return node.module or ""
    base = current.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(node: ast.AST, current: str, is_package: bool, known: set[str]) -> Iterator[str]:
    """Project modules one import statement brings in (a `from pkg import mod` names mod)."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield from _project(alias.name, known)
    elif isinstance(node, ast.ImportFrom):
        target = resolve(current, is_package, node)
        for alias in node.names:
            sub = f"{target}.{alias.name}"
            yield from _project(sub if sub in known else target, known)


def _project(name: str, known: set[str]) -> Iterator[str]:
    while name and name not in known:
        name = name.rpartition(".")[0]
    if name:
        yield name


def read_module(root: Path, path: Path, known: set[str]) -> ModuleImports:
    name = module_name(root, path)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = ModuleImports(name)

    def walk(nodes: Iterable[ast.stmt | ast.ExceptHandler], in_function: bool) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and _is_type_checking(node.test):
                walk(node.orelse, in_function)
                continue
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in sorted(set(_imports(node, name, is_package, known))):
                    if target == name:
                        continue
                    if in_function:
                        found.in_functions.append((node.lineno, target))
                    else:
                        found.at_import.add(target)
                continue
            nested = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            for child_field in ("body", "orelse", "finalbody", "handlers"):
                children = getattr(node, child_field, None)
                if isinstance(children, list):
                    walk([c for c in children if isinstance(c, ast.stmt | ast.ExceptHandler)],
                         in_function or nested)

    walk(tree.body, False)
    return found


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components of more than one module are cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return sorted(components)


def scan(root: Path) -> dict[str, ModuleImports]:
    paths = [p for pkg in PACKAGES for p in sorted((root / pkg).rglob("*.py"))]
    known = {module_name(root, p) for p in paths}
    return {m.name: m for m in (read_module(root, p, known) for p in paths)}


def layering_breaches(modules: dict[str, ModuleImports]) -> list[str]:
    """Imports that cross the architecture's lines: the core (outside the root) importing an adapter, an adapter
    importing another adapter or the root, the service importing the simulator, the simulator importing us."""
    breaches = []
    for name, module in sorted(modules.items()):
        package = name.split(".")[0]
        for target in sorted(module.at_import | {t for _, t in module.in_functions}):
            other = target.split(".")[0]
            if package == "callcenter" and other in ADAPTERS and name not in ROOT:
                breaches.append(f"{name} imports {target}: the core imports no adapter outside the composition root")
            elif package in ADAPTERS and other in ADAPTERS and other != package:
                breaches.append(f"{name} imports {target}: adapters never import each other")
            elif package in ADAPTERS and target in ROOT:
                breaches.append(f"{name} imports {target}: adapters never import the composition root")
            elif package in ADAPTERS and other == SIMULATOR:
                breaches.append(f"{name} imports {target}: the service never imports the simulator")
            elif package == SIMULATOR and other != SIMULATOR:
                breaches.append(f"{name} imports {target}: the simulator imports nothing of the service")
    return breaches


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--max-cycles", type=int, default=None,
                        help="exit 1 when more cycles (hidden ones included) exist outside the simulator")
    args = parser.parse_args(argv)

    modules = scan(args.root)
    graph = {name: m.at_import for name, m in modules.items()}
    cycles = strongly_connected(graph)
    every_import = {name: m.at_import | {t for _, t in m.in_functions} for name, m in modules.items()}
    hidden_cycles = [c for c in strongly_connected(every_import) if c not in cycles]
    outside = [c for c in cycles if not c[0].startswith(SIMULATOR)]
    hidden = [(m.name, line, target) for m in modules.values() for line, target in m.in_functions]
    hidden_outside = [h for h in hidden if not h[0].startswith(SIMULATOR)]

    print(f"modules: {len(modules)}")
    print(f"import cycles: {len(cycles)} ({len(outside)} outside {SIMULATOR}/)")
    for cycle in cycles:
        print(f"  cycle of {len(cycle)}: {' <-> '.join(cycle)}")
    print(f"cycles closed only by function-level imports: {len(hidden_cycles)} "
          f"({sum(not c[0].startswith(SIMULATOR) for c in hidden_cycles)} outside {SIMULATOR}/)")
    for cycle in hidden_cycles:
        print(f"  hidden cycle of {len(cycle)}: {' <-> '.join(cycle)}")
    print(f"function-level imports of project modules: {len(hidden)} "
          f"({len(hidden_outside)} outside {SIMULATOR}/)")
    for name, line, target in sorted(hidden):
        print(f"  {name}:{line} imports {target}")
    breaches = layering_breaches(modules)
    print(f"layering breaches: {len(breaches)}")
    for breach in breaches:
        print(f"  {breach}")
    tangles = len(outside) + sum(not c[0].startswith(SIMULATOR) for c in hidden_cycles)
    if args.max_cycles is not None and tangles > args.max_cycles:
        print(f"FAIL: {tangles} cycles outside {SIMULATOR}/, hidden ones included (allowed {args.max_cycles})")
        return 1
    if args.max_cycles is not None and breaches:
        print(f"FAIL: {len(breaches)} layering breaches")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
