"""The types of a registry entry: what generic code may know about a model, as data.

A :class:`ModelEntry` holds the model's code by import path (``"module:attribute"``)
or as the object itself, so reading the registry imports neither a framework
nor the models; :meth:`ModelEntry.load` imports on use.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Union

import numpy as np

from ..errors import ArgumentError, InputShapeError, ManifestError

_SHA256 = re.compile(r"[0-9a-f]{64}")
_MD5 = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class RemoteFile:
    """A file the hub can download: name, URLs in the order to try, and what it must hash to.

    ``citation`` names the source of each fact (keys ``urls``, ``size``,
    ``sha256``, ``md5``). Invalid values raise :class:`~zoo.errors.ManifestError`.
    """

    file: str | None
    urls: tuple[str, ...] = ()
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None
    citation: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "urls", tuple(self.urls))
        name, urls, size, sha256, md5 = self.file, self.urls, self.size, self.sha256, self.md5
        if name is not None and (not isinstance(name, str) or not name or "/" in name or "\\" in name):
            raise ManifestError(f"file must be a bare file name, got {name!r}")
        if not all(isinstance(u, str) and u.startswith(("http://", "https://")) for u in urls):
            raise ManifestError(f"urls must be a list of http(s) URLs, got {list(urls)!r}")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size <= 0):
            raise ManifestError(f"size must be a positive integer or null, got {size!r}")
        if sha256 is not None and not (isinstance(sha256, str) and _SHA256.fullmatch(sha256)):
            raise ManifestError(f"sha256 must be 64 lowercase hex digits or null, got {sha256!r}")
        if md5 is not None and not (isinstance(md5, str) and _MD5.fullmatch(md5)):
            raise ManifestError(f"md5 must be 32 lowercase hex digits or null, got {md5!r}")

    @property
    def verifiable(self) -> bool:
        """Whether a published checksum pins the file's bytes."""
        return bool(self.sha256 or self.md5)

    def describe(self) -> str:
        """``"<file> (<size> bytes, sha256 <hex>)"``, with what is known of size and checksum."""
        size = f"{self.size} bytes" if self.size is not None else "size unpublished"
        if self.sha256:
            checksum = f"sha256 {self.sha256}"
        elif self.md5:
            checksum = f"md5 {self.md5}"
        else:
            checksum = "no published checksum"
        return f"{self.file} ({size}, {checksum})"


@dataclass(frozen=True)
class WeightsTag:
    """One weights tag of a model (``zoo.<builder>(weights="<tag>")``): the upstream release it converts."""

    tag: str
    upstream: RemoteFile
    description: str = ""




FRAMEWORKS = ("torch", "keras")

# An object, or where to import it from: "package.module:attribute".
Importable = Union[str, Callable[..., Any]]


def load_importable(target: Importable) -> Any:
    """``target`` itself, or the object its ``"module:attribute"`` path names (imported now)."""
    if not isinstance(target, str):
        return target
    module, _, name = target.partition(":")
    obj = importlib.import_module(module)
    return getattr(obj, name) if name else obj


def transpose_layout(x: Any, source: str, target: str) -> Any:
    """``x`` in axis letters ``source`` (e.g. ``"NHWC"``) rearranged into ``target`` (e.g. ``"NCHW"``).

    Arrays are transposed, tensors (anything with ``permute``) permuted; ``x`` comes back as it is
    when the layouts agree.
    """
    order = tuple(source.index(axis) for axis in target)
    if order == tuple(range(len(order))):
        return x
    return x.permute(*order) if hasattr(x, "permute") else np.transpose(x, order)


