"""The package layout keeps its promises (README "Architecture"): no import cycles between modules,
store/ imports neither the channel adapters nor the handlers, handlers/ and policy_kb/ import no
channel library, and only the entry points import xnh/app.py."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "xnh"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str, path: Path) -> set[str]:
    """Every module `name` imports, at the top or inside a function (xnh modules and outside ones)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in MODULES else base)
    return found


GRAPH = {name: {m for m in _imports(name, path) if m in MODULES and m != name} for name, path in MODULES.items()}


def _cycle_from(start: str) -> list[str] | None:
    stack, seen = [(start, [start])], set()
    while stack:
        node, trail = stack.pop()
        for nxt in GRAPH[node]:
            if nxt == start:
                return trail + [start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, trail + [nxt]))
    return None


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != "xnh"))
def test_no_import_cycle(module):
    # the package root only re-exports lazily (xnh.__getattr__), so it is not a module others depend on
    assert _cycle_from(module) is None, " → ".join(_cycle_from(module))


@pytest.mark.parametrize("package, forbidden", [
    ("xnh.store", ("xnh.bot", "xnh.handlers", "xnh.sync", "xnh.app", "flask", "twilio", "telegram")),
    ("xnh.sync", ("xnh.bot", "xnh.handlers", "xnh.app", "flask", "twilio", "telegram")),
    ("xnh.handlers", ("xnh.bot", "xnh.app", "xnh.sync", "flask", "twilio", "telegram")),
    ("xnh.policy_kb", ("xnh.bot", "xnh.app", "xnh.store", "flask", "twilio", "telegram")),
])
def test_package_does_not_import(package, forbidden):
    bad = {(name, m) for name, path in MODULES.items() if name == package or name.startswith(package + ".")
           for m in _imports(name, path) if any(m == f or m.startswith(f + ".") for f in forbidden)}
    assert not bad


def test_only_entry_points_import_the_app():
    importers = {name for name, path in MODULES.items() if "xnh.app" in _imports(name, path)}
    assert importers == {"xnh.server"}


@pytest.mark.parametrize("module, expected", [
    ("xnh.bot.sms", True), ("xnh.store.db", False),  # negative row: the graph does see imports
])
def test_the_graph_sees_the_imports(module, expected):
    assert ("xnh.store.db" in GRAPH[module]) is expected
