"""Top-1/top-5 accuracy of a classifier on preprocessed ImageNet arrays, in one process or across ranks.

* Frameworks (:func:`make_predictor`): ``torch`` and ``keras`` run zoo's ports
  on converted weights; ``tf-upstream`` runs the upstream TensorFlow graph
  itself (MobileNet: the release ``.tgz`` or its frozen ``.pb``, input
  ``input``, logits ``MobilenetV1/Logits/SpatialSqueeze``; ResNet-50:
  ``resnet50_v1.pb``, input ``input_tensor``, logits ``resnet_model/final_dense``).
* Labels: the upstream graphs have 1001 outputs with background at 0, so the
  ImageNet label is ``argmax + label_offset`` (MLPerf's
  ``PostProcessArgMax(offset=-1)`` / ``PostProcessCommon(offset=-1)``).
* Distributed (:func:`evaluate_arrays` under ``torchrun``): rank r takes images
  r, r + N, r + 2N, ... of the val_map; the correct counts are all-reduced and
  the per-image predictions gathered on rank 0, so the report equals a
  single-process run's.
* Fast forms (the default): torch runs :func:`zoo.fast.fast_inference_model`
  (batch norm folded, channels_last, compiled), keras
  :func:`zoo.keras.fast.fast_inference_function`. Each is checked against the
  model as built on its first batch (:func:`first_batch_checked`), and a
  difference above 1e-4 of the output's scale stops the run with
  :class:`zoo.errors.NotExactError`.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..errors import ArgumentError, FormatError, InputShapeError, MissingFileError, UnknownFrameworkError
from ..fileio import atomic_write_bytes
from ..registry import get_model_entry
from .imagenet import ArrayDataset, PrefetchLoader, Progress

__all__ = [
    "DistContext",
    "FRAMEWORKS",
    "FastCheck",
    "TOP_K",
    "Predictor",
    "evaluate_arrays",
    "first_batch_checked",
    "format_summary",
    "init_distributed",
    "keras_fast_function",
    "load_upstream_graph_def",
    "make_predictor",
    "shard_indices",
    "top_k_labels",
    "torch_fast_model",
    "write_report",
]

FRAMEWORKS = ("torch", "keras", "tf-upstream")
TOP_K = 5
REPORT_FORMAT = "zoo-accuracy-report/1"


# --- frameworks ------------------------------------------------------------------------

@dataclass
class FastCheck:
    """The check of a fast form against the model as built, done on the form's first batch.

    ``max_diff`` is max |fast - plain| relative to the output's scale
    (:func:`zoo.fast.check_fast_matches`), None until the first batch ran.
    """

    what: str
    tolerance: float = 1e-4
    max_diff: float | None = None
    batch: int | None = None

    def line(self) -> str:
        """The line the scripts print: ``fast form checked against the model as built: max |diff| ...``."""
        if self.max_diff is None:
            return f"{self.what}: not checked yet (no batch ran)"
        return (f"fast form checked against the model as built: max |diff| {self.max_diff:.2e} relative to the "
                f"output's scale (tolerance {self.tolerance:g}) on a first batch of {self.batch} ({self.what})")

    def as_dict(self) -> dict:
        """The check for a JSON report."""
        return {"what": self.what, "max_diff": self.max_diff, "tolerance": self.tolerance, "batch": self.batch}


def first_batch_checked(fast: Callable[[np.ndarray], np.ndarray], plain: Callable[[np.ndarray], np.ndarray],
                        check: FastCheck, count: Callable[[np.ndarray], int] = len) -> Callable[[np.ndarray], np.ndarray]:
    """``fast``, but its first call also runs ``plain`` on the same batch and compares the two.

    A difference above ``check.tolerance`` raises :class:`zoo.errors.NotExactError`
    (every later call raises it again, so no number comes from an unchecked
    form); otherwise ``check`` records it and ``plain`` is dropped, freeing the
    model as built. ``count(batch)``: the samples in a batch, for the report.
    """
    from ..fast import check_fast_matches

    state: dict = {"plain": plain, "error": None}
    lock = threading.Lock()  # the MLPerf SUT may call from worker threads

    def run(batch: np.ndarray) -> np.ndarray:
        if state["plain"] is None and state["error"] is None:
            return fast(batch)
        with lock:
            if state["error"] is not None:
                raise state["error"]
            out = fast(batch)
            if state["plain"] is not None:
                try:
                    check.max_diff = check_fast_matches(out, state["plain"](batch),
                                                        what=check.what, tolerance=check.tolerance)
                except Exception as error:
                    state["error"] = error
                    raise
                check.batch = count(batch)
                state["plain"] = None
            return out

    return run


def torch_fast_model(net):
    """:func:`zoo.fast.fast_inference_model` of ``net`` (a new module; ``net`` is left as built)."""
    from ..fast import fast_inference_model

    return fast_inference_model(net)


def keras_fast_function(net) -> Callable:
    """``net``'s fast form: :func:`zoo.keras.fast.fast_inference_function` (NHWC float32 in, a tensor out)."""
    from ..keras.fast import fast_inference_function

    return fast_inference_function(net)


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
        """Logits of ``batch`` (given in ``batch_layout``), transposed to this framework's layout first."""
        if batch_layout != self.layout:
            batch = batch.transpose(0, 3, 1, 2) if self.layout == "NCHW" else batch.transpose(0, 2, 3, 1)
        return np.asarray(self.run(np.ascontiguousarray(batch, dtype=np.float32)))