@dataclass(frozen=True)
class InputSpec:
    """What a model takes: layout per framework, size rules, value range, and how to make a valid example.

    Layouts are axis letters: ``N`` batch, ``C`` channels, ``F`` frames (a
    stack of images, e.g. an image pair), ``H``, ``W``. ``value_range`` is the
    range a preprocessed input lies in; :meth:`example` draws uniformly from it.
    """

    torch_layout: str
    keras_layout: str
    default_size: tuple[int, int]
    value_range: tuple[float, float]
    channels: int = 3
    frames: int = 1
    min_size: int = 1
    size_multiple: int = 1
    dtype: str = "float32"
    description: str = ""

    def __post_init__(self) -> None:
        for layout in (self.torch_layout, self.keras_layout):
            if sorted(layout) != sorted(self.torch_layout) or not set("NCHW") <= set(layout) <= set("NCFHW"):
                raise ManifestError(f"layouts must be the same axis letters from NCFHW, got "
                                    f"{self.torch_layout!r} and {self.keras_layout!r}")

    def layout(self, framework: str) -> str:
        """The axis letters of ``framework``'s input (``"torch"`` or ``"keras"``)."""
        if framework not in FRAMEWORKS:
            raise ArgumentError(f"unknown framework {framework!r}; known: {', '.join(FRAMEWORKS)}")
        return self.torch_layout if framework == "torch" else self.keras_layout

    def check_size(self, height: int, width: int) -> None:
        """Raise :class:`~zoo.errors.InputShapeError` unless (height, width) meets the minimum and multiple."""
        if min(height, width) < self.min_size:
            raise InputShapeError(f"H and W must be >= {self.min_size}, got {height}x{width}")
        if height % self.size_multiple or width % self.size_multiple:
            raise InputShapeError(f"H and W must be multiples of {self.size_multiple}, got {height}x{width}")

    def shape(self, framework: str = "torch", batch: int = 1, size: tuple[int, int] | None = None) -> tuple[int, ...]:
        """The input shape in ``framework``'s layout at ``batch`` and ``size`` (default :attr:`default_size`)."""
        height, width = size or self.default_size
        extent = {"N": batch, "C": self.channels, "F": self.frames, "H": height, "W": width}
        return tuple(extent[axis] for axis in self.layout(framework))

    def example(self, batch: int = 1, size: tuple[int, int] | None = None, seed: int = 0,
                framework: str = "torch") -> np.ndarray:
        """A random valid input: float32, uniform in :attr:`value_range`, in ``framework``'s layout.

        Raises :class:`~zoo.errors.InputShapeError` for a size the model does not take.
        """
        height, width = size or self.default_size
        self.check_size(height, width)
        low, high = self.value_range
        values = np.random.default_rng(seed).random(self.shape(framework, batch, (height, width)), dtype=np.float32)
        return (values * np.float32(high - low) + np.float32(low)).astype(self.dtype)

    def convert_layout(self, x: Any, source: str, target: str) -> Any:
        """``x`` (an array or tensor with ``permute``/``transpose``) from ``source``'s layout to ``target``'s."""
        return transpose_layout(x, self.layout(source), self.layout(target))


@dataclass(frozen=True)
class ClassifierOutput:
    """A classifier's output: (B, num_classes) logits in both frameworks; ImageNet label = index + label_offset."""

    num_classes: int
    label_offset: int = 0
    categories: str = ""
    kind: str = "classifier"

    def to_torch_layout(self, keras_output: Any) -> np.ndarray:
        """A Keras output as PyTorch's: logits are (B, num_classes) in both."""
        return np.asarray(keras_output)

    def to_keras_layout(self, torch_output: Any) -> np.ndarray:
        """A PyTorch output as Keras': logits are (B, num_classes) in both."""
        return np.asarray(torch_output)


@dataclass(frozen=True)
class FlowOutput:
    """An optical-flow output: ``channels`` displacement maps in ``unit``, (B, C, H, W) in PyTorch, (B, H, W, C) in Keras."""

    channels: int = 2
    unit: str = "pixels"
    kind: str = "flow"

    def to_torch_layout(self, keras_output: Any) -> np.ndarray:
        """A Keras (B, H, W, C) output as PyTorch's (B, C, H, W)."""
        return np.asarray(keras_output).transpose(0, 3, 1, 2)

    def to_keras_layout(self, torch_output: Any) -> np.ndarray:
        """A PyTorch (B, C, H, W) output as Keras' (B, H, W, C)."""
        return np.asarray(torch_output).transpose(0, 2, 3, 1)


