"""The main job on an embedded default: ``python -m zoo.demo``.

With no network and no data download, for every registered model
(``zoo.list_models()``): writes its upstream stand-in (the upstream file
format, random weights of realistic scale), converts it with the model's
converter, and runs the PyTorch and Keras ports against the upstream reference
on the model's real demo inputs (the photos bundled with scikit-image; for
FlowNet2-SD, scikit-image's stereo pair). The references are the stand-ins'
own (``reference_forward``): TensorFlow running the MobileNet-v1 and ResNet-50
frozen graphs, NVIDIA's forward restated for FlowNet2-SD. Prints, per model
and framework: max |diff| against the upstream output, top-1 agreement
(classifiers), and time. The ports run in their fast form (PyTorch:
``zoo.fast_inference_model``, batch norm folded, channels_last and compiled;
Keras: ``zoo.keras.fast``), each checked against the model as built first (a
difference above 1e-4 of the output's scale stops the demo with one error
line); ``--plain`` runs the models as built. The time is a call after the
first (which compiles).

``--weights MODEL=PATH_OR_TAG`` (repeatable) runs a model with real converted
weights instead and prints the top-5 classes of each input of a classifier
(ImageNet index, and the name with ``--labels synset_words.txt``), or the
size of another model's output. ``--layers`` prints the building-block table
instead (``zoo.demo_layers``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .cli import run_cli
from .registry import ModelEntry, get_model_entry, list_models

REFERENCE = "upstream reference"


@dataclass
class Row:
    """One line of the table: a model's output from one source (a port or the reference), in the PyTorch layout."""

    model: str
    source: str  # "torch", "keras" or REFERENCE
    seconds: float
    output: np.ndarray
    # Against the reference (None: this is the reference, or there is none with real weights):
    diff: float | None = None  # max |diff|, scaled as the tolerance is (see _compare)
    agreement: float | None = None  # top-1 agreement, classifiers only
    exact: bool | None = None


def _timed(run: Callable[[], np.ndarray]) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    out = run()
    return out, time.perf_counter() - start


@dataclass
class _Forms:
    """How the ports run: their fast forms (checked against the models as built), or as built."""

    fast: bool
    checks: list[str] = field(default_factory=list)

    def run(self, name: str, framework: str, plain: Callable[[], np.ndarray],
            make_fast: Callable[[], Callable[[], np.ndarray]]) -> tuple[np.ndarray, float]:
        """(output, seconds of one call): the fast form, checked against ``plain`` on the same input, or ``plain``."""
        if not self.fast:
            return _timed(plain)
        from .fast import check_fast_matches

        fast = make_fast()
        first, first_seconds = _timed(fast)  # compiles (torch) or traces (keras)
        what = f"{name} {framework} fast form"
        diff = check_fast_matches(np.array(first), np.array(plain()), what=what)  # writable copies for torch
        self.checks.append(f"fast form checked against the model as built: max |diff| {diff:.2e} relative to the "
                           f"output's scale ({name} {framework}; its first call, compiling, {first_seconds:.1f} s)")
        return _timed(fast)


def _stand_in(entry: ModelEntry, workdir: Path) -> tuple[Path, str]:
    """The model's stand-in upstream file, written into ``workdir``, and its conversion: (upstream file, weights)."""
    upstream = entry.load("standin").write_upstream(workdir, seed=0)
    converted = entry.load("converter")(upstream, workdir / f"{entry.name}.safetensors")
    return Path(upstream), str(converted)