def _upstream_module(model: str):
    """The model's spec, which names the upstream graph's input and logits nodes."""
    if model == "mobilenet_v1":
        from ..specs import mobilenet_v1 as module
    elif model == "resnet50":
        from ..specs import resnet50 as module
    else:
        raise ArgumentError(f"no upstream TensorFlow graph for {model!r}")
    return module


def load_upstream_graph_def(model: str, path: str | os.PathLike) -> "object":
    """The upstream frozen GraphDef: from a ``.pb``, or (MobileNet) the release ``.tgz``'s ``*_frozen.pb`` member."""
    import tarfile

    import tensorflow as tf

    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such upstream file")
    where = str(path)
    if tarfile.is_tarfile(path):
        # Only the *_frozen.pb member is read, bounded (zoo.convert.archive); nothing is unpacked.
        from ..convert.archive import read_member_bytes
        from ..convert.tf_common import member_bounds
        from ..specs.common import torch_shapes

        bound = member_bounds(model, torch_shapes(_upstream_module(model).TABLE))[0]
        member, data = read_member_bytes(path, "*_frozen.pb", bound)
        where = f"{path}: member {member}"
    else:
        data = path.read_bytes()
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(data)
    except Exception as error:  # protobuf's DecodeError
        raise FormatError(f"{where}: not a binary GraphDef ({error})") from None
    module = _upstream_module(model)
    names = {node.name for node in graph_def.node}
    for node in (module.INPUT_NODE, module.LOGITS_NODE):
        if node not in names:
            raise FormatError(f"{path}: the graph has no node {node!r}; is it the upstream {model} graph?")
    return graph_def


def _upstream_runner(model: str, path: str | os.PathLike) -> Callable[[np.ndarray], np.ndarray]:
    """A session on the upstream graph, imported once, feeding its input node and fetching its logits."""
    import tensorflow as tf

    module = _upstream_module(model)
    graph_def = load_upstream_graph_def(model, path)
    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
    session = tf.compat.v1.Session(graph=graph)
    fetch, feed = f"{module.LOGITS_NODE}:0", f"{module.INPUT_NODE}:0"
    return lambda batch: session.run(fetch, {feed: batch})


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
        return Predictor(framework, "NHWC", _upstream_runner(model, upstream))
    if weights is None:
        raise ArgumentError(f"--framework {framework} needs --weights (a converted .safetensors file or a tag)")
    if framework == "torch":
        import torch

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        net = entry.load("torch_builder")(weights=weights).eval().to(device)

        def runner(module: "torch.nn.Module") -> Callable[[np.ndarray], np.ndarray]:
            def run(batch: np.ndarray) -> np.ndarray:
                with torch.inference_mode():
                    return module(torch.from_numpy(batch).to(device)).float().cpu().numpy()
            return run

        if not fast:
            return Predictor(framework, "NCHW", runner(net))
        check = FastCheck("torch: zoo.fast_inference_model")
        return Predictor(framework, "NCHW", first_batch_checked(runner(torch_fast_model(net)), runner(net), check),
                         check)
    if framework == "keras":
        net = entry.load("keras_builder")(weights=weights)

        def plain(batch: np.ndarray) -> np.ndarray:
            return np.asarray(net(batch, training=False))

        if not fast:
            return Predictor(framework, "NHWC", plain)
        function = keras_fast_function(net)
        check = FastCheck("keras: zoo.keras.fast.fast_inference_function")
        return Predictor(framework, "NHWC", first_batch_checked(lambda batch: np.asarray(function(batch)), plain, check),
                         check)
    raise UnknownFrameworkError(f"unknown framework {framework!r}; known: {', '.join(FRAMEWORKS)}")


