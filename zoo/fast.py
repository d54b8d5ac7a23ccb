"""The fastest exact form of a PyTorch port: batch norm folded, channels_last, compiled and frozen.

:func:`fast_inference_model` is the documented way to run a zoo model fast::

    import zoo
    fast = zoo.fast_inference_model(zoo.resnet50_tf_compat(weights="mlperf"))
    logits = fast(x)          # NCHW float32, any batch size; the first call per shape compiles

``torch.compile`` with inductor's freezing treats the weights as constants: it
folds them into the graph, pre-packs them for oneDNN and fuses each
convolution's bias, ReLU/ReLU6 and residual add into one oneDNN call, which is
PyTorch's standard recipe for CPU inference. It needs a working C++ compiler;
without one the eager folded form is returned, with one warning that says why.
:func:`check_fast_matches` compares a fast form with the model as built on one
batch and raises :class:`zoo.errors.NotExactError` when they differ by more
than the tolerance.
"""

from __future__ import annotations

import functools
import logging
import shutil
import time
import warnings

import numpy as np
import torch
from torch import nn

from .errors import CompilerError, NotExactError
from .fold import fold_batch_norms, widen_same_kernels

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1)
def compiler_problem() -> str | None:
    """Why ``torch.compile`` (inductor, CPU) cannot run here, or None when it can."""
    if not hasattr(torch, "compile"):
        return f"torch {torch.__version__} has no torch.compile"
    try:
        from torch._inductor import config as inductor_config
    except Exception as error:  # noqa: BLE001 - any import failure means no inductor
        return f"torch inductor is unavailable ({type(error).__name__}: {error})"
    cxx = getattr(inductor_config.cpp, "cxx", (None, "g++"))
    names = [c for c in (cxx if isinstance(cxx, (tuple, list)) else (cxx,)) if c] or ["g++"]
    if not any(shutil.which(name) for name in names):
        return f"no C++ compiler found (inductor looks for {', '.join(names)}; install g++ or set CXX)"
    return None


def eager_folded_model(model: nn.Module, channels_last: bool = True, widen: bool = True) -> nn.Module:
    """The eager (uncompiled) fast form: batch norm folded, depthwise ``SAME`` kernels widened, channels_last.

    A new module; ``model`` is not changed. This is what :func:`fast_inference_model`
    compiles, and what it returns when nothing can be compiled.
    """
    folded = fold_batch_norms(model)
    # Widened depthwise kernels: in eager they save the strided depthwise layers a padded copy
    # (benchmarks/padding.py); compiled, freezing makes the wide kernels constants and the pads
    # disappear from the graph, and the two forms ran level (docs/benchmarks.md, "Choices
    # measured"), so both forms share the one module.
    if widen:
        folded = widen_same_kernels(folded)
    return folded.to(memory_format=torch.channels_last) if channels_last else folded


class FastInferenceModel(nn.Module):
    """A batch-norm-folded, channels_last port, compiled with inductor freezing when a compiler exists.

    Call it like the port: NCHW float32 input of any batch size (4-D inputs are
    converted to channels_last here). Gradients are off. ``compiled`` says which
    form runs; ``compile_seconds`` holds the time each input shape took to
    compile (the first call with that shape).
    """

    def __init__(self, folded: nn.Module, compiled: bool, dynamic: bool = False) -> None:
        super().__init__()
        self.folded = folded
        self.compiled = compiled
        # dynamic=False: one graph per input shape, specialised to it; a new shape
        # recompiles once (seconds). A dynamic batch dimension (mark_dynamic on dim 0)
        # compiled far slower with freezing (docs/benchmarks.md, "Choices measured").
        self._run = torch.compile(folded, dynamic=dynamic) if compiled else folded
        self.compile_seconds: dict[tuple, float] = {}

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if not self.compiled:
            with torch.no_grad():
                return self._run(*_channels_last(inputs))
        key = tuple(tuple(x.shape) for x in inputs if isinstance(x, torch.Tensor))
        # Freezing must be on in the global config while dynamo traces: dynamo reads
        # torch._inductor.config.freezing itself to treat the parameters as constants,
        # and torch.compile(options={"freezing": True}) reaches only inductor, which then
        # gets the weights as graph inputs (no constant folding, no oneDNN weight prepacking).
        from torch._inductor import config as inductor_config

        # One grad state for every call, whatever the caller's, and the channels_last copy
        # made inside it: dynamo guards on both, and a call under torch.inference_mode would
        # otherwise compile the shape a second time.
        with torch.inference_mode(False), torch.no_grad(), inductor_config.patch(freezing=True):
            inputs = _channels_last(inputs)
            if key in self.compile_seconds:
                return self._run(*inputs)
            start = time.perf_counter()
            out = self._run(*inputs)
            self.compile_seconds[key] = time.perf_counter() - start
        log.info("compiled %s for input shape %s in %.1f s", type(self.folded).__name__, key,
                 self.compile_seconds[key])
        return out


