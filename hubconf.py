"""torch.hub entry points: ``torch.hub.load("<owner>/zoo", "resnet50_tf_compat", weights="mlperf")``.

The entry points are the registry's PyTorch builders themselves, each under
its model's name and its own (``resnet50`` and ``resnet50_tf_compat``), so the
models, weights tags, checks and docstrings are the package's own. torch.hub
imports this file from the repository's folder with that folder first on
``sys.path``, so a plain checkout works without ``pip install``: ``import zoo``
below finds the checkout's package, and the check after it refuses a
different ``zoo`` that is already imported, whose models could differ from
this checkout's.
"""

from __future__ import annotations

# Modules only: torch.hub.list lists every public callable here, classes included.
import pathlib
import typing

import torch

import zoo as _zoo

# torch.hub checks these import names before calling an entry point: the
# runtime dependencies of pyproject.toml (the PyTorch side needs no Keras).
dependencies = ["numpy", "torch", "requests", "safetensors"]

_CHECKOUT = pathlib.Path(__file__).resolve().parent
_ZOO_ROOT = pathlib.Path(_zoo.__file__).resolve().parent.parent
if _ZOO_ROOT != _CHECKOUT:
    # Python caches a module per process: a `zoo` imported earlier (e.g. a
    # pip-installed release) would silently stand in for this checkout's.
    raise ImportError(
        f"hubconf.py in {_CHECKOUT} needs the zoo package of that checkout, but this process has "
        f"already imported zoo from {_ZOO_ROOT}; call torch.hub.load in a fresh Python process "
        f"(before any `import zoo`) or use the installed zoo directly"
    )


def _entry_points() -> dict[str, typing.Callable[..., torch.nn.Module]]:
    """Entry point -> builder: each registered model's PyTorch builder, under its name and the builder's own."""
    return {point: _zoo.get_model_entry(model).builder("torch")
            for point, model in _zoo.registry.builder_aliases("torch").items()}


# The builders themselves, so torch.hub.help shows their own docstrings. torch.hub
# imports this file afresh on each load/list, so models registered before that are here too.
globals().update(_entry_points())
