"""scripts/verify_flow.py on ../shared's Sintel and FlyingChairs pairs with the stand-in FlowNet2-SD.

The EPE of random weights means nothing, so the structure is tested: one row
per pair, the EPE of one pair recomputed here independently (NVIDIA's centre
crop written out, the model run directly, zoo.flow.average_epe), torch and
Keras agreeing within 1e-3, and the PNGs written. Two pairs of each kind keep
it short (~1.5 s a pair in torch here).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from parity import ROOT
from test_eval_imagenet import load_script
from zoo.errors import FormatError
from zoo.flow import average_epe, read_flo, read_sintel_invalid

cv2 = pytest.importorskip("cv2")
LIMIT = 2
EPE_TOL = 1e-3


def _flow_data() -> Path:
    env = os.environ.get("ZOO_DATA_DIR")
    folder = (Path(env) if env else ROOT.parent / "shared" / "data") / "flow"
    if not folder.is_dir():
        if os.environ.get("ZOO_REQUIRE_ALL") == "1":
            pytest.fail(f"real flow data not found under {folder} (ZOO_REQUIRE_ALL=1)")
        pytest.skip(f"real flow data not found under {folder} (set ZOO_DATA_DIR to the shared data folder)")
    return folder


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    from zoo.convert.flownet2_sd import convert
    from zoo.standins.flownet2_sd import write_checkpoint

    folder = tmp_path_factory.mktemp("flownet")
    return convert(write_checkpoint(folder / "FlowNet2-SD_checkpoint.pth.tar", seed=0), folder / "fn.safetensors")


@pytest.fixture(scope="module")
def script():
    return load_script("verify_flow")


@pytest.fixture(scope="module")
def torch_reports(script, weights, tmp_path_factory) -> dict[str, dict]:
    """verify_flow.py in torch, on 2 Sintel and 2 FlyingChairs pairs, with PNGs and a JSON report."""
    data = _flow_data()
    out = tmp_path_factory.mktemp("flow_torch")
    reports = {}
    for kind in ("sintel", "chairs"):
        report = out / f"{kind}.json"
        argv = ["--weights", str(weights), "--data", str(data / kind), "--limit", str(LIMIT),
                "--png-dir", str(out / "png"), "--report", str(report), "--quiet"]
        assert script.main(argv) == 0
        reports[kind] = json.loads(report.read_text())
    return reports


def test_rows_average_and_pngs(torch_reports, capsys):
    sintel, chairs = torch_reports["sintel"], torch_reports["chairs"]
    assert [r["pair"] for r in sintel["pairs"]] == ["alley_1_clean", "alley_1_final"]
    assert [r["pair"] for r in chairs["pairs"]] == ["0000000", "0000001"]
    for report in (sintel, chairs):
        assert report["count"] == LIMIT and report["framework"] == "torch"
        assert report["average_epe"] == pytest.approx(np.mean([r["epe"] for r in report["pairs"]]), abs=1e-12)
        for row in report["pairs"]:
            assert np.isfinite(row["epe"]) and row["epe"] > 0
            for key in ("pred_png", "gt_png"):
                image = cv2.imread(row[key])
                assert image is not None and image.shape == (row["height"], row["width"], 3)
    # NVIDIA's StaticCenterCrop: Sintel 436x1024 -> 384x1024; FlyingChairs' 384x512 unchanged.
    assert {(r["height"], r["width"]) for r in sintel["pairs"]} == {(384, 1024)}
    assert {(r["height"], r["width"]) for r in chairs["pairs"]} == {(384, 512)}


def test_epe_recomputed_independently(torch_reports, weights):
    """alley_1_clean: rows 26..409 of frames, flow and mask; the model run directly; average_epe."""
    import zoo

    folder = _flow_data() / "sintel" / "alley_1_clean"
    rows = slice((436 - 384) // 2, (436 + 384) // 2)
    frames = [cv2.imread(str(folder / f"img{i}.png"))[rows, :, ::-1].astype(np.float32) for i in (0, 1)]
    x = torch.from_numpy(np.ascontiguousarray(np.stack(frames).transpose(3, 0, 1, 2)))[None]  # (1, 3, 2, H, W)
    with torch.no_grad():
        flow = zoo.flownet2_sd(weights=weights)(x)[0].permute(1, 2, 0).numpy()
    epe = average_epe(flow, read_flo(folder / "flow.flo")[rows], read_sintel_invalid(folder / "invalid.png")[rows])
    row = torch_reports["sintel"]["pairs"][0]
    assert row["pair"] == "alley_1_clean"
    assert row["epe"] == pytest.approx(epe, abs=1e-5)


def test_keras_agrees_with_torch(script, weights, torch_reports, keras, tmp_path):
    data = _flow_data()
    for kind in ("sintel", "chairs"):
        report = tmp_path / f"{kind}.json"
        assert script.main(["--weights", str(weights), "--data", str(data / kind), "--limit", str(LIMIT),
                            "--framework", "keras", "--report", str(report), "--quiet"]) == 0
        ours = json.loads(report.read_text())
        for k_row, t_row in zip(ours["pairs"], torch_reports[kind]["pairs"], strict=True):
            assert k_row["pair"] == t_row["pair"]
            assert abs(k_row["epe"] - t_row["epe"]) <= EPE_TOL, k_row["pair"]
        assert abs(ours["average_epe"] - torch_reports[kind]["average_epe"]) <= EPE_TOL


def test_sintel_invalid_mask_is_used_and_errors_name_files(tmp_path, capsys, script, weights):
    from zoo.eval.flow_eval import find_pairs, load_pair

    data = _flow_data()
    pairs = find_pairs(data)  # both kinds, searched recursively
    assert {p.kind for p in pairs} == {"sintel", "chairs"} and len(pairs) == 18
    masked = [p for p in pairs if p.kind == "sintel" and not read_sintel_invalid(p.invalid).all()]
    assert masked, "some Sintel pair should have invalid pixels"
    _, gt, valid = load_pair(masked[0])
    assert valid.shape == gt.shape[:2] == (384, 1024) and not valid.all()

    broken = tmp_path / "seq_clean"
    broken.mkdir()
    (broken / "img0.png").write_bytes((masked[0].img0).read_bytes())
    (broken / "img1.png").write_bytes((masked[0].img1).read_bytes())
    (broken / "flow.flo").write_bytes(b"PIEH")
    with pytest.raises(FormatError, match="flow.flo"):
        load_pair(find_pairs(tmp_path)[0])
    (broken / "flow.flo").unlink()
    assert script.main(["--weights", str(weights), "--data", str(tmp_path), "--quiet"]) == 1
    assert "flow.flo: missing" in capsys.readouterr().err