def _torch_output(entry: ModelEntry, model: Any, inputs: np.ndarray, forms: _Forms) -> tuple[np.ndarray, float]:
    """The PyTorch port on ``inputs`` (Keras layout, converted here): (output, seconds)."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(entry.input.convert_layout(inputs, "keras", "torch")))

    def runner(net: Any) -> Callable[[], np.ndarray]:
        def run() -> np.ndarray:
            with torch.inference_mode():
                return net(x).numpy()

        return run

    def make_fast() -> Callable[[], np.ndarray]:
        from .fast import fast_inference_model

        return runner(fast_inference_model(model))

    return forms.run(entry.name, "torch", runner(model), make_fast)


def _keras_output(entry: ModelEntry, model: Any, inputs: np.ndarray, forms: _Forms) -> tuple[np.ndarray, float]:
    """The Keras port on ``inputs``: (output in the PyTorch layout, seconds)."""
    to_torch_layout = entry.output.to_torch_layout

    def make_fast() -> Callable[[], np.ndarray]:
        from .keras.fast import fast_inference_function

        function = fast_inference_function(model)
        return lambda: to_torch_layout(function(inputs))

    return forms.run(entry.name, "keras", lambda: to_torch_layout(model(inputs, training=False)), make_fast)


def _compare(entry: ModelEntry, output: np.ndarray, reference: np.ndarray) -> tuple[float, float | None, bool]:
    """(max |diff| scaled as the tolerance is, top-1 agreement or None, whether the port is exact).

    The scaled diff is ``max |diff| * atol / bound``: the raw diff where the
    tolerance is absolute, relative to the output's scale where it is relative,
    so it compares with the tolerance's ``atol`` as printed.
    """
    tolerance = entry.tolerance
    diff, bound = tolerance.max_diff(output, reference), tolerance.bound(reference)
    agreement = float((output.argmax(1) == reference.argmax(1)).mean()) if entry.is_classifier else None
    exact = diff <= bound and agreement in (None, 1.0)
    return diff * tolerance.atol / bound, agreement, exact


def model_rows(entry: ModelEntry, workdir: Path, weights: str | None, forms: _Forms) -> list[Row]:
    """The model's rows: the upstream reference on its stand-in and both ports, or (real weights) the ports alone."""
    inputs = entry.load("demo_inputs")(entry)
    rows, reference = [], None
    if weights is None:
        upstream, weights = _stand_in(entry, workdir)
        reference_forward = entry.load("standin").reference_forward
        reference, seconds = _timed(lambda: entry.output.to_torch_layout(reference_forward(upstream, inputs)))
        rows.append(Row(entry.name, REFERENCE, seconds, reference))
    torch_model = entry.builder("torch")(weights=weights)
    keras_model = entry.builder("keras")(weights=weights)
    outputs = {"torch": _torch_output(entry, torch_model, inputs, forms),
               "keras": _keras_output(entry, keras_model, inputs, forms)}
    for framework, (output, seconds) in outputs.items():
        row = Row(entry.name, framework, seconds, output)
        if reference is not None:
            row.diff, row.agreement, row.exact = _compare(entry, output, reference)
        rows.append(row)
    return rows


def print_table(rows: list[Row], fast: bool) -> int:
    """Print the parity table and what "exact" means for each model; returns the number of ports that miss it."""
    form = "fast" if fast else "as built"
    width = max([13, *(len(row.model) for row in rows)])
    print(f"ports run {'in their fast form (--plain: as built)' if fast else 'as built (--plain)'}")
    header = (f"{'model':{width}} {'framework':18} {'form':8} {'max |diff| vs upstream':>23} {'top-1 agreement':>16} "
              f"{'time s':>7}  verdict")
    print(header)
    print("-" * len(header))
    for row in rows:
        if row.source == REFERENCE:
            verdict, diff_text, row_form = "reference", "-", "-"
        elif row.diff is None:
            verdict, diff_text, row_form = "real weights", "-", form
        else:
            verdict, diff_text, row_form = ("exact" if row.exact else "FAIL"), f"{row.diff:.2e}", form
        agreement = "-" if row.agreement is None else f"{row.agreement:.0%}"
        print(f"{row.model:{width}} {row.source:18} {row_form:8} {diff_text:>23} {agreement:>16} "
              f"{row.seconds:7.2f}  {verdict}")
    compared = {row.model: len(row.output) for row in rows if row.source == REFERENCE}
    if compared:
        print("\nexact: within the model's parity tolerance of the upstream reference (the max |diff| column is "
              "scaled as the tolerance is) and, for a classifier, the same top-1:")
    for model, count in compared.items():
        entry = get_model_entry(model)
        top1 = ", the same top-1" if entry.is_classifier else ""
        print(f"  {model}: {entry.tolerance.describe()}{top1}, on {count} demo input(s) ({_describe(entry.demo_inputs)})")
    return sum(row.exact is False for row in rows)


