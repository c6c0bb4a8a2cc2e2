"""Where the folders shipped with Aftermath are: the default mappings and the Alembic migrations.

An installed wheel carries them inside the package (app/bundled/…, see pyproject.toml); a source checkout, and an
editable install of one, has them as the repository's top-level mappings/ and alembic/ folders, the only copies kept.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
MARKERS = {"mappings": "triggers.yaml", "alembic": "env.py"}


def folder(name: str) -> Path:
    """The shipped folder `mappings` or `alembic`; FileNotFoundError names both places looked at."""
    marker = MARKERS[name]
    # Inside the package first: next to an installed package, ../alembic is the Alembic library itself.
    candidates = [PACKAGE / "bundled" / name, PACKAGE.parent / name]
    for candidate in candidates:
        if (candidate / marker).is_file():
            return candidate
    raise FileNotFoundError(f"the shipped {name} folder is missing (looked in {' and '.join(map(str, candidates))})")


def mappings() -> Path:
    return folder("mappings")


def migrations() -> Path:
    return folder("alembic")