# --- scoring ---------------------------------------------------------------------------

def top_k_labels(logits: np.ndarray, label_offset: int, k: int = TOP_K) -> np.ndarray:
    """(B, k) ImageNet labels of the k largest logits, best first: class index + ``label_offset``.

    Ties go to the lower class index, as ``np.argmax`` (MLPerf's post-processing) does.
    """
    logits = np.asarray(logits)
    if logits.ndim != 2:
        raise InputShapeError(f"logits must be (batch, classes), got shape {logits.shape}")
    order = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return order + label_offset


# --- distribution ----------------------------------------------------------------------

@dataclass
class DistContext:
    """This process's place in a ``torchrun`` job (rank 0 of 1 when run alone)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that prints and writes the report."""
        return self.rank == 0


def init_distributed(use_cuda: bool = False) -> DistContext:
    """Join the ``torchrun`` process group when ``WORLD_SIZE`` > 1 (NCCL with ``use_cuda``, else gloo)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    import torch
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, backend)


def shard_indices(count: int, rank: int, world_size: int) -> list[int]:
    """The indices rank ``rank`` of ``world_size`` evaluates: rank, rank + N, rank + 2N, ..."""
    return list(range(rank, count, world_size))


def _all_reduce_counts(counts: np.ndarray, device: str) -> np.ndarray:
    import torch
    import torch.distributed as dist

    tensor = torch.from_numpy(counts.astype(np.int64)).to(device)
    dist.all_reduce(tensor)
    return tensor.cpu().numpy()


# --- the evaluation --------------------------------------------------------------------

def _score(top5: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """[top-1 correct, top-5 correct, count] of (N, 5) predictions against (N,) labels."""
    return np.array([int((top5[:, 0] == labels).sum()), int((top5 == labels[:, None]).any(1).sum()), len(labels)])


def _metric(correct: int, count: int) -> dict:
    return {"correct": int(correct), "percent": 100.0 * correct / count if count else 0.0}


def evaluate_arrays(
    model: str,
    dataset: ArrayDataset,
    predictors: Sequence[Predictor],
    batch_size: int = 32,
    ctx: DistContext | None = None,
    progress: bool = True,
    info: dict | None = None,
) -> dict | None:
    """Evaluate ``predictors`` (the first is the main one, a second is compared) on ``dataset``.

    Returns the report (see :func:`format_summary`) on rank 0, None on other
    ranks. ``info`` is copied into the report (weights, val_map, upstream file, ...).
    """
    ctx = ctx or DistContext()
    entry = get_model_entry(model)
    indices = shard_indices(len(dataset), ctx.rank, ctx.world_size)
    loader = PrefetchLoader(dataset, indices, batch_size)
    bar = Progress(len(indices), f"{model} {'+'.join(p.framework for p in predictors)}",
                   enabled=progress and ctx.is_main)
    # Per framework: top-5 labels per dataset index.
    local: list[dict[int, list[int]]] = [{} for _ in predictors]
    try:
        for batch_indices, batch in loader:
            for store, predictor in zip(local, predictors):
                top5 = top_k_labels(predictor(batch, dataset.layout), entry.label_offset)
                store.update(zip(batch_indices, top5.tolist()))
            bar.update(len(batch_indices))
    finally:
        bar.close()
    results = local
    if ctx.world_size > 1:
        import torch.distributed as dist

        device = f"cuda:{ctx.local_rank}" if ctx.backend == "nccl" else "cpu"
        counts = np.stack([_score(np.array([s[i] for i in sorted(s)], dtype=np.int64).reshape(-1, TOP_K),
                                  dataset.labels[sorted(s)]) for s in local])
        counts = _all_reduce_counts(counts, device)
        gathered: list | None = [None] * ctx.world_size if ctx.is_main else None
        dist.gather_object(local, gathered, dst=0)
        if not ctx.is_main:
            return None
        results = [{} for _ in predictors]
        for part in gathered:
            for store, piece in zip(results, part):
                store.update(piece)
        if any(len(s) != len(dataset) for s in results) or int(counts[0, 2]) != len(dataset):
            raise RuntimeError(f"the ranks evaluated {int(counts[0, 2])} of {len(dataset)} images")
    return _report(model, dataset, predictors, results, ctx, info or {}, batch_size)


def _report(model: str, dataset: ArrayDataset, predictors: Sequence[Predictor],
            results: list[dict[int, list[int]]], ctx: DistContext, info: dict, batch_size: int) -> dict:
    entry = get_model_entry(model)
    labels = dataset.labels
    names = [e.image for e in dataset.entries]
    sections = []
    for predictor, store in zip(predictors, results):
        top5 = np.array([store[i] for i in range(len(dataset))], dtype=np.int64).reshape(-1, TOP_K)
        top1_correct, top5_correct, count = _score(top5, labels)
        sections.append({
            "framework": predictor.framework,
            "fast_check": None if predictor.fast_check is None else predictor.fast_check.as_dict(),
            "count": int(count),
            "top1": _metric(top1_correct, count),
            "top5": _metric(top5_correct, count),
            "predictions": {name: {"label": int(label), "top5": row}
                            for name, label, row in zip(names, labels.tolist(), top5.tolist())},
        })
    main = sections[0]
    reference = entry.reference_metric.get("top1")
    report = {
        "format": REPORT_FORMAT,
        "model": model,
        **{k: (str(v) if isinstance(v, os.PathLike) else v) for k, v in info.items()},
        "arrays": str(dataset.directory),
        "layout": dataset.layout,
        "label_offset": entry.label_offset,
        "batch_size": batch_size,
        "world_size": ctx.world_size,
        "missing": dataset.missing,
        "reference": {"top1": reference, "dataset": entry.reference_metric.get("dataset"),
                      "source": entry.reference_metric.get("source")},
        "top1_difference": None if reference is None else main["top1"]["percent"] - reference,
        **main,
    }
    if len(sections) > 1:
        other = sections[1]
        disagreements = [
            {"image": name, "label": main["predictions"][name]["label"],
             main["framework"]: main["predictions"][name]["top5"][0],
             other["framework"]: other["predictions"][name]["top5"][0]}
            for name in names
            if main["predictions"][name]["top5"][0] != other["predictions"][name]["top5"][0]
        ]
        report["compare"] = {**other, "top1_disagreements": disagreements}
    return report


def format_summary(report: dict) -> str:
    """The lines the CLI prints: top-1 and top-5 with the count, the MLPerf reference and the difference."""

    def line(section: dict) -> str:
        count = section["count"]
        return (f"{report['model']} ({section['framework']}) on {count} images: "
                f"top-1 {section['top1']['percent']:.3f}% ({section['top1']['correct']}/{count}), "
                f"top-5 {section['top5']['percent']:.3f}% ({section['top5']['correct']}/{count})")

    def check_line(section: dict) -> str | None:
        check = section.get("fast_check")
        if not check or check.get("max_diff") is None:
            return None
        return FastCheck(**check).line()

    lines = [line(report)]
    lines += [text for text in (check_line(report), check_line(report.get("compare", {}))) if text]
    if report["missing"]:
        lines.append(f"left out: {len(report['missing'])} images of the val_map with no array (--skip-missing)")
    reference = report["reference"]["top1"]
    if reference is not None:
        lines.append(f"MLPerf reference top-1 {reference:.3f}% ({report['reference']['dataset']}); "
                     f"difference {report['top1_difference']:+.3f} points")
    if "compare" in report:
        cmp = report["compare"]
        lines.append(line(cmp))
        bad = cmp["top1_disagreements"]
        lines.append(f"top-1 disagreements {report['framework']} vs {cmp['framework']}: {len(bad)}"
                     + (" (expected: none)" if bad else ""))
        for item in bad[:20]:
            lines.append(f"  {item['image']}: label {item['label']}, {report['framework']} "
                         f"{item[report['framework']]}, {cmp['framework']} {item[cmp['framework']]}")
        if len(bad) > 20:
            lines.append(f"  ... and {len(bad) - 20} more (all in the report)")
    return "\n".join(lines)


def write_report(path: str | os.PathLike, report: dict) -> Path:
    """Write ``report`` as JSON (to a temporary name, then renamed). Returns the path."""
    return atomic_write_bytes(path, (json.dumps(report, indent=1) + "\n").encode())
