"""Classifier logits of a batch from zoo's ports (PyTorch, Keras) or from the upstream TensorFlow graph."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import ArgumentError, UnknownFrameworkError
from ..registry import get_model_entry
from ..registry.types import transpose_layout
from .fast_check import FastCheck, first_batch_checked, keras_fast_function, torch_fast_model
from .upstream_tf import upstream_runner

__all__ = ["FRAMEWORKS", "Predictor", "make_predictor"]

FRAMEWORKS = ("torch", "keras", "tf-upstream")


@dataclass
class Predictor:
    """Logits of a batch: ``run(batch)`` takes float32 arrays in ``layout`` and returns (B, classes).

    ``fast_check``: for a fast form, its first-batch check against the model as built.
    """

    framework: str
    layout: str
    run: Callable[[np.ndarray], np.ndarray]
    fast_check: FastCheck | None = None

    def __call__(self, batch: np.ndarray, batch_layout: str) -> np.ndarray:
        """Logits of ``batch`` (given in ``batch_layout``), transposed to this predictor's layout first."""
        batch = transpose_layout(batch, batch_layout, self.layout)
        return np.asarray(self.run(np.ascontiguousarray(batch, dtype=np.float32)))


def make_predictor(model: str, framework: str, weights: str | os.PathLike | None = None,
                   upstream: str | os.PathLike | None = None, device: str | None = None,
                   fast: bool = True) -> Predictor:
    """A :class:`Predictor` for ``model`` in ``framework`` (one of :data:`FRAMEWORKS`).

    ``weights`` (a converted ``.safetensors`` path or a weights tag) is needed
    for ``torch`` and ``keras``, ``upstream`` (the upstream graph file) for
    ``tf-upstream``. ``device`` (torch only): default ``cuda`` when available.
    ``fast``: run the ports in their fastest exact form (torch:
    :func:`zoo.fast.fast_inference_model`, batch norm folded, channels_last,
    compiled; keras: :func:`zoo.keras.fast.fast_inference_function`), checked
    against the model as built on the first batch (the predictor's
    ``fast_check``; :class:`zoo.errors.NotExactError` if it differs); ``False``
    runs the models as built.
    """
    entry = get_model_entry(model)
    if framework == "tf-upstream":
        if upstream is None:
            raise ArgumentError("--framework tf-upstream needs --upstream (the upstream .tgz or .pb)")
        # The upstream graph takes the channels-last layout, as the Keras port does.
        return Predictor(framework, entry.input.layout("keras"), upstream_runner(model, upstream))
    if weights is None:
        raise ArgumentError(f"--framework {framework} needs --weights (a converted .safetensors file or a tag)")
    if framework == "torch":
        import torch

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        net = entry.builder("torch")(weights=weights).eval().to(device)

        def runner(module: "torch.nn.Module") -> Callable[[np.ndarray], np.ndarray]:
            def run(batch: np.ndarray) -> np.ndarray:
                with torch.inference_mode():
                    return module(torch.from_numpy(batch).to(device)).float().cpu().numpy()
            return run

        layout = entry.input.layout("torch")
        if not fast:
            return Predictor(framework, layout, runner(net))
        check = FastCheck("torch: zoo.fast_inference_model")
        return Predictor(framework, layout, first_batch_checked(runner(torch_fast_model(net)), runner(net), check),
                         check)
    if framework == "keras":
        net = entry.builder("keras")(weights=weights)

        def plain(batch: np.ndarray) -> np.ndarray:
            return np.asarray(net(batch, training=False))

        layout = entry.input.layout("keras")
        if not fast:
            return Predictor(framework, layout, plain)
        function = keras_fast_function(net)
        check = FastCheck("keras: zoo.keras.fast.fast_inference_function")
        return Predictor(framework, layout, first_batch_checked(lambda batch: np.asarray(function(batch)), plain, check),
                         check)
    raise UnknownFrameworkError(f"unknown framework {framework!r}; known: {', '.join(FRAMEWORKS)}")
