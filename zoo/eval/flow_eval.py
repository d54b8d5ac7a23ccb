"""Average end-point error of an optical-flow model on MPI-Sintel- and FlyingChairs-style folders.

Protocol of NVIDIA flownet2-pytorch's inference loaders (``datasets.py``):

* ``MpiSintel`` / ``FlyingChairs``: ``render_size`` is the frame size floored to
  multiples of 64 (``(h // 64) * 64``), and ``StaticCenterCrop`` cuts
  ``img[(h - th)//2 : (h + th)//2, (w - tw)//2 : (w + tw)//2]`` from both
  frames and the ground truth: Sintel's 436 rows become rows 26..409 (384),
  FlyingChairs' 384x512 is left as is. The same crop is applied here to
  Sintel's ``invalid.png`` mask.
* Frames are read as RGB (``frame_utils.read_gen``), float32 in [0, 255],
  and given to the model as they are.
* EPE per pair with :func:`zoo.flow.average_epe`, two ways, both reported:
  ``epe_all_pixels``, the mean over every pixel of the crop, which is what
  NVIDIA's ``losses.EPE`` computes (``torch.norm(target - output, p=2,
  dim=1).mean()``: its loaders read no ``invalid.png``), and
  ``epe_valid_pixels``, with the pixels Sintel's ``invalid.png`` marks left
  out (equal to the first where a pair has no mask, as FlyingChairs). The
  dataset numbers (``average_epe_all_pixels``, ``average_epe_valid_pixels``)
  are means over pairs (NVIDIA averages per-batch EPEs; batch size 1 here).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..errors import ArgumentError, FormatError, MissingFileError, UnknownFrameworkError
from ..flow import average_epe, read_flo, read_sintel_invalid, save_flow_png
from ..progress import Progress
from ..registry import MODELS, InputSpec, ModelEntry, list_models
from .fast_check import FastCheck, first_batch_checked, keras_fast_function, torch_fast_model

__all__ = [
    "FlowPair",
    "FLOW_FRAMEWORKS",
    "FlowPredictor",
    "SIZE_MULTIPLE",
    "center_crop",
    "evaluate_flow",
    "find_pairs",
    "flow_entry",
    "flow_models",
    "format_table",
    "load_pair",
    "make_flow_predictor",
]

SIZE_MULTIPLE = 64  # datasets.py: render_size = (frame_size // 64) * 64
FLOW_FRAMEWORKS = ("torch", "keras")


@dataclass(frozen=True)
class FlowPair:
    """Two frames and their ground truth; ``invalid`` is Sintel's mask of pixels with no valid flow."""

    name: str
    kind: str  # "sintel" or "chairs"
    img0: Path
    img1: Path
    flow: Path
    invalid: Path | None = None


def find_pairs(root: str | os.PathLike) -> list[FlowPair]:
    """All pairs under ``root`` (searched recursively), sorted by name.

    Sintel-style: a folder holding ``img0.png``, ``img1.png``, ``flow.flo`` and
    optionally ``invalid.png``. FlyingChairs-style: ``NNNNNNN-img0.ppm``,
    ``-img1.ppm``, ``-gt.flo`` side by side. Raises ``FileNotFoundError`` when a
    pair lacks a file or none is found.
    """
    root = Path(root)
    if not root.is_dir():
        raise MissingFileError(f"{root}: no such flow data folder")
    pairs = []
    for img0 in root.rglob("img0.png"):
        folder = img0.parent
        invalid = folder / "invalid.png"
        pairs.append(FlowPair(folder.relative_to(root).as_posix() or folder.name, "sintel", img0,
                              folder / "img1.png", folder / "flow.flo", invalid if invalid.is_file() else None))
    for img0 in root.rglob("*-img0.ppm"):
        stem = img0.name[: -len("-img0.ppm")]
        name = (img0.parent.relative_to(root) / stem).as_posix()
        pairs.append(FlowPair(name, "chairs", img0, img0.with_name(f"{stem}-img1.ppm"), img0.with_name(f"{stem}-gt.flo")))
    for pair in pairs:
        for path in (pair.img1, pair.flow):
            if not path.is_file():
                raise MissingFileError(f"{path}: missing, the pair {pair.name} is incomplete")
    if not pairs:
        raise MissingFileError(
            f"{root}: no flow pairs (Sintel-style <seq>/img0.png, img1.png, flow.flo or "
            "FlyingChairs-style NNNNNNN-img0.ppm, -img1.ppm, -gt.flo)"
        )
    return sorted(pairs, key=lambda p: p.name)


