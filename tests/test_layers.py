"""The layers the README describes, enforced by reading the imports and names of every module (no import needed)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUERY_BUILDERS = {"select", "insert", "update", "delete", "func", "text", "and_", "or_", "case", "col"}
# Vendor names may appear only where the vendors are described: the connectors, the mapping models (app/mappings.py)
# and the settings that name their AFTERMATH_* variables.
VENDOR_PLACES = {"app/mappings.py", "app/settings.py"}
VENDORS = ("jira", "github")


def _modules(folder: str) -> dict[str, ast.Module]:
    return {str(p.relative_to(ROOT)): ast.parse(p.read_text()) for p in sorted((ROOT / folder).rglob("*.py"))}


def _imports(tree: ast.Module) -> set[tuple[str, str]]:
    """(module, name) for every import: ("fastapi", "") for `import fastapi`, ("sqlmodel", "select") for a from."""
    found: set[tuple[str, str]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {(alias.name, "") for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {(node.module, alias.name) for alias in node.names}
    return found


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_connectors_know_nothing_of_the_app() -> None:
    bad = {f"{path}: {mod}" for path, tree in _modules("connectors").items() for mod, _ in _imports(tree)}
    assert {line for line in bad if _within(line.split(": ")[1], "app")} == set()


def test_domain_modules_know_nothing_of_http() -> None:
    # The CLI is the one other entry point: it builds the app to serve it.
    domain = {p: t for p, t in _modules("app").items() if not p.startswith("app/api/") and p != "app/cli.py"}
    bad = {
        f"{path}: {mod}"
        for path, tree in domain.items()
        for mod, _ in _imports(tree)
        if _within(mod, "fastapi") or _within(mod, "starlette") or _within(mod, "app.api")
    }
    assert bad == set()


def test_routers_build_no_queries() -> None:
    bad = {
        f"{path}: {mod}.{name}"
        for path, tree in _modules("app/api").items()
        for mod, name in _imports(tree)
        if (_within(mod, "sqlalchemy") or _within(mod, "sqlmodel")) and (name in QUERY_BUILDERS or name == "")
    }
    assert bad == set()


def _vendor_words(tree: ast.Module) -> set[str]:
    """Identifiers and string constants (docstrings and comments aside) that name a tracker vendor."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    words: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            words.add(node.id)
        elif isinstance(node, ast.Attribute):
            words.add(node.attr)
        elif isinstance(node, ast.alias):
            words.add(node.asname or node.name)
        elif isinstance(node, ast.arg):
            words.add(node.arg)
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            words.add(node.name)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            words.add(node.value)
    return {w for w in words if any(v in w.lower() for v in VENDORS)}


def test_the_app_never_names_a_tracker_vendor() -> None:
    """Adding a tracker is a connector module, a target model and its rules in the mappings, not edits across the
    app: outside the places that describe vendors, no code branches on one or names one."""
    named = {
        path: sorted(words)
        for path, tree in _modules("app").items()
        if path not in VENDOR_PLACES and (words := _vendor_words(tree))
    }
    assert named == {}


def test_the_vendor_check_sees_a_vendor_branch() -> None:
    tree = ast.parse('def f(kind):\n    """jira is fine here"""\n    return kind == "jira"\n')
    assert _vendor_words(tree) == {"jira"}
    assert _vendor_words(ast.parse("from connectors.targets import GitHubTarget\n")) == {"GitHubTarget"}
