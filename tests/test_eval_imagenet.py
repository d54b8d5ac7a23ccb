"""zoo.eval's ImageNet data and scripts/preprocess_imagenet.py: MLPerf's preprocessing byte for byte, val_map, loader.

The reference is a restatement, written here from MLPerf Inference's
``vision/classification_and_detection/python/dataset.py`` and ``imagenet.py``,
of ``resize_with_aspectratio`` / ``center_crop`` / ``pre_process_vgg`` /
``pre_process_mobilenet`` and of the cache's ``np.save(dst, processed)``: the
.npy files the script writes must equal its bytes, on the real validation
images of ../shared (or, where absent, the scikit-image photos as JPEGs).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from parity import load_script, shared_dir
from zoo.errors import FormatError, ZooError
from zoo.eval.arrays import arrays_dir, resolve_arrays_dir
from zoo.eval.datasets import ArrayDataset
from zoo.eval.prefetch import PrefetchLoader
from zoo.eval.preprocess import preprocess_images
from zoo.eval.val_map import ValEntry, read_val_map, write_val_map
from zoo.registry import FlowOutput, get_model_entry, list_models

cv2 = pytest.importorskip("cv2")


# --- MLPerf's functions, restated from dataset.py --------------------------------------

def mlperf_resize_with_aspectratio(img, out_height, out_width, scale=87.5, inter_pol=None):
    height, width, _ = img.shape
    new_height = int(100.0 * out_height / scale)
    new_width = int(100.0 * out_width / scale)
    if height > width:
        w, h = new_width, int(new_height * height / width)
    else:
        h, w = new_height, int(new_width * width / height)
    return cv2.resize(img, (w, h), interpolation=inter_pol)


def mlperf_center_crop(img, out_height, out_width):
    height, width, _ = img.shape
    left, right = int((width - out_width) / 2), int((width + out_width) / 2)
    top, bottom = int((height - out_height) / 2), int((height + out_height) / 2)
    return img[top:bottom, left:right]


def mlperf_pre_process_vgg(img, dims, need_transpose=False):
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    img = mlperf_resize_with_aspectratio(img, dims[0], dims[1], inter_pol=cv2.INTER_AREA)
    img = np.asarray(mlperf_center_crop(img, dims[0], dims[1]), dtype="float32")
    img -= np.array([123.68, 116.78, 103.94], dtype=np.float32)
    return img.transpose([2, 0, 1]) if need_transpose else img


def mlperf_pre_process_mobilenet(img, dims, need_transpose=False):
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    img = mlperf_resize_with_aspectratio(img, dims[0], dims[1], inter_pol=cv2.INTER_LINEAR)
    img = np.asarray(mlperf_center_crop(img, dims[0], dims[1]), dtype="float32")
    img /= 255.0
    img -= 0.5
    img *= 2
    return img.transpose([2, 0, 1]) if need_transpose else img


# MLPerf's preprocessing functions restated above, by their dataset.py names (entry.mlperf.preprocessing_function).
MLPERF = {"pre_process_mobilenet": mlperf_pre_process_mobilenet, "pre_process_vgg": mlperf_pre_process_vgg}
# main.py's SUPPORTED_PROFILES: the dataset (cache folder preprocessed/<dataset>/<layout>) of each MLPerf model name.
MLPERF_CACHE = {"mobilenet": "imagenet_mobilenet", "resnet50": "imagenet"}
# The MLPerf models of the registry; those whose preprocessing is restated above are checked byte for byte.
MLPERF_MODELS = [m for m in list_models() if get_model_entry(m).mlperf is not None]
RESTATED_MODELS = [m for m in MLPERF_MODELS if get_model_entry(m).mlperf.preprocessing_function in MLPERF]


def mlperf_npy_bytes(model: str, image_path: Path, layout: str) -> bytes:
    """What imagenet.py's np.save(dst, pre_process(cv2.imread(src), ...)) writes."""
    spec = get_model_entry(model).mlperf
    size = spec.image_size
    processed = MLPERF[spec.preprocessing_function](cv2.imread(str(image_path)), [size, size, 3],
                                                    need_transpose=layout == "NCHW")
    buffer = io.BytesIO()
    np.save(buffer, processed)
    return buffer.getvalue()


