"""The shape of the code, checked on every run: no import cycle (function-level imports included),
and each package imports only from the layers below it:

    dashboard, localdev  ->  health  ->  provisioning  ->  events  ->  integrations, tenants

`integrations` (the outside systems) and `tenants` (the model) import nothing of each other's or
above them, so a state change or a provider call is always found in one place.
"""

import ast
from pathlib import Path

from django.conf import settings

PACKAGES = ("tenants", "integrations", "provisioning", "events", "health", "dashboard", "localdev", "ardamail_admin")
MAY_IMPORT = {
    "tenants": set(),
    "integrations": set(),
    # What the providers and receivers report (events, DMARC reports): stored and counted, never a
    # provider call; the DMARC ramp reads the reports' readiness from it.
    "events": {"tenants", "integrations"},
    "provisioning": {"tenants", "integrations", "events"},
    # Platform health reads what the workflows read, through the same providers; it writes only its heartbeat.
    "health": {"tenants", "integrations", "provisioning", "events"},
    "dashboard": {"tenants", "integrations", "provisioning", "events", "health"},
    "localdev": {"tenants", "integrations", "provisioning", "events", "dashboard", "health"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(settings.BASE_DIR).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in (settings.BASE_DIR / package).rglob("*.py")
            if "migrations" not in p.parts}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Every project module `name` imports, anywhere in the file (inside functions too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(name, path, set(modules)) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def test_there_is_no_import_cycle_not_even_through_function_level_imports():
    graph = import_graph()
    assert len(graph) > 40  # the walk found the project
    assert find_cycle(graph) == []


def test_the_finder_would_see_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_each_package_imports_only_from_the_layers_below_it():
    wrong = sorted(
        f"{name} imports {target}"
        for name, targets in import_graph().items()
        for target in targets
        if (top := name.split(".")[0]) in MAY_IMPORT
        and (other := target.split(".")[0]) != top and other != "ardamail_admin" and other not in MAY_IMPORT[top]
    )
    assert wrong == []
