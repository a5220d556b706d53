"""The house's one rule: imports go down the floors, and no modules import each other in a loop.

    openmeter_site <- customers <- metering <- catalog <- entitlements <- subscriptions <- billing
        <- {integrations, notifications, portal} <- backoffice

(`backoffice` is the admin's hub and dashboard, which read every app; nothing imports it.)

The walk reads every module of the apps (admin modules, views, tasks and migrations included) and every import in
it, also the lazy ones inside functions and those under `TYPE_CHECKING`. An upper app reacts to a lower one
through domain events (`openmeter_site.outbox`) or by registering itself with it (billing's app plug-ins,
metering's ingest listeners, a lower app's admin page sections); the lower app never names it. The three apps on
the top floor do not import each other either. A loop is a cycle among the imports modules make when they load
(top-level imports, `TYPE_CHECKING` ones left out): lazy imports inside functions are how a task reaches its service.
"""

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
FLOORS = [["openmeter_site"], ["customers"], ["metering"], ["catalog"], ["entitlements"], ["subscriptions"],
          ["billing"], ["integrations", "notifications", "portal"], ["backoffice"]]
FLOOR = {app: level for level, apps in enumerate(FLOORS) for app in apps}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


class Imports(ast.NodeVisitor):
    """Every import of a module: (module, the names taken from it, line, loaded with the module?)."""

    def __init__(self, module: str, is_package: bool) -> None:
        self.module, self.is_package = module, is_package
        self.found: list[tuple[str, list[str], int, bool]] = []
        self._depth = 0  # inside a function or a TYPE_CHECKING block: not imported when the module loads

    def _deferred(self, node: ast.AST) -> None:
        self._depth += 1
        self.generic_visit(node)
        self._depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _deferred

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
                isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"):
            self._deferred(node)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.found += [(alias.name, [], node.lineno, self._depth == 0) for alias in node.names]

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        names = [alias.name for alias in node.names]
        self.found.append((resolve(self.module, self.is_package, node), names, node.lineno, self._depth == 0))


Graph = dict[str, list[tuple[str, int, bool]]]


def imported_modules(base: str, names: list[str], known: set[str]) -> list[str]:
    """`from billing.services import state` imports the module billing.services.state (not the package's
    __init__, else every package importing its own modules would be a loop); `from billing.models import
    Invoice` imports billing.models."""
    modules = [f"{base}.{name}" for name in names if f"{base}.{name}" in known]
    return modules if len(modules) == len(names) else [*modules, base]


def walk() -> Graph:
    found = {}
    for app in FLOOR:
        for path in sorted((ROOT / app.replace(".", "/")).rglob("*.py")):
            module = module_name(path)
            visitor = Imports(module, path.name == "__init__.py")
            visitor.visit(ast.parse(path.read_text(), filename=str(path)))
            found[module] = visitor.found
    known = set(found)
    return {
        module: [(target, line, at_load) for base, names, line, at_load in imports
                 for target in imported_modules(base, names, known)]
        for module, imports in found.items()
    }


GRAPH = walk()


def floor_of(module: str) -> int | None:
    return FLOOR.get(module.split(".")[0])


def upward_imports(graph: Graph) -> list[str]:
    wrong = []
    for module, imports in graph.items():
        here = floor_of(module)
        for target, line, _ in imports:
            there = floor_of(target)
            same_app = target.split(".")[0] == module.split(".")[0]
            if there is not None and here is not None and not same_app and there >= here:
                wrong.append(f"{module}:{line} imports {target}")
    return sorted(set(wrong))


def import_cycles(graph: Graph) -> list[list[str]]:
    """Strongly connected components (Tarjan) of the load-time import graph between our modules, bigger than one."""
    edges: dict[str, set[str]] = defaultdict(set)
    for module, imports in graph.items():
        for target, _, at_load in imports:
            if at_load and target in graph and target != module:
                edges[module].add(target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in edges[node]:
            if succ not in index:
                connect(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in list(graph):
        if node not in index:
            connect(node)
    return cycles


def test_the_walk_sees_lazy_and_type_checking_imports():
    source = (
        "from typing import TYPE_CHECKING\n"
        "from customers.models import Customer\n"
        "if TYPE_CHECKING:\n"
        "    from billing.models import Invoice\n"
        "def later():\n"
        "    from notifications.tasks import deliver_task\n"
    )
    visitor = Imports("entitlements.example", is_package=False)
    visitor.visit(ast.parse(source))
    graph = {"entitlements.example": [(base, line, at_load) for base, _, line, at_load in visitor.found]}
    assert upward_imports(graph) == [
        "entitlements.example:4 imports billing.models",
        "entitlements.example:6 imports notifications.tasks",
    ]


def test_a_loop_is_found():
    graph = {"billing.a": [("billing.b", 1, True)], "billing.b": [("billing.c", 1, True)],
             "billing.c": [("billing.a", 1, True)], "billing.d": [("billing.a", 1, False)]}
    assert import_cycles(graph) == [["billing.a", "billing.b", "billing.c"]]


def test_no_app_imports_an_app_above_it_or_beside_it():
    assert upward_imports(GRAPH) == []


def test_no_modules_import_each_other_in_a_loop():
    assert import_cycles(GRAPH) == []


@pytest.mark.parametrize("app", sorted(FLOOR))
def test_every_app_is_walked(app):
    assert any(module.split(".")[0] == app for module in GRAPH)
