"""scripts/mlperf_run.py: MLPerf LoadGen runs over real images, scored as MLPerf's accuracy-imagenet.py scores them.

The stand-in weights are random, so the images are labelled with the upstream
graph's own predictions ("teacher labels"): a LoadGen accuracy run must read
exactly 100.000%, and the labels decoded from mlperf_log_accuracy.json must
equal the teacher's, sample by sample. A wrong label offset must read 0%.
"""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest

from parity import load_script, require_module
from test_eval_imagenet import FAST_LINE, sabotage_fast_form
from zoo.cli import run_cli
from zoo.eval.arrays import arrays_dir
from zoo.eval.datasets import ArrayDataset
from zoo.eval.preprocess import preprocess_images
from zoo.eval.val_map import ValEntry, read_val_map, write_val_map

LIMIT = 24  # images of image_set used (../shared has 115; MobileNet in torch here: ~0.07 s an image)


@pytest.fixture(scope="module")
def lg():
    return require_module("mlperf_loadgen")


@pytest.fixture(scope="module")
def script(lg):
    return load_script("mlperf_run")


@pytest.fixture(scope="module")
def mobilenet(tf, image_set, standins, tmp_path_factory):
    """Converted stand-in weights, NHWC arrays of the first LIMIT images, teacher labels from the upstream graph."""
    from zoo.standins import mobilenet_v1 as upstream

    folder = tmp_path_factory.mktemp("mlperf_mobilenet")
    images, val_map = image_set
    entries = read_val_map(val_map)[:LIMIT]
    result = preprocess_images("mobilenet_v1", images, val_map, folder / "cache", limit=len(entries), progress=False)
    arrays = ArrayDataset(result.out_dir, entries, "mobilenet_v1").batch(range(len(entries)))
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(standins.frozen_graph("mobilenet_v1").read_bytes())
    logits = upstream.run_graph(graph_def, arrays)
    teacher = [int(i) - 1 for i in logits.argmax(1)]  # class 0 = background
    return dict(weights=standins.converted("mobilenet_v1"), cache=folder / "cache", entries=entries, teacher=teacher,
                val_map=write_val_map(folder / "teacher.txt", [ValEntry(e.image, t) for e, t in zip(entries, teacher)]))


def _argv(data: dict, model: str, scenario: str, mode: str, out, *extra, plain: bool = True) -> list[str]:
    """The command line; the ports as built (--plain, the cheapest) unless ``plain`` is False."""
    return [model, "--weights", str(data["weights"]), "--arrays", str(data["cache"]), "--val-map",
            str(data["val_map"]), "--scenario", scenario, "--mode", mode, "--output", str(out), *map(str, extra),
            *(["--plain"] if plain else [])]


def _run(script, capsys, argv) -> str:
    assert script.main(argv) == 0, capsys.readouterr().err
    return capsys.readouterr().out


def _count(mobilenet) -> int:
    """8 images, or all there are (the skimage fallback has 4): tests size themselves from the data."""
    return min(8, len(mobilenet["entries"]))


def _decoded(out) -> dict[int, int]:
    """qsl_idx -> label of OUT/mlperf_log_accuracy.json, decoded independently of zoo (hex float32)."""
    labels: dict[int, int] = {}
    for item in json.loads((out / "mlperf_log_accuracy.json").read_text()):
        labels.setdefault(item["qsl_idx"], int(np.frombuffer(bytes.fromhex(item["data"]), np.float32)[0]))
    return labels


