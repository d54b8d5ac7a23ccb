"""scripts/verify_accuracy.py end to end on real images, against the upstream TensorFlow graphs.

The stand-in weights are random, so the images are labelled with the upstream
reference graph's own predictions ("teacher labels"): the ports must score
exactly 100 % top-1 on them. With the true labels of ../shared's val_map.txt,
a port must score exactly what the upstream graph scores. The same script
under torchrun (2 CPU processes, gloo) must give the single-process result.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from parity import ROOT, load_script, shared_dir
from test_eval_imagenet import FAST_LINE, sabotage_fast_form
from zoo.eval.arrays import arrays_dir
from zoo.eval.datasets import ArrayDataset
from zoo.eval.preprocess import preprocess_images
from zoo.eval.val_map import ValEntry, read_val_map, write_val_map

LIMIT_TRUE = 40  # images for the true-label and torchrun runs (MobileNet in torch: ~0.15 s an image here)
LIMIT_RESNET = 8


@pytest.fixture(scope="module")
def script():
    return load_script("verify_accuracy")


@pytest.fixture(scope="module")
def mobilenet(tf, image_set, tmp_path_factory):
    """Stand-in frozen graph, its conversion, the NHWC arrays, and teacher labels from the graph."""
    from zoo.convert.mobilenet_v1 import convert
    from zoo.standins import mobilenet_v1 as upstream

    folder = tmp_path_factory.mktemp("mobilenet_eval")
    graph_def = upstream.frozen_graph_def(upstream.model_variables(upstream.make_variables(0)))
    pb = folder / "mobilenet_v1_1.0_224_frozen.pb"
    pb.write_bytes(graph_def.SerializeToString(deterministic=True))
    images, val_map = image_set
    result = preprocess_images("mobilenet_v1", images, val_map, folder / "cache", workers=2, progress=False)
    entries = read_val_map(val_map)
    arrays = np.stack([np.load(result.out_dir / f"{e.image}.npy") for e in entries])
    logits = upstream.run_graph(graph_def, arrays)
    teacher = [ValEntry(e.image, int(i) - 1) for e, i in zip(entries, logits.argmax(1))]  # class 0 = background
    return dict(pb=pb, weights=convert(pb, folder / "m.safetensors"), cache=folder / "cache", val_map=val_map,
                entries=entries, teacher=write_val_map(folder / "teacher_val_map.txt", teacher), logits=logits,
                folder=folder)


def _run(script, capsys, *argv) -> tuple[dict, str]:
    """main(argv) in this process; returns the report and what it printed."""
    report = Path(argv[argv.index("--report") + 1])
    assert script.main([*map(str, argv), "--quiet"]) == 0, capsys.readouterr().err
    return json.loads(report.read_text()), capsys.readouterr().out


def test_mobilenet_torch_and_keras_score_100_on_teacher_labels(script, mobilenet, keras, capsys):
    report, out = _run(script, capsys, "mobilenet_v1", "--weights", mobilenet["weights"], "--arrays", mobilenet["cache"],
                       "--val-map", mobilenet["teacher"], "--framework", "torch", "--compare", "keras",
                       "--report", mobilenet["folder"] / "teacher.json", "--plain")  # the fast forms: the next test
    count = len(mobilenet["entries"])
    for section in (report, report["compare"]):
        assert section["count"] == count
        assert section["top1"] == {"correct": count, "percent": 100.0}, section["framework"]
        assert section["top5"]["correct"] == count
    assert report["compare"]["top1_disagreements"] == []
    assert report["layout"] == "NHWC" and report["label_offset"] == -1
    # Per-image predictions: the top-1 is the teacher's, top-5 matches the graph's logits.
    first = mobilenet["entries"][0].image
    assert report["predictions"][first]["top5"] == list(np.argsort(-mobilenet["logits"][0])[:5] - 1)
    assert f"top-1 100.000% ({count}/{count})" in out
    assert "MLPerf reference top-1 71.676%" in out and f"difference {100 - 71.676:+.3f} points" in out
    assert "top-1 disagreements torch vs keras: 0" in out


def test_default_fast_forms_are_checked_against_the_models_as_built(script, mobilenet, keras, capsys, tmp_path):
    """No --plain: torch runs zoo.fast_inference_model (compiled), keras zoo.keras.fast, each checked on batch 1."""
    report, out = _run(script, capsys, "mobilenet_v1", "--weights", mobilenet["weights"], "--arrays", mobilenet["cache"],
                       "--val-map", mobilenet["teacher"], "--framework", "torch", "--compare", "keras",
                       "--limit", 4, "--batch-size", 4, "--report", tmp_path / "fast.json")
    count = min(4, len(mobilenet["entries"]))
    for section in (report, report["compare"]):
        assert section["top1"] == {"correct": count, "percent": 100.0}, section["framework"]
        assert section["fast_check"]["batch"] == count and 0 <= section["fast_check"]["max_diff"] <= 1e-4
    assert out.count(FAST_LINE) == 2, out
    assert "(torch: zoo.fast_inference_model)" in out and "(keras: zoo.keras.fast.fast_inference_function)" in out


def test_a_fast_form_that_is_not_exact_stops_the_run(script, mobilenet, capsys, monkeypatch, tmp_path):
    sabotage_fast_form(monkeypatch)
    argv = ["mobilenet_v1", "--weights", str(mobilenet["weights"]), "--arrays", str(mobilenet["cache"]),
            "--val-map", str(mobilenet["teacher"]), "--limit", "2", "--report", str(tmp_path / "r.json"), "--quiet"]
    assert script.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: torch: zoo.fast_inference_model differs from the model as "
                                                "built by "), err
    assert "above the tolerance 0.0001" in err[0] and "--plain" in err[0]
    assert not (tmp_path / "r.json").exists()


def test_true_labels_give_the_upstream_graphs_top1(script, mobilenet, capsys):
    if shared_dir() is None:  # the skimage photos have no true ImageNet labels
        pytest.skip("true labels need ../shared/data/imagenet/val_map.txt")
    # The upstream graph through the release-style .tgz (its *_frozen.pb member).
    import tarfile

    tgz = mobilenet["folder"] / "mobilenet_v1_1.0_224.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(mobilenet["pb"], arcname=mobilenet["pb"].name)
    report, out = _run(script, capsys, "mobilenet_v1", "--weights", mobilenet["weights"], "--arrays", mobilenet["cache"],
                       "--val-map", mobilenet["val_map"], "--framework", "tf-upstream", "--upstream", tgz,
                       "--compare", "torch", "--limit", LIMIT_TRUE, "--report", mobilenet["folder"] / "true.json",
                       "--plain")
    labels = np.array([e.label for e in mobilenet["entries"][:LIMIT_TRUE]])
    expected = int((mobilenet["logits"][:LIMIT_TRUE].argmax(1) - 1 == labels).sum())  # the graph's own top-1
    assert report["top1"]["correct"] == report["compare"]["top1"]["correct"] == expected
    assert report["top5"] == report["compare"]["top5"]
    assert report["compare"]["top1_disagreements"] == []
    assert "top-1 disagreements tf-upstream vs torch: 0" in out


def test_torchrun_two_processes_equal_single_process(script, mobilenet, capsys, tmp_path):
    single, _ = _run(script, capsys, "mobilenet_v1", "--weights", mobilenet["weights"], "--arrays", mobilenet["cache"],
                     "--val-map", mobilenet["val_map"], "--limit", LIMIT_TRUE, "--batch-size", 8,
                     "--report", tmp_path / "single.json", "--plain")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    report_path = tmp_path / "dist.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
         "--master_port", str(port), str(ROOT / "scripts" / "verify_accuracy.py"), "mobilenet_v1",
         "--weights", str(mobilenet["weights"]), "--arrays", str(mobilenet["cache"]), "--val-map",
         str(mobilenet["val_map"]), "--limit", str(LIMIT_TRUE), "--batch-size", "8", "--quiet", "--plain",
         "--report", str(report_path)],
        capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    dist = json.loads(report_path.read_text())
    assert dist["world_size"] == 2 and single["world_size"] == 1
    assert run.stdout.count(" images: top-1 ") == 1  # rank 0 alone prints
    for key in ("count", "top1", "top5", "predictions"):
        assert dist[key] == single[key], key
    assert list(dist["predictions"]) == list(single["predictions"])  # val_map order kept


def test_broken_label_offset_is_caught(script, mobilenet, capsys, monkeypatch, tmp_path):
    """The teacher-label check fails when the background class is not accounted for."""
    from zoo import registry

    entry = registry.MODELS["mobilenet_v1"]
    monkeypatch.setitem(registry.MODELS, "mobilenet_v1", dataclasses.replace(entry, output=dataclasses.replace(entry.output, label_offset=0)))
    report, _ = _run(script, capsys, "mobilenet_v1", "--weights", mobilenet["weights"], "--arrays", mobilenet["cache"],
                     "--val-map", mobilenet["teacher"], "--limit", 8, "--report", tmp_path / "r.json", "--plain")
    assert report["top1"]["correct"] == 0


def test_val_map_naming_missing_arrays_is_an_error(script, mobilenet, capsys, tmp_path):
    listing = write_val_map(tmp_path / "val_map.txt", [*read_val_map(mobilenet["teacher"])[:3],
                                                       ValEntry("ILSVRC2012_val_00099999.JPEG", 5)])
    argv = ["mobilenet_v1", "--weights", str(mobilenet["weights"]), "--arrays", str(mobilenet["cache"]),
            "--val-map", str(listing), "--report", str(tmp_path / "r.json"), "--plain", "--quiet"]
    assert script.main(argv) == 2
    err = capsys.readouterr().err
    assert "no array for 1 of the 4 images" in err and "ILSVRC2012_val_00099999.JPEG" in err
    assert "imagenet_mobilenet/NHWC" in err and not (tmp_path / "r.json").exists()
    report, out = _run(script, capsys, *argv[:-1], "--skip-missing")
    assert report["count"] == 3 and report["top1"]["correct"] == 3
    assert report["missing"] == ["ILSVRC2012_val_00099999.JPEG"] and "left out: 1" in out
    # Arrays made for another model are refused, by their folder name or by their index.
    assert script.main(["resnet50", *argv[1:]]) == 2
    assert "no preprocessed/imagenet/<layout> folder" in capsys.readouterr().err
    leaf = str(arrays_dir(mobilenet["cache"], "mobilenet_v1", "NHWC"))
    assert script.main(["resnet50", *[leaf if a == str(mobilenet["cache"]) else a for a in argv[1:]]]) == 2
    assert "preprocessed for mobilenet_v1" in capsys.readouterr().err


def test_resnet50_teacher_labels_nchw(script, tf, keras, image_set, standins, tmp_path_factory, capsys):
    from zoo.standins import resnet50 as upstream

    folder = tmp_path_factory.mktemp("resnet_eval")
    pb, weights = standins.source("resnet50"), standins.converted("resnet50")
    images, val_map = image_set
    entries = read_val_map(val_map)[:LIMIT_RESNET]  # 8 of ../shared's images, or the 4 skimage photos
    result = preprocess_images("resnet50", images, val_map, folder / "cache", layout="NCHW", limit=len(entries),
                               progress=False)
    arrays = ArrayDataset(result.out_dir, entries, "resnet50").batch(range(len(entries)))
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(pb.read_bytes())
    logits = upstream.run_graph(graph_def, arrays.transpose(0, 2, 3, 1))
    teacher = write_val_map(folder / "teacher.txt", [ValEntry(e.image, int(i) - 1) for e, i in zip(entries, logits.argmax(1))])
    report, _ = _run(script, capsys, "resnet50", "--weights", weights, "--arrays", folder / "cache", "--val-map", teacher,
                     "--framework", "keras", "--compare", "torch", "--batch-size", 4, "--report", folder / "r.json",
                     "--plain")  # the ports as built; test_default_fast_forms_... runs the default fast forms
    assert report["layout"] == "NCHW"
    assert report["top1"]["correct"] == report["compare"]["top1"]["correct"] == len(entries)
    assert report["compare"]["top1_disagreements"] == []