def check_arrays(model: str, directory: Path, images: Path, entries: list, layout: str) -> None:
    """Each image's array is MLPerf's bytes where its preprocessing is restated here; else float32, sized, in range."""
    spec = get_model_entry(model)
    for entry in entries:
        path = directory / f"{entry.image}.npy"
        if model in RESTATED_MODELS:
            assert path.read_bytes() == mlperf_npy_bytes(model, images / entry.image, layout), (
                f"{entry.image}: differs from MLPerf")
        else:
            array = np.load(path)
            size = spec.mlperf.image_size
            expected = (spec.input.channels, size, size) if layout == "NCHW" else (size, size, spec.input.channels)
            low, high = spec.input.value_range
            assert array.dtype == np.float32 and array.shape == expected, (entry.image, array.dtype, array.shape)
            assert low - 1e-3 <= array.min() and array.max() <= high + 1e-3, entry.image


def cache_folder(model: str) -> str:
    """The cache folder name main.py uses for ``model`` where restated above, else the registry's."""
    spec = get_model_entry(model).mlperf
    return MLPERF_CACHE.get(spec.model_name, spec.dataset)


# The layouts and worker counts alternate over the MLPerf models, so both layouts and both worker paths run.
ARRAY_CASES = [(m, ("NHWC", "NCHW")[i % 2], (2, 1)[i % 2]) for i, m in enumerate(MLPERF_MODELS)]


# --- data ------------------------------------------------------------------------------

@pytest.mark.parametrize("model,layout,workers", ARRAY_CASES, ids=[c[0] for c in ARRAY_CASES])
def test_arrays_equal_mlperf_byte_for_byte(image_set, tmp_path, model, layout, workers):
    images, val_map = image_set
    result = preprocess_images(model, images, val_map, tmp_path, layout=layout, workers=workers, progress=False)
    entries = read_val_map(val_map)
    assert result.out_dir == tmp_path / "preprocessed" / cache_folder(model) / layout
    assert (result.written, result.already_done, result.failed) == (len(entries), 0, [])
    check_arrays(model, result.out_dir, images, entries, layout)
    index = json.loads((result.out_dir / "index.json").read_text())
    assert index["model"] == model and index["layout"] == layout and index["count"] == len(entries)
    assert index["images"] == [e.image for e in entries]


# Each MLPerf model in the layout the test above does not run it in.
OTHER_LAYOUT_CASES = [(m, "NCHW" if layout == "NHWC" else "NHWC") for m, layout, _ in ARRAY_CASES]


@pytest.mark.parametrize("model,layout", OTHER_LAYOUT_CASES, ids=[c[0] for c in OTHER_LAYOUT_CASES])
def test_other_layouts_equal_mlperf(image_set, tmp_path, model, layout):
    images, val_map = image_set
    result = preprocess_images(model, images, val_map, tmp_path, layout=layout, limit=6, progress=False)
    check_arrays(model, result.out_dir, images, read_val_map(val_map)[:6], layout)


def test_every_restated_preprocessing_is_a_registered_models():
    # The restated functions are used: each names a registered model's MLPerf preprocessing.
    used = {get_model_entry(m).mlperf.preprocessing_function for m in RESTATED_MODELS}
    assert used == set(MLPERF), f"restated but no registered model uses them: {set(MLPERF) - used}"


def test_cli_is_restartable_and_reports_bad_images(image_set, tmp_path, capsys):
    images, val_map = image_set
    good = read_val_map(val_map)[:3]
    folder = tmp_path / "images"
    folder.mkdir()
    for entry in good:
        (folder / entry.image).write_bytes((images / entry.image).read_bytes())
    (folder / "broken.JPEG").write_bytes(b"\xff\xd8 not a jpeg")
    listing = write_val_map(tmp_path / "val_map.txt", [*good, ValEntry("broken.JPEG", 1), ValEntry("absent.JPEG", 2)])
    script = load_script("preprocess_imagenet")
    argv = ["mobilenet_v1", "--images", str(folder), "--val-map", str(listing), "--out", str(tmp_path / "out"),
            "--workers", "1", "--quiet"]

    assert script.main(argv) == 0
    out, err = capsys.readouterr()
    assert "3 written, 0 already done, 2 missing or unreadable" in out
    assert "broken.JPEG" in err and "cannot decode" in err and "absent.JPEG" in err and "no such image" in err
    target = arrays_dir(tmp_path / "out", "mobilenet_v1", "NHWC")
    index = json.loads((target / "index.json").read_text())
    assert index["count"] == 3 and [f["image"] for f in index["failed"]] == ["broken.JPEG", "absent.JPEG"]
    assert not list(target.glob(".*"))  # no temporary files left behind

    (target / f"{good[1].image}.npy").unlink()  # as if interrupted
    assert script.main(argv) == 0
    assert "1 written, 2 already done, 2 missing or unreadable" in capsys.readouterr().out

    assert script.main(argv + ["--strict"]) == 2
    assert "broken.JPEG" in capsys.readouterr().err


