"""The package is layered: no module of zoo/ imports a module above it, not even inside a function.

The levels are data (:data:`LEVELS`); every module of zoo/ must have one. An
``import``/``from`` statement anywhere in a module (top level, function body,
``if TYPE_CHECKING:``) is an edge; an edge to a higher level fails. Same-level
imports are fine. Code the registry loads by ``"module:attribute"`` strings
(importlib) is the plugin mechanism and is not an edge. That importing
``zoo.a.b`` first runs ``zoo/__init__.py`` and ``zoo/a/__init__.py`` is
Python's doing, not an edge of the importing module.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from parity import ROOT

PACKAGE = ROOT / "zoo"

# Module -> level. "pkg.*" stands for every submodule of pkg not listed by its own name; "pkg" for the
# package's __init__ alone. A module may import only modules of its own level or below.
LEVELS: dict[str, int] = {
    # 0: no zoo imports at all
    "zoo.errors": 0,
    "zoo.fileio": 0,
    "zoo.progress": 0,
    "zoo.keras._require": 0,
    # 1: facts and framework-free rules
    "zoo.layouts": 1,
    "zoo.specs": 1,
    "zoo.specs.*": 1,
    "zoo.preprocessing": 1,
    "zoo.flow": 1,
    "zoo.cli": 1,
    # 2: the registry, which reads the facts
    "zoo.registry": 2,
    "zoo.registry.*": 2,
    # 3: building blocks, and what reads the registry only
    "zoo.layers": 3,
    "zoo.layers.*": 3,
    "zoo.keras.layers": 3,
    "zoo.keras.input_checks": 3,
    "zoo.weights_check": 3,
    "zoo.manifest": 3,
    "zoo.samples": 3,
    # 4: reading, converting and loading files
    "zoo.convert": 4,
    "zoo.convert.*": 4,
    "zoo.standins": 4,
    "zoo.standins.*": 4,
    "zoo.weights": 4,
    "zoo.keras.weights": 4,
    # 5: weights by tag (cache, downloads, local conversion)
    "zoo.hub": 5,
    # 6: the models
    "zoo.models": 6,
    "zoo.models.*": 6,
    "zoo.keras.*": 6,
    # 7: what builds, transforms, runs and evaluates models by name
    "zoo": 7,
    "zoo.keras": 7,
    "zoo.factory": 7,
    "zoo.fold": 7,
    "zoo.fast": 7,
    "zoo.keras.fold": 7,
    "zoo.keras.fast": 7,
    "zoo.export": 7,
    "zoo.demo": 7,
    "zoo.demo_layers": 7,
    "zoo.eval": 7,
    "zoo.eval.*": 7,
}


def level_of(module: str) -> int | None:
    """The level of ``module``: its own entry, else the nearest ``"<package>.*"`` entry above it."""
    if module in LEVELS:
        return LEVELS[module]
    parts = module.split(".")
    for end in range(len(parts) - 1, 0, -1):
        wildcard = ".".join(parts[:end]) + ".*"
        if wildcard in LEVELS:
            return LEVELS[wildcard]
    return None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def zoo_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported_modules(module: str, source: str, is_package: bool, known: set[str]) -> list[tuple[str, int]]:
    """(zoo module, line) for every import statement in ``source``, wherever it stands."""
    package = module if is_package else module.rpartition(".")[0]
    edges = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            edges += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                # `from zoo.convert import canonical` imports the module zoo.convert.canonical.
                submodule = f"{target}.{alias.name}"
                edges.append((submodule if submodule in known else target, node.lineno))
    return [(name, line) for name, line in edges if name == "zoo" or name.startswith("zoo.")]


def upward_edges() -> list[str]:
    modules = zoo_modules()
    known = set(modules)
    problems = []
    for module, path in modules.items():
        level = level_of(module)
        for target, line in imported_modules(module, path.read_text(), path.name == "__init__.py", known):
            target_level = level_of(target)
            if target_level is not None and level is not None and target_level > level:
                problems.append(f"{path.relative_to(ROOT)}:{line}: {module} (level {level}) imports {target} "
                                f"(level {target_level})")
    return problems


def test_every_module_has_a_level():
    unplaced = [name for name in zoo_modules() if level_of(name) is None]
    assert not unplaced, f"give these modules a level in LEVELS: {unplaced}"


def test_no_module_imports_a_module_above_it():
    problems = upward_edges()
    assert not problems, "imports that climb:\n" + "\n".join(problems)


def test_layers_know_no_model():
    """The building blocks (zoo.layers, zoo.keras.layers) import neither the registry nor any model's facts."""
    modules = zoo_modules()
    known = set(modules)
    problems = []
    for module, path in modules.items():
        if module.startswith("zoo.layers") or module == "zoo.keras.layers":
            for target, line in imported_modules(module, path.read_text(), path.name == "__init__.py", known):
                if target.startswith(("zoo.registry", "zoo.specs", "zoo.models", "zoo.convert", "zoo.standins")):
                    problems.append(f"{path.relative_to(ROOT)}:{line}: {module} imports {target}")
    assert not problems, "\n".join(problems)


