"""TensorFlow's ``SAME`` padding rule, one spatial axis at a time.

TF (``tensorflow/core/framework/kernel_shape_util.cc``,
``GetWindowedOutputSizeVerbose``) gives a ``SAME`` window op ``ceil(n / s)``
outputs and pads ``total = max((ceil(n/s) - 1) * s + (k - 1) * d + 1 - n, 0)``
cells, ``total // 2`` before and the rest after: the odd cell goes to the
right/bottom. PyTorch's ``padding=`` is symmetric, so the two agree only when
``total`` is even.
"""

from __future__ import annotations

import functools
import sys

from ..errors import ArgumentError


@functools.lru_cache(maxsize=4096)
def tf_same_pad(in_size: int, kernel_size: int, stride: int = 1, dilation: int = 1) -> tuple[int, int]:
    """Return TF ``SAME`` padding ``(pad_before, pad_after)`` for one spatial axis."""
    if in_size < 0:
        raise ArgumentError(f"in_size must be >= 0, got {in_size}")
    for name, value in (("kernel_size", kernel_size), ("stride", stride), ("dilation", dilation)):
        if value < 1:
            raise ArgumentError(f"{name} must be >= 1, got {value}")
    effective_kernel = (kernel_size - 1) * dilation + 1
    out_size = -(-in_size // stride)  # ceil(n / s)
    total = max((out_size - 1) * stride + effective_kernel - in_size, 0)
    return total // 2, total - total // 2


def tf_same_pad_traceable(in_size: int, kernel_size: int, stride: int = 1, dilation: int = 1) -> tuple[int, int]:
    """:func:`tf_same_pad`, also from code that ``torch.compile`` traces (the PyTorch layers' forwards).

    Dynamo warns on every ``functools.lru_cache``-wrapped call it meets; while
    tracing, the uncached rule computes the same pair from the (static) sizes.
    Torch is looked up, not imported: this module stays framework-free.
    """
    torch = sys.modules.get("torch")
    if torch is not None and torch.compiler.is_compiling():
        return tf_same_pad.__wrapped__(in_size, kernel_size, stride, dilation)
    return tf_same_pad(in_size, kernel_size, stride, dilation)


def tf_same_pad_is_static(kernel_size: int, stride: int = 1, dilation: int = 1) -> bool:
    """Whether ``tf_same_pad`` gives the same padding for every input size.

    With stride 1 the total is always ``(k - 1) * d``; with an effective kernel
    of 1 it is always 0. Otherwise it depends on ``in_size mod stride``.
    """
    return stride == 1 or (kernel_size - 1) * dilation == 0
