"""Generic code never names a model: it reads the registry, so a new model needs no edit to it.

Generic code is every .py under zoo/ except each registered model's own five
files (zoo/{specs,models,keras,convert,standins}/<model>.py) and the in-tree
registry entries (zoo/registry/entries.py), plus hubconf.py, scripts/*.py and
benchmarks/*.py. A string constant in it that holds a registered model's name
as a word (the name alone, or inside a path or message such as
"zoo.models.<model>.x", not inside a longer identifier-like word) is a
failure; docstrings are prose and may name models.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from parity import ROOT
from zoo.registry import list_models

MODELS = list_models()
PER_MODEL_FOLDERS = ("specs", "models", "keras", "convert", "standins")


def own_files(model: str) -> list[Path]:
    """``model``'s own files, the only place outside the registry entries where zoo may name it."""
    return [ROOT / "zoo" / folder / f"{model}.py" for folder in PER_MODEL_FOLDERS]


def generic_files() -> list[Path]:
    """The files that must not name a model."""
    excluded = {path for model in MODELS for path in own_files(model)} | {ROOT / "zoo" / "registry" / "entries.py"}
    files = [path for path in sorted((ROOT / "zoo").rglob("*.py")) if path not in excluded]
    files += [ROOT / "hubconf.py", *sorted((ROOT / "scripts").glob("*.py")), *sorted((ROOT / "benchmarks").glob("*.py"))]
    return files


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring constants of the module, its classes and its functions."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                found.add(id(first.value))
    return found


def model_name_literals(source: str, names: list[str], where: str) -> list[str]:
    """``where:line: 'text'`` for every string constant in ``source`` naming one of ``names`` (docstrings aside).

    A name counts where no letter or digit touches it (``_`` and punctuation may):
    ``"m1"``, ``"zoo.specs.m1"`` and ``"m1_builder"`` name ``m1``; ``"xm1"`` does not.
    """
    word = re.compile(r"(?<![A-Za-z0-9])(?:" + "|".join(map(re.escape, names)) + r")(?![A-Za-z0-9])")
    tree = ast.parse(source, filename=where)
    docstrings = _docstrings(tree)
    hits = [node for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and word.search(node.value) and id(node) not in docstrings]
    return [f"{where}:{node.lineno}: {node.value!r}" for node in sorted(hits, key=lambda n: (n.lineno, n.col_offset))]


def test_each_models_own_files_exist():
    """The exclusions above name real files: a renamed or missing per-model file would widen them silently."""
    missing = [str(path.relative_to(ROOT)) for model in MODELS for path in own_files(model) if not path.is_file()]
    assert not missing, f"per-model files missing: {missing}"
    assert (ROOT / "zoo" / "registry" / "entries.py").is_file()


def test_generic_code_names_no_model():
    found = []
    for path in generic_files():
        found += model_name_literals(path.read_text(), MODELS, str(path.relative_to(ROOT)))
    assert not found, (f"{len(found)} string literals in generic code name a model (read the registry instead):\n"
                       + "\n".join(found))


def test_the_scan_finds_a_literal_and_spares_docstrings():
    source = '''"""Module docstring naming m1."""
def f(name):
    """m1 in a docstring."""
    if name == "m1":
        return {"m2": 1}
    if name == "xm1" or name == "m10":
        return "see zoo.models.m2.run"
    return f"m1"
'''
    found = model_name_literals(source, ["m1", "m2"], "x.py")
    assert found == ["x.py:4: 'm1'", "x.py:5: 'm2'", "x.py:7: 'see zoo.models.m2.run'", "x.py:8: 'm1'"], found