def _describe(target: Any) -> str:
    """An importable's ``module:name``."""
    return target if isinstance(target, str) else f"{target.__module__}:{target.__qualname__}"


def _load_labels(path: str | None) -> list[str] | None:
    if path is None:
        return None
    # synset_words.txt: "n01440764 tench, Tinca tinca", in sorted-wnid (label) order.
    return [line.split(" ", 1)[1].split(",")[0] for line in Path(path).read_text().splitlines() if line.strip()]


def print_outputs(rows: list[Row], labels: list[str] | None) -> None:
    """What real weights give: each classifier input's top-5 classes, or the size of another model's output."""
    for row in rows:
        entry = get_model_entry(row.model)
        if not entry.is_classifier:
            magnitude = np.sqrt((row.output**2).sum(1))  # over the channels (PyTorch layout)
            unit = entry.output.unit
            print(f"{row.model} ({row.source}): {entry.output.kind} magnitude mean {magnitude.mean():.2f} {unit}, "
                  f"max {magnitude.max():.2f} {unit}")
            continue
        offset = entry.label_offset
        print(f"{row.model} ({row.source}) top-5, label = output index {offset:+d}:")
        for index, scores in enumerate(row.output):
            top = np.argsort(scores)[::-1][:5] + offset
            names = [f"{i}" + (f" {labels[i]}" if labels and 0 <= i < len(labels) else "") for i in top]
            print(f"  input {index:<4} " + "; ".join(names))


def main(argv: list[str] | None = None) -> int:
    """Print the parity table; exit non-zero if a port misses the tolerance."""
    models = list_models()
    parser = argparse.ArgumentParser(prog="python -m zoo.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--weights", action="append", default=[], metavar="MODEL=PATH_OR_TAG")
    parser.add_argument("--labels", help="synset_words.txt, to print class names with --weights")
    parser.add_argument("--layers", action="store_true", help="print the building-block table instead")
    parser.add_argument("--models", nargs="+", choices=models, default=models, help="models to run (default: all)")
    parser.add_argument("--plain", action="store_true",
                        help="run the ports as built, not in their fast form (batch norm folded, compiled)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.layers:
        from .demo_layers import main as layers_main

        return layers_main()
    try:
        weights = dict(item.split("=", 1) for item in args.weights)
    except ValueError:
        parser.error("--weights takes MODEL=PATH_OR_TAG")
    unknown = set(weights) - set(models)
    if unknown:
        parser.error(f"unknown model(s) in --weights: {', '.join(sorted(unknown))}")
    try:
        import skimage.data  # noqa: F401
        import tensorflow  # noqa: F401
    except ImportError as error:
        print(f"zoo.demo needs the keras and eval extras (TensorFlow, scikit-image): {error}", file=sys.stderr)
        return 2

    forms = _Forms(fast=not args.plain)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="zoo-demo-") as tmp:
        for name in (m for m in models if m in args.models):
            rows += model_rows(get_model_entry(name), Path(tmp), weights.get(name), forms)
    failures = print_table(rows, forms.fast)
    for line in forms.checks:
        print(line)
    if weights:
        print_outputs([row for row in rows if row.model in weights and row.source == "torch"], _load_labels(args.labels))
    return 1 if failures else 0


if __name__ == "__main__":
    run_cli(main)