def test_val_map_parsing(tmp_path):
    shared = shared_dir()
    if shared is not None:
        full = read_val_map(shared / "data" / "imagenet" / "val_map_50000.txt")
        assert len(full) == 50_000
        assert full[0] == ValEntry("ILSVRC2012_val_00000001.JPEG", 65)
        assert {e.label for e in full} == set(range(1000))
    bad = tmp_path / "val_map.txt"
    bad.write_text("a.JPEG 1\n\nb.JPEG x\n")
    with pytest.raises(FormatError, match=r"val_map.txt:3: label 'x'"):
        read_val_map(bad)
    bad.write_text("a.JPEG 1\na.JPEG 2\n")
    with pytest.raises(FormatError, match=r"val_map.txt:2: a.JPEG is already listed on line 1"):
        read_val_map(bad)
    bad.write_text("a.JPEG\n")
    with pytest.raises(FormatError, match=r"val_map.txt:1: expected"):
        read_val_map(bad)
    with pytest.raises(FormatError, match="nope.txt"):
        read_val_map(tmp_path / "nope.txt")


def test_dataset_and_prefetching_loader(image_set, tmp_path):
    images, val_map = image_set
    n = min(7, len(read_val_map(val_map)))  # 7 of ../shared's images, or the 4 skimage photos
    entries = read_val_map(val_map)[:n]
    preprocess_images("mobilenet_v1", images, val_map, tmp_path, limit=n, progress=False)
    directory = resolve_arrays_dir(tmp_path, "mobilenet_v1")
    assert directory == arrays_dir(tmp_path, "mobilenet_v1", "NHWC")
    dataset = ArrayDataset(directory, entries, "mobilenet_v1")
    assert dataset.layout == "NHWC" and len(dataset) == n
    order = [n - 1, *range(n - 1)]  # the last image first: batches follow the order given, not the file order
    batches = list(PrefetchLoader(dataset, order, batch_size=3, prefetch=2))
    assert [b for b, _ in batches] == [order[i : i + 3] for i in range(0, n, 3)]
    for indices, batch in batches:
        expected = np.stack([np.load(directory / f"{entries[i].image}.npy") for i in indices])
        np.testing.assert_array_equal(batch, expected)

    with pytest.raises(FileNotFoundError, match=rf"no array for 1 of the {n + 1} images.*missing.JPEG"):
        ArrayDataset(directory, [*entries, ValEntry("missing.JPEG", 3)], "mobilenet_v1")
    kept = ArrayDataset(directory, [*entries, ValEntry("missing.JPEG", 3)], "mobilenet_v1", skip_missing=True)
    assert len(kept) == n and kept.missing == ["missing.JPEG"]
    with pytest.raises(ValueError, match="preprocessed for mobilenet_v1"):
        ArrayDataset(directory, entries, "resnet50")
    with pytest.raises(ZooError, match="float32"):
        np.save(directory / f"{entries[0].image}.npy", np.zeros((3, 224, 224), np.float32))
        dataset.load(0)


class _SabotagedFastForm:
    """Stands in for zoo.fast.fast_inference_model's result: the model, but off by 1% + 1 (not exact)."""

    def __init__(self, net) -> None:
        self.net = net

    def __call__(self, x):
        return self.net(x) * 1.01 + 1.0

    def parameters(self):  # as a module's: callers may read the parameter dtype
        return self.net.parameters()


def sabotage_fast_form(monkeypatch) -> None:
    """Make every torch fast form that zoo's scripts build compute something else (monkeypatch, in-process)."""
    import zoo.fast

    monkeypatch.setattr(zoo.fast, "fast_inference_model", lambda model, *args, **kwargs: _SabotagedFastForm(model))


FAST_LINE = "fast form checked against the model as built: max |diff| "


# --- the progress bar and the registry-driven model lists ---------------------------------