def center_crop(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """NVIDIA's ``StaticCenterCrop`` of an (H, W, ...) array to ``height`` x ``width``."""
    h, w = array.shape[:2]
    return array[(h - height) // 2:(h + height) // 2, (w - width) // 2:(w + width) // 2]


def _read_rgb(path: Path) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FormatError(f"{path}: OpenCV cannot decode this image")
    return np.ascontiguousarray(image[..., ::-1])  # BGR -> RGB, as read_gen's imread gives


def load_pair(pair: FlowPair) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(frames (2, H, W, 3) float32 RGB in [0, 255], ground truth (H, W, 2), valid mask (H, W) or None), centre-cropped.

    The crop is to the frame size floored to multiples of 64, as NVIDIA's loaders do.
    """
    frames = [_read_rgb(pair.img0), _read_rgb(pair.img1)]
    gt = read_flo(pair.flow)
    valid = read_sintel_invalid(pair.invalid) if pair.invalid is not None else None
    h, w = frames[0].shape[:2]
    for what, shape in (("img1", frames[1].shape[:2]), ("flow", gt.shape[:2]),
                        ("invalid", None if valid is None else valid.shape)):
        if shape is not None and shape != (h, w):
            raise FormatError(f"pair {pair.name}: {what} is {shape[1]}x{shape[0]}, img0 is {w}x{h}")
    th, tw = (h // SIZE_MULTIPLE) * SIZE_MULTIPLE, (w // SIZE_MULTIPLE) * SIZE_MULTIPLE
    if th == 0 or tw == 0:
        raise FormatError(f"pair {pair.name}: frames of {w}x{h} are smaller than {SIZE_MULTIPLE} pixels")
    frames_array = np.stack([center_crop(f, th, tw) for f in frames]).astype(np.float32)
    return frames_array, center_crop(gt, th, tw), None if valid is None else center_crop(valid, th, tw)


class FlowPredictor:
    """``predict(frames)``: (2, H, W, 3) float32 RGB -> (H, W, 2) flow; ``fast_check`` for a fast form, else None.

    With ``input_spec``, a frame size the model does not take raises
    :class:`~zoo.errors.InputShapeError` before the model runs.
    """

    def __init__(self, run: Callable[[np.ndarray], np.ndarray], fast_check=None,
                 input_spec: InputSpec | None = None) -> None:
        self.run = run
        self.fast_check = fast_check
        self.input_spec = input_spec

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        if self.input_spec is not None:
            self.input_spec.check_size(*frames.shape[1:3])
        return self.run(frames)


def flow_models() -> list[str]:
    """The registered models whose output is optical flow."""
    return [name for name in list_models() if MODELS[name].output.kind == "flow"]


def flow_entry(model: str | None = None) -> ModelEntry:
    """The entry of the flow model ``model``, or of the only registered one when ``model`` is None."""
    known = flow_models()
    if model is None:
        if len(known) != 1:
            raise ArgumentError(f"name the flow model to evaluate; registered: {', '.join(known) or 'none'}")
        model = known[0]
    if model not in known:
        raise ArgumentError(f"{model!r} is not a registered optical-flow model; those are: {', '.join(known) or 'none'}")
    return MODELS[model]


def make_flow_predictor(model: str | None, framework: str, weights: str | os.PathLike,
                        fast: bool = True) -> FlowPredictor:
    """A :class:`FlowPredictor` for the flow model ``model`` (None: the only one registered) in ``torch`` or ``keras``.

    ``fast`` (default): torch runs :func:`zoo.fast.fast_inference_model`
    (channels_last, compiled), keras :func:`zoo.keras.fast.fast_inference_function`,
    each checked against the model as built on the first pair
    (:class:`zoo.errors.NotExactError` if it differs); ``False`` runs the model as built.
    """
    entry = flow_entry(model)
    if framework not in FLOW_FRAMEWORKS:
        raise UnknownFrameworkError(f"unknown framework {framework!r}; known: {', '.join(FLOW_FRAMEWORKS)}")
    net = entry.builder(framework)(weights=weights)
    if framework == "torch":
        import torch

        net = net.eval()

        def runner(module) -> Callable[[np.ndarray], np.ndarray]:
            def predict(frames: np.ndarray) -> np.ndarray:
                # The pair in the port's layout (NVIDIA: np.array([img1, img2]).transpose(3, 0, 1, 2)), batch of one.
                x = torch.from_numpy(np.ascontiguousarray(entry.input.convert_layout(frames[None], "keras", "torch")))
                with torch.inference_mode():
                    return module(x)[0].permute(1, 2, 0).numpy()  # (C, H, W) flow -> (H, W, C)
            return predict

        if not fast:
            return FlowPredictor(runner(net), input_spec=entry.input)
        check = FastCheck("torch: zoo.fast_inference_model")
        # One pair per call: the check's batch is one pair (two frames).
        return FlowPredictor(first_batch_checked(runner(torch_fast_model(net)), runner(net), check,
                                                 count=lambda frames: 1), check, entry.input)

    def plain(frames: np.ndarray) -> np.ndarray:
        return np.asarray(net(frames[None], training=False))[0]

    if not fast:
        return FlowPredictor(plain, input_spec=entry.input)
    function = keras_fast_function(net)
    check = FastCheck("keras: zoo.keras.fast.fast_inference_function")
    return FlowPredictor(first_batch_checked(lambda frames: np.asarray(function(frames[None]))[0], plain, check,
                                             count=lambda frames: 1), check, entry.input)


def evaluate_flow(pairs: Sequence[FlowPair], predict: Callable[[np.ndarray], np.ndarray],
                  png_dir: str | os.PathLike | None = None, progress: bool = True) -> dict:
    """Average EPE of ``predict`` over ``pairs``, over all pixels and over the valid ones, one row per pair.

    With ``png_dir``, writes ``<pair>_pred.png`` and ``<pair>_gt.png``
    (Middlebury colours, both normalised by the ground truth's largest valid
    magnitude so they compare; ``/`` in a pair's name becomes ``_``).
    """
    if not pairs:
        raise ArgumentError("no flow pairs to evaluate")
    png_path = Path(png_dir) if png_dir is not None else None
    if png_path is not None:
        png_path.mkdir(parents=True, exist_ok=True)
    rows = []
    bar = Progress(len(pairs), "flow pairs", enabled=progress)
    try:
        for pair in pairs:
            frames, gt, valid = load_pair(pair)
            flow = predict(frames)
            epe_all = average_epe(flow, gt)  # NVIDIA losses.EPE: every pixel
            epe_valid = epe_all if valid is None else average_epe(flow, gt, valid)
            row = {"pair": pair.name, "kind": pair.kind, "height": int(gt.shape[0]), "width": int(gt.shape[1]),
                   "valid_fraction": 1.0 if valid is None else float(valid.mean()),
                   "epe_all_pixels": epe_all, "epe_valid_pixels": epe_valid}
            if png_path is not None:
                magnitude = np.hypot(gt[..., 0], gt[..., 1])
                scale = float((magnitude[valid] if valid is not None else magnitude).max()) or None
                stem = pair.name.replace("/", "_")
                for suffix, field in (("pred", flow), ("gt", gt)):
                    target = png_path / f"{stem}_{suffix}.png"
                    save_flow_png(target, field, max_flow=scale)
                    row[f"{suffix}_png"] = str(target)
            rows.append(row)
            bar.update()
    finally:
        bar.close()
    return {"pairs": rows, "count": len(rows),
            "average_epe_all_pixels": float(np.mean([r["epe_all_pixels"] for r in rows])),
            "average_epe_valid_pixels": float(np.mean([r["epe_valid_pixels"] for r in rows]))}


def format_table(result: dict) -> str:
    """A per-pair table and the two average EPEs, as the CLI prints them."""
    width = max(len("pair"), *(len(r["pair"]) for r in result["pairs"]))
    lines = [f"{'pair':<{width}}  kind    size        valid   EPE all  EPE valid"]
    for r in result["pairs"]:
        lines.append(f"{r['pair']:<{width}}  {r['kind']:<6}  {r['width']:>4}x{r['height']:<4}  "
                     f"{100 * r['valid_fraction']:6.2f}%  {r['epe_all_pixels']:8.4f}  {r['epe_valid_pixels']:9.4f}")
    lines.append(f"average EPE over {result['count']} pairs, all pixels (NVIDIA losses.EPE): "
                 f"{result['average_epe_all_pixels']:.4f}")
    lines.append(f"average EPE over {result['count']} pairs, valid pixels (invalid.png left out): "
                 f"{result['average_epe_valid_pixels']:.4f}")
    return "\n".join(lines)