def test_offline_accuracy_torch_reads_100_percent(script, mobilenet, capsys, tmp_path):
    out = tmp_path / "out"
    text = _run(script, capsys, _argv(mobilenet, "mobilenet_v1", "Offline", "accuracy", out, "--max-batchsize", 8))
    n = len(mobilenet["entries"])
    assert f"accuracy=100.000%, good={n}, total={n}" in text
    assert f"MLPerf reference top-1 71.676%; difference {100 - 71.676:+.3f} points" in text
    assert _decoded(out) == dict(enumerate(mobilenet["teacher"]))
    report = json.loads((out / "accuracy.json").read_text())
    assert (report["good"], report["total"], report["accuracy"]) == (n, n, 100.0)
    assert report["reference"]["top1"] == 71.676 and report["top1_difference"] == pytest.approx(100 - 71.676)
    assert report["scenario"] == "Offline" and report["backend"] == "torch"
    assert (out / "mlperf_log_summary.txt").is_file() and (out / "mlperf_log_detail.txt").is_file()


def test_default_fast_form_is_checked_before_loadgen_starts(script, mobilenet, capsys, tmp_path):
    """No --plain: the compiled fast form, checked against the model as built on the first batch, then LoadGen."""
    out = tmp_path / "out"
    n = min(4, len(mobilenet["entries"]))
    text = _run(script, capsys, _argv(mobilenet, "mobilenet_v1", "Offline", "accuracy", out, "--count", n,
                                      "--max-batchsize", 4, plain=False))
    assert text.count(FAST_LINE) == 1 and f"on a first batch of {n} (torch: zoo.fast_inference_model)" in text
    assert text.index(FAST_LINE) < text.index("Offline accuracy:")
    assert f"accuracy=100.000%, good={n}, total={n}" in text
    assert _decoded(out) == dict(enumerate(mobilenet["teacher"][:n]))


def test_a_fast_form_that_is_not_exact_stops_before_loadgen(script, mobilenet, capsys, monkeypatch, tmp_path):
    sabotage_fast_form(monkeypatch)
    out = tmp_path / "out"
    err = _error(script, capsys, _argv(mobilenet, "mobilenet_v1", "Offline", "accuracy", out, "--count", 2,
                                       plain=False))
    assert "torch: zoo.fast_inference_model differs from the model as built by" in err and "--plain" in err
    assert not out.exists()  # LoadGen never started


def test_singlestream_accuracy_keras_reads_100_percent(script, mobilenet, keras, capsys, tmp_path):
    out = tmp_path / "out"
    text = _run(script, capsys, _argv(mobilenet, "mobilenet_v1", "SingleStream", "accuracy", out,
                                      "--backend", "keras", "--count", _count(mobilenet)))
    n = _count(mobilenet)
    assert f"accuracy=100.000%, good={n}, total={n}" in text
    assert _decoded(out) == dict(enumerate(mobilenet["teacher"][:n]))


def test_offline_accuracy_onnxruntime_and_tf_upstream(script, mobilenet, standins, capsys, tmp_path):
    require_module("onnxruntime")
    require_module("onnxscript")
    out = tmp_path / "ort"
    text = _run(script, capsys, _argv(mobilenet, "mobilenet_v1", "Offline", "accuracy", out, "--backend",
                                      "onnxruntime", "--count", _count(mobilenet), "--max-batchsize", 3))  # a padded last batch
    n = _count(mobilenet)
    assert f"accuracy=100.000%, good={n}, total={n}" in text
    assert _decoded(out) == dict(enumerate(mobilenet["teacher"][:n]))
    out = tmp_path / "tf"
    text = _run(script, capsys, _argv(mobilenet, "mobilenet_v1", "MultiStream", "accuracy", out, "--backend",
                                      "tf-upstream", "--upstream", standins.source("mobilenet_v1"), "--count", n,
                                      "--threads", 2))
    assert f"accuracy=100.000%, good={n}, total={n}" in text