class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_prints_tenths_off_a_terminal_and_redraws_on_one():
    from zoo.progress import Progress

    log = io.StringIO()
    bar = Progress(20, "pairs", stream=log)
    for _ in range(20):
        bar.update()
    bar.close()
    lines = log.getvalue().splitlines()
    assert len(lines) == 11  # once at each tenth, 0 % to 100 %
    assert lines[-1].startswith("pairs [" + "#" * 30 + "] 20/20 (")

    terminal = _Terminal()
    bar = Progress(0, "file.pb", stream=terminal, unit="MB", scale=1e6, interval=3600, terminal_only=True,
                   initial=2_000_000)
    bar.update_to(3_500_000)  # drawn: the first draw is not held back
    bar.update_to(4_000_000)  # not drawn: within the interval
    bar.close()
    assert terminal.getvalue().startswith("\rfile.pb: 3.5 MB (") and terminal.getvalue().count("\r") == 1
    assert terminal.getvalue().endswith("\n")

    quiet = io.StringIO()
    bar = Progress(10, "x", stream=quiet, terminal_only=True)  # not a terminal: nothing
    bar.update(10)
    bar.close()
    assert quiet.getvalue() == ""


def test_imagenet_tools_take_the_models_the_registry_lists(image_set, tmp_path, monkeypatch):
    """Model lists, cache folders and preprocessing come from the entries: a new MLPerf model needs no edit here."""
    import dataclasses

    from zoo import registry
    from zoo.errors import ArgumentError
    from zoo.eval.imagenet_models import classifier_models, mlperf_models
    from zoo.eval.preprocess import preprocess_image

    classifiers = [m for m in list_models() if get_model_entry(m).is_classifier]
    assert classifier_models() == classifiers
    assert mlperf_models() == MLPERF_MODELS and set(MLPERF_MODELS) <= set(classifiers)
    assert set(mlperf_models()) >= {"mobilenet_v1", "resnet50"}  # MLPerf's two ImageNet classifiers stay
    # A registered model MLPerf does not run (a copy of one without its MLPerf facts).
    other = dataclasses.replace(registry.MODELS[MLPERF_MODELS[0]], name="not_mlperf_net", mlperf=None)
    monkeypatch.setitem(registry.MODELS, "not_mlperf_net", other)
    not_mlperf = [m for m in list_models() if get_model_entry(m).mlperf is None]
    assert "not_mlperf_net" not in mlperf_models()
    for model in not_mlperf:
        with pytest.raises(ArgumentError, match=rf"'{model}' is not an MLPerf ImageNet model; those are: "
                                                rf"{', '.join(MLPERF_MODELS)}$"):
            preprocess_image(tmp_path / "x.JPEG", model)

    entry = registry.MODELS[RESTATED_MODELS[0]]
    twin = dataclasses.replace(entry, name="twin_net", mlperf=dataclasses.replace(entry.mlperf, dataset="twin_set"))
    monkeypatch.setitem(registry.MODELS, "twin_net", twin)
    assert "twin_net" in mlperf_models()
    images, val_map = image_set
    result = preprocess_images("twin_net", images, val_map, tmp_path, limit=1, progress=False)
    assert result.out_dir == tmp_path / "preprocessed" / "twin_set" / "NHWC"
    first = read_val_map(val_map)[0].image
    assert (result.out_dir / f"{first}.npy").read_bytes() == mlperf_npy_bytes(entry.name, images / first, "NHWC")
    script = load_script("preprocess_imagenet")
    for model in not_mlperf:
        with pytest.raises(SystemExit):
            script.main([model, "--images", str(images), "--val-map", str(val_map), "--out", str(tmp_path)])


def test_verify_flow_takes_the_registered_flow_model():
    from zoo.errors import ArgumentError
    from zoo.eval.flow_eval import flow_entry, flow_models

    flows = [m for m in list_models() if isinstance(get_model_entry(m).output, FlowOutput)]
    assert flow_models() == flows and "flownet2_sd" in flows
    for model in flows:
        assert flow_entry(model).name == model
    if len(flows) == 1:  # the only one is the default
        assert flow_entry().name == flows[0]
    else:
        with pytest.raises(ArgumentError, match="name the flow model"):
            flow_entry()
    for model in (m for m in list_models() if m not in flows):
        with pytest.raises(ArgumentError, match=f"'{model}' is not a registered optical-flow model"):
            flow_entry(model)