def _channels_last(inputs: tuple) -> tuple:
    return tuple(x.contiguous(memory_format=torch.channels_last) if isinstance(x, torch.Tensor) and x.dim() == 4
                 else x for x in inputs)


def fast_inference_model(model: nn.Module, compile: bool | None = None, channels_last: bool = True) -> nn.Module:
    """The fastest form of ``model`` that is exact on this machine (a new module; ``model`` is not changed).

    Batch norm folded into the convolutions (:func:`zoo.fold.fold_batch_norms`),
    depthwise TF ``SAME`` convolutions without a padded copy, channels_last, and
    ``torch.compile`` with inductor freezing (weights become constants, packed
    once for oneDNN, with each convolution's bias, ReLU/ReLU6 and residual add
    fused into it). ``compile=None`` compiles when a C++ compiler works here and
    otherwise warns once and returns the eager folded form; ``True`` requires
    it (:class:`zoo.errors.CompilerError` otherwise); ``False`` never compiles.

    The first call for each input shape compiles (seconds; logged once on the
    ``zoo.fast`` logger); inductor's on-disk cache makes the same compile in a
    later process faster.
    """
    problem = compiler_problem()
    if compile is None:
        compile = problem is None
        if problem is not None:
            warnings.warn(f"zoo.fast_inference_model: running the eager folded form, not compiled: {problem}",
                          stacklevel=2)
    elif compile and problem is not None:
        raise CompilerError(f"torch.compile cannot run here: {problem}")
    return FastInferenceModel(eager_folded_model(model, channels_last), compiled=bool(compile))


def check_fast_matches(fast_output: torch.Tensor, plain_output: torch.Tensor, what: str = "the fast form",
                       tolerance: float = 1e-4) -> float:
    """Max |fast - plain| relative to the output's scale (``max(1, max |plain|)``); raise if above ``tolerance``.

    Raises :class:`zoo.errors.NotExactError` naming both numbers, so a run stops
    before it reports numbers from a form that is not the model.
    """
    # np.array copies: Keras outputs can be read-only arrays, which torch.as_tensor warns about.
    fast_output, plain_output = (t.detach().float().cpu() if isinstance(t, torch.Tensor) else torch.from_numpy(
        np.array(t, dtype=np.float32)) for t in (fast_output, plain_output))
    if fast_output.shape != plain_output.shape:
        raise NotExactError(f"{what} returned shape {tuple(fast_output.shape)}, the model as built "
                            f"{tuple(plain_output.shape)}")
    scale = max(1.0, float(plain_output.abs().max()))
    diff = float((fast_output - plain_output).abs().max()) / scale
    if not diff <= tolerance:
        raise NotExactError(f"{what} differs from the model as built by {diff:.3g} (relative to the output's scale "
                            f"{scale:.3g}), above the tolerance {tolerance:g}; rerun with --plain")
    return diff