@dataclass(frozen=True)
class ParityTolerance:
    """The bar a port meets against its upstream reference: max |ours - reference| <= :meth:`bound`.

    ``bound = atol * max(1, max |reference| / relative_beyond)``: absolute for
    outputs up to ``relative_beyond`` in size, relative to the output's scale
    beyond (``relative_beyond=None``: always absolute).
    """

    atol: float
    relative_beyond: float | None = None
    unit: str = ""

    def bound(self, reference: Any) -> float:
        """The largest allowed max |diff| against ``reference``."""
        if self.relative_beyond is None:
            return self.atol
        return self.atol * max(1.0, float(np.abs(np.asarray(reference)).max()) / self.relative_beyond)

    def max_diff(self, ours: Any, reference: Any) -> float:
        """max |ours - reference| (shapes must match)."""
        ours, reference = np.asarray(ours, dtype=np.float64), np.asarray(reference, dtype=np.float64)
        if ours.shape != reference.shape:
            raise InputShapeError(f"output shape {ours.shape} differs from the reference's {reference.shape}")
        return float(np.abs(ours - reference).max())

    def describe(self) -> str:
        """E.g. ``"1e-4 (relative to the output's scale beyond 10)"`` or ``"1e-3 pixels"``."""
        text = f"{self.atol:g}" + (f" {self.unit}" if self.unit else "")
        if self.relative_beyond is not None:
            text += f" (relative to the output's scale beyond {self.relative_beyond:g})"
        return text


@dataclass(frozen=True)
class OnnxNames:
    """The input and output names of the exported ONNX graph."""

    input: str = "input"
    output: str = "output"


@dataclass(frozen=True)
class UpstreamGraph:
    """Where the upstream TensorFlow frozen graph is and what its input and logits nodes are called.

    ``frozen_member``: the archive member holding the graph when the release is
    an archive; ``None`` when the release file is the ``.pb`` itself.
    """

    input_node: str
    logits_node: str
    frozen_member: str | None = None


@dataclass(frozen=True)
class MLPerfSpec:
    """How MLPerf Inference names and feeds the model.

    ``model_name``: the name mlperf.conf keys on; ``dataset``: the main.py
    dataset (it names the preprocessed-array cache); ``preprocessing_function``:
    the dataset.py function zoo's preprocessing restates; ``image_size``: the
    preprocessed arrays' height and width; ``performance_sample_count``:
    mlperf.conf's ``performance_sample_count_override``.
    """

    model_name: str
    dataset: str
    preprocessing_function: str
    image_size: int = 224
    # mlperf.conf's performance_sample_count_override: how many samples LoadGen keeps loaded.
    performance_sample_count: int = 1024
    citation: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BenchmarkSpec:
    """What the benchmarks run: batch sizes (full and quick runs), input sizes, and the unit of a sample."""

    batch_sizes: tuple[int, ...]
    quick_batch_sizes: tuple[int, ...]
    quick_size: tuple[int, int] | None = None  # None: the input's default size
    sample: str = "image"
    published_gflop: float | None = None  # per sample, for the cross-check of counted FLOPs
    # Goals for the fastest exact PyTorch form's speed over the upstream's, at the smallest and largest batch.
    speedup_goals: tuple[float, float] | None = None
    # Goal for the fastest exact mode's share of the machine's fp32 matmul ceiling at the largest batch.
    ceiling_fraction_goal: float | None = None
    # Samples in the one query of the MLPerf LoadGen Offline row (full run).
    loadgen_offline_samples: int = 64
    citation: Mapping[str, str] = field(default_factory=dict)

    @property
    def unit(self) -> str:
        """Throughput unit, e.g. ``"img/s"``."""
        return {"image": "img/s", "pair": "pairs/s"}.get(self.sample, f"{self.sample}s/s")


