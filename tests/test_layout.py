"""The package layout keeps its promises (README "Architecture"): no import cycles between modules nor
between packages, store/ imports neither the channel adapters nor the handlers, handlers/ and policy_kb/
import no channel library, only the entry points import xnh/app.py, SQL that writes lives in store/ (and
sync/write.py for the county file), transactions are begun and ended only by store/db.py (and the sync),
and only xnh/settings.py reads the environment."""
import ast
import re
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


# -- packages -------------------------------------------------------------------------------------------

PACKAGES = sorted({name for name, path in MODULES.items() if path.name == "__init__.py"})


def _child(module: str, package: str) -> str | None:
    """The child of `package` (a module or subpackage directly in it) that `module` is or lies in."""
    if not module.startswith(package + "."):
        return None
    return package + "." + module[len(package) + 1:].split(".")[0]


def _package_graph(package: str) -> dict[str, set[str]]:
    """The children of `package` and which of them import which (through any of their modules)."""
    graph: dict[str, set[str]] = {}
    for name, targets in GRAPH.items():
        here = _child(name, package)
        if here is None:
            continue
        graph.setdefault(here, set()).update(
            there for there in (_child(t, package) for t in targets) if there and there != here)
    return graph


def _package_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(node, trail):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return trail + [node, nxt]
            if nxt not in state:
                found = visit(nxt, trail + [node])
                if found:
                    return found
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node, [])
            if found:
                return found
    return None


@pytest.mark.parametrize("package", PACKAGES)
def test_no_package_cycle(package):
    """Inside every package, its modules and subpackages import each other one way only (bot/ uses
    broadcast/, so broadcast/ may not use bot/)."""
    cycle = _package_cycle(_package_graph(package))
    assert cycle is None, " → ".join(cycle)


def test_a_package_cycle_is_seen():
    # negative row: two children importing each other through their modules is a cycle
    assert _package_cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
    assert _package_cycle({"a": {"b"}, "b": set()}) is None


# -- writing SQL, transactions, the environment ------------------------------------------------------------

WRITE_SQL = re.compile(r"\b(insert\s+(or\s+\w+\s+)?into|replace\s+into|update\s+[\w.]+\s+set|delete\s+from)\b",
                       re.IGNORECASE)
WRITERS = ("xnh.store", "xnh.sync.write")  # the county file is written by the sync alone
TRANSACTIONS = ("xnh.store.db", "xnh.store.schema", "xnh.sync")  # `with writing(db):` everywhere else


def _docstrings(tree) -> set[int]:
    return {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}


def _strings(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            yield node.lineno, node.value


def _inside(name: str, places) -> bool:
    return any(name == p or name.startswith(p + ".") for p in places)


def test_sql_that_writes_lives_in_store():
    found = [f"{name}:{line}" for name, path in MODULES.items() if not _inside(name, WRITERS)
             for line, text in _strings(path) if WRITE_SQL.search(text)]
    assert not found


@pytest.mark.parametrize("sql, writes", [
    ("INSERT OR IGNORE INTO outbox (id) VALUES (1)", True), ("update users set active = 0", True),
    ("DELETE FROM conversations WHERE sender = ?", True), ("REPLACE INTO meta VALUES (1, 2)", True),
    ("UPDATE main.outbox SET status = 'x'", True),
    ("SELECT id FROM outbox WHERE status = 'pending'", False), ("one INSERT … SELECT", False),
    ("the last update time", False),
])
def test_the_write_sql_check_sees_writes(sql, writes):
    assert bool(WRITE_SQL.search(sql)) is writes


def _calls(path: Path, attributes: set[str]) -> list[int]:
    return [node.lineno for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in attributes]


def test_transactions_begin_and_end_only_in_store_db():
    found = [f"{name}:{line}" for name, path in MODULES.items() if not _inside(name, TRANSACTIONS)
             for line in _calls(path, {"commit", "rollback", "atomic"})]
    found += [f"{name}:{line}" for name, path in MODULES.items() if not _inside(name, TRANSACTIONS)
              for line, text in _strings(path) if re.match(r"\s*(BEGIN|COMMIT|ROLLBACK)\b", text, re.I)]
    assert not found


def _reads_environment(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb") \
                and isinstance(node.value, ast.Name) and node.value.id == "os":
            return True
        if isinstance(node, ast.ImportFrom) and node.module == "os" \
                and any(a.name in ("environ", "getenv") for a in node.names):
            return True
    return False


def test_only_the_settings_module_reads_the_environment():
    assert {name for name, path in MODULES.items() if _reads_environment(path)} == {"xnh.settings"}


# handlers/ is being rewritten in another branch; these four are the last `state as store` (README)
STATE_ALIASED = {"xnh.handlers.router", "xnh.handlers.lookup", "xnh.handlers.policy", "xnh.handlers.context"}


def test_store_is_not_an_alias_of_store_state():
    aliased = {name for name, path in MODULES.items()
               for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
               if isinstance(node, ast.ImportFrom) and any(a.name == "state" and a.asname == "store" for a in node.names)}
    assert aliased <= STATE_ALIASED
