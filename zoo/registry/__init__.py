"""The registry: one :class:`ModelEntry` per model, the only place generic code learns about models.

Generic code (export, evaluation, hub, demo, scripts, benchmarks) reads the
entries and never names a model. The in-tree entries are in
:mod:`zoo.registry.entries`; :func:`register_model` adds one from outside
``zoo/`` (see ``docs/adding-a-model.md``).

The only weights fact kept elsewhere is what a maintainer publishes: the
converted files' names, sizes, sha256 and URLs, in ``zoo/published.json``
(:mod:`zoo.manifest`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ArgumentError, UnknownModelError
from .entries import IN_TREE
from .types import (
    FRAMEWORKS,
    BenchmarkSpec,
    ClassifierOutput,
    FlowOutput,
    Importable,
    InputSpec,
    MLPerfSpec,
    ModelEntry,
    OnnxNames,
    ParityTolerance,
    RemoteFile,
    UpstreamGraph,
    WeightsTag,
    load_importable,
)

if TYPE_CHECKING:  # pragma: no cover
    from ..specs.common import NameTable

__all__ = [
    "FRAMEWORKS", "MODELS", "BenchmarkSpec", "ClassifierOutput", "FlowOutput", "Importable", "InputSpec",
    "MLPerfSpec", "ModelEntry", "OnnxNames", "ParityTolerance", "RemoteFile", "UpstreamGraph", "WeightsTag",
    "builder_aliases", "get_model_entry", "list_models", "load_importable", "name_table", "register_model",
    "unregister_model",
]

MODELS: dict[str, ModelEntry] = {entry.name: entry for entry in IN_TREE}


def register_model(entry: ModelEntry, *, replace: bool = False) -> ModelEntry:
    """Add ``entry`` to the registry (zoo's counterpart of timm's ``@register_model``); returns it.

    From then on ``zoo.create_model(entry.name)``, ``zoo.fast_inference_model``,
    ONNX export, the scripts, the benchmark harness and ``torch.hub`` know the
    model. A name already registered is an error unless ``replace=True``.
    """
    if not isinstance(entry, ModelEntry):
        raise ArgumentError(f"register_model takes a zoo.registry.ModelEntry, got {type(entry).__name__}")
    if not entry.name.isidentifier():
        raise ArgumentError(f"a model name must be a Python identifier (it names builders), got {entry.name!r}")
    if entry.name in MODELS and not replace:
        raise ArgumentError(f"model {entry.name!r} is already registered; pass replace=True to replace it")
    for framework in FRAMEWORKS:
        owner = builder_aliases(framework).get(entry.name)
        if owner is not None and owner != entry.name:
            raise ArgumentError(f"model name {entry.name!r} is the {framework} builder of model {owner!r}; "
                                "choose another name")
    MODELS[entry.name] = entry
    return entry


def unregister_model(name: str) -> ModelEntry:
    """Remove ``name`` from the registry and return its entry."""
    get_model_entry(name)
    return MODELS.pop(name)


def list_models() -> list[str]:
    """Names of the registered models."""
    return sorted(MODELS)


def get_model_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``; :class:`~zoo.errors.UnknownModelError` lists the known ones."""
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        raise UnknownModelError(f"unknown model {name!r}; known: {', '.join(list_models())}") from None


def builder_aliases(framework: str) -> dict[str, str]:
    """Attribute name -> model, for ``zoo.<attribute>`` / ``zoo.keras.<attribute>`` and torch.hub entry points.

    Each model's name, then each model's ``framework`` builder's own name
    (``resnet50_tf_compat``) in registration order; a builder name that is
    already taken (another model's name or an earlier model's builder) stays
    with its first owner, so a model registered later never shadows one before it.
    """
    aliases = {name: name for name in MODELS}
    for name, entry in MODELS.items():
        aliases.setdefault(entry.builder_name(framework), name)
    return aliases


def name_table(model: str) -> "NameTable":
    """The name table of ``model`` (:mod:`zoo.specs`): upstream name, PyTorch key, Keras weight, layout, shape."""
    return get_model_entry(model).load("name_table")