def test_wrong_label_offset_reads_zero(script, mobilenet, capsys, monkeypatch, tmp_path):
    """The control: the same run without the background-class offset must fail the teacher labels."""
    from zoo import registry

    entry = registry.MODELS["mobilenet_v1"]
    monkeypatch.setitem(registry.MODELS, "mobilenet_v1", dataclasses.replace(entry, output=dataclasses.replace(entry.output, label_offset=0)))
    out = tmp_path / "out"
    n = _count(mobilenet)
    text = _run(script, capsys, _argv(mobilenet, "mobilenet_v1", "Offline", "accuracy", out, "--count", n))
    assert f"accuracy=0.000%, good=0, total={n}" in text
    assert _decoded(out) == {i: t + 1 for i, t in enumerate(mobilenet["teacher"][:n])}


def test_performance_singlestream_summary(script, mobilenet, capsys, tmp_path):
    out = tmp_path / "perf"
    text = _run(script, capsys, _argv(mobilenet, "mobilenet_v1", "SingleStream", "performance", out,
                                      "--time", 1, "--count", 8))
    match = re.search(r"Result is (VALID|INVALID); 90(\.0)?th percentile latency \(ns\): (\S+) ns", text)
    assert match, text
    assert float(match.group(3)) > 0
    assert f"summary: {out / 'mlperf_log_summary.txt'}" in text
    assert not (out / "accuracy.json").exists()
    from zoo.eval.mlperf import parse_summary, scenario_metric

    summary = parse_summary(out / "mlperf_log_summary.txt")
    assert summary["Scenario"] == "SingleStream" and summary["Mode"] == "PerformanceOnly"
    assert summary["Result is"] in ("VALID", "INVALID")
    assert int(summary["min_query_count"]) == int(summary["max_query_count"]) == 8
    assert int(summary["min_duration (ms)"]) == 1000
    assert scenario_metric(summary, "SingleStream")[1] > 0


def test_settings_apply_mlperf_conf_then_overrides(lg, tmp_path):
    """mlperf.conf's ResNet-50 facts on every call (LoadGen 6 applies it on the first FromConfig only), then ours."""
    from zoo.eval.mlperf import make_settings

    for _ in range(2):
        settings = make_settings(lg, "resnet50", "Offline", "performance", dataset_size=50000)
        assert settings.performance_sample_count_override == 1024
        assert settings.min_query_count == 24576 and settings.min_duration_ms == 600000
    settings = make_settings(lg, "resnet50", "SingleStream", "accuracy", count=10, seconds=2, qps=50, dataset_size=10)
    assert settings.performance_sample_count_override == 10  # only 10 samples exist
    assert settings.min_query_count == settings.max_query_count == 10
    assert settings.min_duration_ms == 2000 and settings.single_stream_expected_latency_ns == 20_000_000
    assert settings.mode == lg.TestMode.AccuracyOnly and settings.scenario == lg.TestScenario.SingleStream
    conf = tmp_path / "user.conf"
    conf.write_text("resnet50.Server.target_qps = 123\n")
    assert make_settings(lg, "resnet50", "Server", "performance", user_conf=conf).server_target_qps == 123


def test_scorer_on_a_hand_written_log(tmp_path):
    from zoo.eval.mlperf import accuracy_line, score_accuracy_log

    def hexf(value: float) -> str:
        return np.array(value, np.float32).tobytes().hex().upper()

    # qsl 0 -> 3 (label 3: good), qsl 1 -> 7 (label 2: bad), qsl 0 again -> 9 (a duplicate: skipped,
    # the first answer counts), qsl 2 -> 5 (label 5: good), qsl 1 again -> 2 (duplicate: skipped).
    log = [{"seq_id": 0, "qsl_idx": 0, "data": hexf(3)}, {"seq_id": 1, "qsl_idx": 1, "data": hexf(7)},
           {"seq_id": 2, "qsl_idx": 0, "data": hexf(9)}, {"seq_id": 3, "qsl_idx": 2, "data": hexf(5)},
           {"seq_id": 4, "qsl_idx": 1, "data": hexf(2)}]
    assert hexf(3) == "00004040"  # 3.0f little-endian, as LoadGen writes the response bytes
    path = tmp_path / "mlperf_log_accuracy.json"
    path.write_text(json.dumps(log))
    result = score_accuracy_log(path, [3, 2, 5, 0])
    assert (result.good, result.total, result.duplicates) == (2, 3, 2)
    assert result.found == {0: 3, 1: 7, 2: 5}
    assert accuracy_line(result) == "accuracy=66.667%, good=2, total=3"


