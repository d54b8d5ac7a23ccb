"""The main job on an embedded default: ``python -m zoo.demo``.

With no network and no data download: writes the upstream stand-ins of all
three models (upstream file formats, random weights of realistic scale),
converts them with zoo's converters, and runs the PyTorch and Keras ports
against the upstream reference on the real photos bundled with scikit-image.
Prints, per model and framework: max |diff| against the upstream output,
top-1 agreement (classifiers), and time. The ports run in their fast form
(PyTorch: ``zoo.fast_inference_model``, batch norm folded, channels_last and
compiled; Keras: ``zoo.keras.fast``), each checked against the model as built
first (a difference above 1e-4 of the output's scale stops the demo with one
error line); ``--plain`` runs the models as built. The time is a call after
the first (which compiles). The references: TensorFlow running
the MobileNet-v1 and ResNet-50 frozen graphs; for FlowNet2-SD, NVIDIA's forward
restated on the checkpoint (``zoo.standins.flownet2_sd.nvidia_forward``).

``--weights MODEL=PATH_OR_TAG`` (repeatable) runs a model with real converted
weights instead and prints the top-5 classes of each photo (ImageNet index,
and the name with ``--labels synset_words.txt``). ``--layers`` prints the
building-block table instead (``zoo.demo_layers``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .cli import run_cli

MODELS = ("mobilenet_v1", "resnet50", "flownet2_sd")
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")
LOGIT_TOL = 1e-4  # fp32 parity on logits, relative to their scale beyond 10
FLOW_TOL = 1e-3  # pixels


def _timed(run: Callable[[], np.ndarray]) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    out = run()
    return out, time.perf_counter() - start


def _photos_bgr() -> list[np.ndarray]:
    import skimage.data

    # skimage gives RGB; MLPerf's preprocessing starts from cv2.imread's BGR.
    return [np.ascontiguousarray(getattr(skimage.data, name)()[..., ::-1]) for name in PHOTOS]


def _torch_run(model, x_nhwc: np.ndarray) -> Callable[[], np.ndarray]:
    import torch

    def run() -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2)))).numpy()

    return run


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


def _torch_fast(model, x_nhwc: np.ndarray) -> Callable[[], Callable[[], np.ndarray]]:
    def make() -> Callable[[], np.ndarray]:
        from .eval.accuracy import torch_fast_model

        return _torch_run(torch_fast_model(model), x_nhwc)

    return make


def _keras_fast(model, x: np.ndarray, output: Callable[[np.ndarray], np.ndarray] = np.asarray
                ) -> Callable[[], Callable[[], np.ndarray]]:
    def make() -> Callable[[], np.ndarray]:
        from .eval.accuracy import keras_fast_function

        function = keras_fast_function(model)
        return lambda: output(np.asarray(function(x)))

    return make


def _classifier_rows(name: str, workdir: Path, weights: str | None, forms: _Forms) -> list[tuple]:
    from zoo.registry import get_model_entry

    entry = get_model_entry(name)
    x = np.stack([entry.load("preprocessing")(image) for image in _photos_bgr()])
    reference, ref_time = None, 0.0
    if weights is None:  # the stand-in release, converted, and TensorFlow running its frozen graph
        import tensorflow as tf

        if name == "mobilenet_v1":
            import tarfile

            from zoo.specs.mobilenet_v1 import FROZEN_MEMBER
            from zoo.standins import mobilenet_v1 as upstream

            source = upstream.write_release(workdir, seed=0)
            with tarfile.open(source) as tar:
                frozen = tar.extractfile(FROZEN_MEMBER).read()
        else:
            from zoo.standins import resnet50 as upstream

            source = upstream.write_frozen_pb(workdir / "resnet50_v1.pb", seed=0)
            frozen = source.read_bytes()
        weights = str(entry.load("converter")(source, workdir / f"{name}.safetensors"))
        graph = tf.compat.v1.GraphDef()
        graph.ParseFromString(frozen)
        reference, ref_time = _timed(lambda: upstream.run_graph(graph, x))
    torch_model = entry.load("torch_builder")(weights=weights).eval()
    keras_model = entry.load("keras_builder")(weights=weights)
    outputs = {
        "torch": forms.run(name, "torch", _torch_run(torch_model, x), _torch_fast(torch_model, x)),
        "keras": forms.run(name, "keras", lambda: np.asarray(keras_model(x, training=False)), _keras_fast(keras_model, x)),
    }
    if reference is None:
        return [(name, "torch", None, None, outputs["torch"][1], outputs["torch"][0], entry.label_offset)]
    rows = [(name, "upstream TF graph", 0.0, 1.0, ref_time, reference, entry.label_offset)]
    for framework, (logits, seconds) in outputs.items():
        diff = float(np.abs(logits - reference).max()) / max(1.0, float(np.abs(reference).max()) / 10)
        agreement = float((logits.argmax(1) == reference.argmax(1)).mean())
        rows.append((name, framework, diff, agreement, seconds, logits, entry.label_offset))
    return rows


def _flownet_rows(workdir: Path, weights: str | None, forms: _Forms) -> list[tuple]:
    import skimage.data
    import torch

    import zoo
    from zoo.convert.flownet2_sd import convert
    from zoo.standins.flownet2_sd import nvidia_forward, write_checkpoint

    left, right, _ = skimage.data.stereo_motorcycle()
    pair = np.stack([left[58:442, 50:690], right[58:442, 50:690]]).astype(np.float32)[None]  # (1, 2, H, W, 3)
    frames = torch.from_numpy(np.ascontiguousarray(pair.transpose(0, 4, 1, 2, 3)))
    if weights is None:
        checkpoint = write_checkpoint(workdir / "FlowNet2-SD_checkpoint.pth.tar", seed=0)
        weights = str(convert(checkpoint, workdir / "flownet2_sd.safetensors"))
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
        with torch.inference_mode():
            reference, ref_time = _timed(lambda: nvidia_forward(state, frames).numpy())
    else:
        reference, ref_time = None, 0.0
    torch_model = zoo.flownet2_sd(weights=weights).eval()
    keras_model = zoo.keras.flownet2_sd(weights=weights)

    def torch_runner(model) -> Callable[[], np.ndarray]:
        def run() -> np.ndarray:
            with torch.inference_mode():
                return model(frames).numpy()
        return run

    def torch_fast() -> Callable[[], np.ndarray]:
        from .eval.accuracy import torch_fast_model

        return torch_runner(torch_fast_model(torch_model))

    def to_nchw(flow: np.ndarray) -> np.ndarray:
        return np.asarray(flow).transpose(0, 3, 1, 2)

    outputs = {
        "torch": forms.run("flownet2_sd", "torch", torch_runner(torch_model), torch_fast),
        "keras": forms.run("flownet2_sd", "keras", lambda: to_nchw(keras_model(pair, training=False)),
                           _keras_fast(keras_model, pair, to_nchw)),
    }
    rows = [] if reference is None else [("flownet2_sd", "NVIDIA forward", 0.0, None, ref_time, reference, 0)]
    for framework, (flow, seconds) in outputs.items():
        diff = None if reference is None else float(np.abs(flow - reference).max())
        rows.append(("flownet2_sd", framework, diff, None, seconds, flow, 0))
    return rows


def _load_labels(path: str | None) -> list[str] | None:
    if path is None:
        return None
    # synset_words.txt: "n01440764 tench, Tinca tinca", in sorted-wnid (label) order.
    return [line.split(" ", 1)[1].split(",")[0] for line in Path(path).read_text().splitlines() if line.strip()]


def _print_top5(rows: list[tuple], labels: list[str] | None) -> None:
    for name, framework, _, _, _, logits, offset in rows:
        if name == "flownet2_sd":
            magnitude = np.sqrt((logits**2).sum(1))
            print(f"{name} ({framework}): flow magnitude mean {magnitude.mean():.2f} px, max {magnitude.max():.2f} px")
            continue
        print(f"{name} ({framework}) top-5, ImageNet label = output index {offset:+d}:")
        for photo, row in zip(PHOTOS, logits):
            top = np.argsort(row)[::-1][:5] + offset
            names = [f"{i}" + (f" {labels[i]}" if labels and 0 <= i < len(labels) else "") for i in top]
            print(f"  {photo:10} " + "; ".join(names))


def main(argv: list[str] | None = None) -> int:
    """Print the parity table; exit non-zero if a port misses the tolerance."""
    parser = argparse.ArgumentParser(prog="python -m zoo.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--weights", action="append", default=[], metavar="MODEL=PATH_OR_TAG")
    parser.add_argument("--labels", help="synset_words.txt, to print class names with --weights")
    parser.add_argument("--layers", action="store_true", help="print the building-block table instead")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS), help="models to run (default: all)")
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
    unknown = set(weights) - set(MODELS)
    if unknown:
        parser.error(f"unknown model(s) in --weights: {', '.join(sorted(unknown))}")
    try:
        import skimage.data  # noqa: F401
        import tensorflow  # noqa: F401
    except ImportError as error:
        print(f"zoo.demo needs the keras and eval extras (TensorFlow, scikit-image): {error}", file=sys.stderr)
        return 2

    forms = _Forms(fast=not args.plain)
    with tempfile.TemporaryDirectory(prefix="zoo-demo-") as tmp:
        workdir = Path(tmp)
        rows = []
        for name in (m for m in MODELS if m in args.models):
            if name == "flownet2_sd":
                rows += _flownet_rows(workdir, weights.get(name), forms)
            else:
                rows += _classifier_rows(name, workdir, weights.get(name), forms)

    form = "fast" if forms.fast else "as built"
    print(f"ports run {'in their fast form (--plain: as built)' if forms.fast else 'as built (--plain)'}")
    header = (f"{'model':13} {'framework':18} {'form':8} {'max |diff| vs upstream':>23} {'top-1 agreement':>16} "
              f"{'time s':>7}  verdict")
    print(header)
    print("-" * len(header))
    failures = 0
    for name, framework, diff, agreement, seconds, _, _ in rows:
        tolerance = FLOW_TOL if name == "flownet2_sd" else LOGIT_TOL
        if diff is None:
            verdict, diff_text = "real weights", "-"
        elif framework in ("torch", "keras"):
            ok = diff <= tolerance and (agreement is None or agreement == 1.0)
            verdict, diff_text = ("exact" if ok else "FAIL"), f"{diff:.2e}"
            failures += not ok
        else:
            verdict, diff_text = "reference", "-"
        agreement_text = "-" if agreement is None or framework not in ("torch", "keras") else f"{agreement:.0%}"
        row_form = form if framework in ("torch", "keras") else "-"
        print(f"{name:13} {framework:18} {row_form:8} {diff_text:>23} {agreement_text:>16} {seconds:7.2f}  {verdict}")
    print(
        f"\nexact: logits within {LOGIT_TOL:g} (relative to their scale beyond 10) and the same top-1 on the "
        f"{len(PHOTOS)} skimage photos; flow within {FLOW_TOL:g} px on skimage's stereo_motorcycle pair."
    )
    for line in forms.checks:
        print(line)
    if weights:
        _print_top5([r for r in rows if r[0] in weights and r[1] == "torch"], _load_labels(args.labels))
    return 1 if failures else 0


if __name__ == "__main__":
    run_cli(main)