@dataclass(frozen=True)
class ModelEntry:
    """Everything generic code knows about one model; see ``docs/adding-a-model.md``.

    Code is given as an :data:`Importable` (the object or ``"module:attribute"``):

    - ``torch_builder``/``keras_builder``: ``builder(weights=None, **kwargs)``.
    - ``converter``: ``convert(upstream_file, out_path) -> Path`` (a ``.safetensors`` file).
    - ``standin``: a module (or object) with ``write_upstream(folder, seed=0) -> Path``
      (a stand-in of the upstream release in its exact format) and
      ``reference_forward(upstream_file, batch) -> ndarray`` (the upstream
      computation on a batch in the Keras layout, output in the Keras layout); optionally
      ``reference_runner(upstream_file) -> run(batch)``, which reads the file once (the benchmarks time it).
    - ``name_table``: the model's name table (:mod:`zoo.specs`).
    - ``preprocessing``: ``preprocess(image_bgr) -> ndarray`` in the Keras layout, or ``None``.
    - ``demo_inputs``: ``demo_inputs(entry) -> ndarray``, real inputs in the Keras layout.
    - ``graph_expectations``: ``expectations(name_map) -> GraphExpectations`` for
      the upstream TF graph check (:mod:`zoo.convert.graph_check`), or ``None``.
    """

    name: str
    torch_builder: Importable
    keras_builder: Importable
    converter: Importable
    standin: Importable
    name_table: Importable
    upstream: str
    input: InputSpec
    output: ClassifierOutput | FlowOutput
    tolerance: ParityTolerance
    onnx: OnnxNames = OnnxNames()
    benchmark: BenchmarkSpec | None = None
    preprocessing: Importable | None = None
    demo_inputs: Importable | None = None
    graph_expectations: Importable | None = None
    upstream_graph: UpstreamGraph | None = None
    mlperf: MLPerfSpec | None = None
    reference_metric: dict[str, Any] = field(default_factory=dict)
    weights: tuple[WeightsTag, ...] = ()
    # {PyTorch key: the tensor's name in another upstream format} (e.g. a Caffe blob), printed as an
    # extra column by ``scripts/convert.py --names``; None: the upstream names are the only ones.
    alternate_names: Mapping[str, str] | Importable | None = None
    # Sources of facts above that are not in their own objects (e.g. "preprocessing", "label_offset").
    citation: Mapping[str, str] = field(default_factory=dict)

    def load(self, attribute: str) -> Any:
        """The object ``attribute`` (e.g. ``"converter"``) holds, imported if given by path."""
        target = getattr(self, attribute)
        if target is None:
            raise ArgumentError(f"model {self.name!r} has no {attribute}")
        return load_importable(target)

    def builder(self, framework: str) -> Callable[..., Any]:
        """The ``"torch"`` or ``"keras"`` builder."""
        if framework not in FRAMEWORKS:
            raise ArgumentError(f"unknown framework {framework!r}; known: {', '.join(FRAMEWORKS)}")
        return self.load(f"{framework}_builder")

    def builder_name(self, framework: str) -> str:
        """The builder's function name (``zoo.<name>``, ``zoo.keras.<name>``)."""
        target = getattr(self, f"{framework}_builder")
        return target.partition(":")[2] if isinstance(target, str) else target.__name__

    @property
    def is_classifier(self) -> bool:
        return isinstance(self.output, ClassifierOutput)

    @property
    def num_classes(self) -> int | None:
        """Number of classes (None: not a classifier)."""
        return self.output.num_classes if self.is_classifier else None

    @property
    def label_offset(self) -> int:
        """ImageNet label = output index + label_offset (0 for a model that is not a classifier)."""
        return self.output.label_offset if self.is_classifier else 0

    @property
    def categories(self) -> str:
        """What the outputs mean, in words."""
        if self.is_classifier:
            return self.output.categories
        return f"not a classifier: {self.output.channels} channels of optical flow (x, y displacement in {self.output.unit})"

    @property
    def tags(self) -> list[str]:
        """The weights tags, default first."""
        return [w.tag for w in self.weights]

    def weights_tag(self, tag: str) -> WeightsTag:
        """The :class:`WeightsTag` ``tag``; the error lists the model's tags."""
        for weights in self.weights:
            if weights.tag == tag:
                return weights
        known = f"its tags: {', '.join(self.tags)}" if self.weights else "it has no weights tags"
        raise ManifestError(f"no weights tag {tag!r} for model {self.name!r} ({known})")