def test_resnet50_offline_accuracy_nchw(script, tf, image_set, standins, capsys, tmp_path):
    from zoo.standins import resnet50 as upstream

    images, val_map = image_set
    entries = read_val_map(val_map)[:4]
    result = preprocess_images("resnet50", images, val_map, tmp_path / "cache", layout="NCHW", limit=4, progress=False)
    arrays = ArrayDataset(result.out_dir, entries, "resnet50").batch(range(4))
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(standins.source("resnet50").read_bytes())
    teacher = [int(i) - 1 for i in upstream.run_graph(graph_def, arrays.transpose(0, 2, 3, 1)).argmax(1)]
    data = dict(weights=standins.converted("resnet50"), cache=tmp_path / "cache",
                val_map=write_val_map(tmp_path / "teacher.txt", [ValEntry(e.image, t) for e, t in zip(entries, teacher)]))
    out = tmp_path / "out"
    text = _run(script, capsys, _argv(data, "resnet50", "Offline", "accuracy", out, "--max-batchsize", 4))
    assert "accuracy=100.000%, good=4, total=4" in text
    assert "MLPerf reference top-1 76.456%" in text
    assert _decoded(out) == dict(enumerate(teacher))


def _error(script, capsys, argv) -> str:
    """run_cli(main, argv): exit status 2 and one error: line."""
    with pytest.raises(SystemExit) as exit_info:
        run_cli(script.main, argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_bad_input_is_one_error_line(script, mobilenet, capsys, monkeypatch, tmp_path):
    out = tmp_path / "out"
    assert "unknown scenario 'Batch'" in _error(script, capsys, _argv(mobilenet, "mobilenet_v1", "Batch", "accuracy", out))
    # Arrays missing for images the val map lists.
    listing = write_val_map(tmp_path / "val_map.txt", [*read_val_map(mobilenet["val_map"])[:3],
                                                       ValEntry("ILSVRC2012_val_00099999.JPEG", 5)])
    err = _error(script, capsys, _argv({**mobilenet, "val_map": listing}, "mobilenet_v1", "Offline", "accuracy", out))
    assert "no array for 1 of the 4 images" in err and "ILSVRC2012_val_00099999.JPEG" in err
    # Arrays of another model: by folder name, and by index.json.
    err = _error(script, capsys, _argv(mobilenet, "resnet50", "Offline", "accuracy", out))
    assert "no preprocessed/imagenet/<layout> folder" in err
    leaf = arrays_dir(mobilenet["cache"], "mobilenet_v1", "NHWC")
    assert "preprocessed for mobilenet_v1" in _error(script, capsys, _argv({**mobilenet, "cache": leaf}, "resnet50",
                                                                           "Offline", "accuracy", out))
    # Arrays of the wrong shape (no index.json to say so): refused before any model is built.
    bad = tmp_path / "bad"
    bad.mkdir()
    for e in read_val_map(mobilenet["val_map"])[:2]:
        np.save(bad / f"{e.image}.npy", np.zeros((224, 224), np.float32))
    assert "expected float32" in _error(script, capsys, _argv({**mobilenet, "cache": bad}, "mobilenet_v1", "Offline",
                                                              "accuracy", out, "--count", 2))
    # LoadGen not installed.
    monkeypatch.setitem(__import__("sys").modules, "mlperf_loadgen", None)
    assert 'pip install "zoo[mlperf]"' in _error(script, capsys, _argv(mobilenet, "mobilenet_v1", "Offline",
                                                                       "accuracy", out))
    assert not out.exists()