def test_the_scan_sees_imports_inside_functions_and_relative_imports():
    """The scanner finds what the layering test relies on: lazy, relative, aliased and package-attribute imports."""
    known = set(zoo_modules())
    source = textwrap.dedent("""\
        import os
        from ..errors import FormatError
        from zoo.convert import canonical

        def load(path):
            from ..hub import converted_weights
            import zoo.models.resnet50 as port
            return converted_weights, port
        """)
    found = imported_modules("zoo.keras.weights", source, False, known)
    assert found == [("zoo.errors", 2), ("zoo.convert.canonical", 3), ("zoo.hub", 6), ("zoo.models.resnet50", 7)]
    assert level_of("zoo.hub") > level_of("zoo.keras.weights") and level_of("zoo.models.resnet50") == 6
    assert imported_modules("zoo", "from .factory import create_model\n", True, known) == [("zoo.factory", 1)]


def _smallest_model_with_a_tag() -> tuple[str, str]:
    from zoo.registry import MODELS, name_table

    with_tags = [name for name, entry in MODELS.items() if entry.weights]
    model = min(with_tags, key=lambda name: sum(int(np.prod(spec.shape)) for spec in name_table(name)))
    return model, MODELS[model].weights[0].tag


def _cached_converted_file(weights_dir: Path, model: str, tag: str) -> Path:
    """A converted file of ``model``'s ``tag`` (zeros) in the cache, as the hub finds it: named by its sha256,
    carrying the converter version and the upstream file's sha256."""
    from zoo.convert.canonical import CONVERTER_VERSION, sha256_file, write_canonical
    from zoo.manifest import converted_file_name, load_manifest
    from zoo.registry import name_table

    entry = load_manifest().entry(model, tag)
    tensors = {spec.torch: np.zeros(spec.shape, np.float32) for spec in name_table(model)}
    metadata = {"model": model, "converter_version": CONVERTER_VERSION, "source_sha256": entry.upstream.sha256 or ""}
    weights_dir.mkdir(parents=True)
    partial = write_canonical(tensors, weights_dir / "partial.safetensors", metadata)
    return partial.rename(weights_dir / converted_file_name(model, tag, sha256_file(partial)))



@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="needs jax (the keras-jax extra)")
def test_keras_builder_with_a_cached_tag_on_jax_never_imports_torch(tmp_path):
    """Resolving a tag is the hub's job and a cache hit needs no framework: the Keras side stays torch-free."""
    model, tag = _smallest_model_with_a_tag()
    cached = _cached_converted_file(tmp_path / "weights", model, tag)
    code = textwrap.dedent(f"""
        import sys
        from pathlib import Path

        import zoo.keras
        import zoo.hub
        from zoo.registry import get_model_entry

        assert "torch" not in sys.modules, "import zoo.keras / zoo.hub imported torch"
        assert zoo.hub.resolve_weights({tag!r}, {model!r}) == Path({str(cached)!r})
        net = get_model_entry({model!r}).builder("keras")(weights={tag!r})
        assert net.weights, "no weights"
        leaked = sorted(m for m in sys.modules if m == "torch" or m.startswith(("torch.", "zoo.models")))
        assert not leaked, leaked
        print("ok")
        """)
    env = {**os.environ, "KERAS_BACKEND": "jax", "ZOO_HOME": str(tmp_path), "ZOO_OFFLINE": "1", "ZOO_QUIET": "1",
           "TF_CPP_MIN_LOG_LEVEL": "2", "JAX_PLATFORMS": "cpu"}
    env.pop("ZOO_MANIFEST", None)
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]
