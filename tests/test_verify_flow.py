"""scripts/verify_flow.py on ../shared's Sintel and FlyingChairs pairs with the stand-in FlowNet2-SD.

The EPE of random weights means nothing, so the structure is tested: one row
per pair with both EPEs (``epe_all_pixels``, NVIDIA's ``losses.EPE`` over every
pixel, and ``epe_valid_pixels``, Sintel's invalid.png left out), the EPEs of
one pair recomputed here independently (NVIDIA's centre crop written out, the
model run directly, the end-point error written out in NumPy), torch and Keras
agreeing within 1e-3, and the PNGs written. Two pairs of each kind keep it
short (~1.5 s a pair in torch here).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from parity import require_shared
from test_eval_imagenet import FAST_LINE, load_script
from zoo.errors import FormatError
from zoo.flow import read_flo, read_sintel_invalid
from zoo.registry import get_model_entry

cv2 = pytest.importorskip("cv2")
LIMIT = 2
# The port's parity bar in pixels: an EPE moves by no more than the flow itself.
EPE_TOL = get_model_entry("flownet2_sd").tolerance.atol


def _flow_data() -> Path:
    return require_shared("data", "flow")


@pytest.fixture(scope="module")
def weights(standins) -> Path:
    return standins.converted("flownet2_sd")


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
                "--png-dir", str(out / "png"), "--report", str(report), "--quiet", "--plain"]
        assert script.main(argv) == 0
        reports[kind] = json.loads(report.read_text())
    return reports


def test_rows_average_and_pngs(torch_reports, capsys):
    sintel, chairs = torch_reports["sintel"], torch_reports["chairs"]
    assert [r["pair"] for r in sintel["pairs"]] == ["alley_1_clean", "alley_1_final"]
    assert [r["pair"] for r in chairs["pairs"]] == ["0000000", "0000001"]
    for report in (sintel, chairs):
        assert report["count"] == LIMIT and report["framework"] == "torch"
        for field in ("epe_all_pixels", "epe_valid_pixels"):
            assert report[f"average_{field}"] == pytest.approx(np.mean([r[field] for r in report["pairs"]]), abs=1e-12)
        for row in report["pairs"]:
            assert np.isfinite(row["epe_all_pixels"]) and row["epe_all_pixels"] > 0
            assert np.isfinite(row["epe_valid_pixels"]) and row["epe_valid_pixels"] > 0
            for key in ("pred_png", "gt_png"):
                image = cv2.imread(row[key])
                assert image is not None and image.shape == (row["height"], row["width"], 3)
    # NVIDIA's StaticCenterCrop: Sintel 436x1024 -> 384x1024; FlyingChairs' 384x512 unchanged.
    assert {(r["height"], r["width"]) for r in sintel["pairs"]} == {(384, 1024)}
    assert {(r["height"], r["width"]) for r in chairs["pairs"]} == {(384, 512)}


def test_epe_recomputed_independently(torch_reports, weights):
    """alley_1_clean: rows 26..409 of frames, flow and mask; the model run directly; both EPEs in NumPy."""
    import zoo

    folder = _flow_data() / "sintel" / "alley_1_clean"
    rows = slice((436 - 384) // 2, (436 + 384) // 2)
    frames = [cv2.imread(str(folder / f"img{i}.png"))[rows, :, ::-1].astype(np.float32) for i in (0, 1)]
    x = torch.from_numpy(np.ascontiguousarray(np.stack(frames).transpose(3, 0, 1, 2)))[None]  # (1, 3, 2, H, W)
    with torch.no_grad():
        flow = zoo.flownet2_sd(weights=weights)(x)[0].permute(1, 2, 0).numpy()
    gt = read_flo(folder / "flow.flo")[rows]
    # Sintel's invalid.png: nonzero = no valid ground truth (read here with cv2 directly).
    invalid = cv2.imread(str(folder / "invalid.png"), cv2.IMREAD_GRAYSCALE)[rows] != 0
    assert invalid.any(), "alley_1_clean's crop should hold invalid pixels"
    end_point_error = np.sqrt(((flow.astype(np.float64) - gt) ** 2).sum(axis=2))
    row = torch_reports["sintel"]["pairs"][0]
    assert row["pair"] == "alley_1_clean"
    assert row["epe_all_pixels"] == pytest.approx(end_point_error.mean(), abs=1e-5)
    assert row["epe_valid_pixels"] == pytest.approx(end_point_error[~invalid].mean(), abs=1e-5)
    # With invalid pixels present the two numbers differ; without a mask (FlyingChairs) they are one number.
    assert row["epe_valid_pixels"] != row["epe_all_pixels"]
    assert row["valid_fraction"] == pytest.approx(1 - invalid.mean(), abs=1e-12)
    for chairs_row in torch_reports["chairs"]["pairs"]:
        assert chairs_row["valid_fraction"] == 1.0
        assert chairs_row["epe_valid_pixels"] == chairs_row["epe_all_pixels"]


def test_printout_labels_both_epes(torch_reports, script, weights, capsys):
    """The printed table names both averages, so a reader can tell which matches a published number."""
    capsys.readouterr()
    assert script.main(["--weights", str(weights), "--data", str(_flow_data() / "sintel"), "--limit", "1",
                        "--quiet", "--plain"]) == 0
    text = capsys.readouterr().out
    row = torch_reports["sintel"]["pairs"][0]  # alley_1_clean, the same pair
    assert "EPE all" in text and "EPE valid" in text
    assert f"all pixels (NVIDIA losses.EPE): {row['epe_all_pixels']:.4f}" in text
    assert f"valid pixels (invalid.png left out): {row['epe_valid_pixels']:.4f}" in text


def test_keras_agrees_with_torch(script, weights, torch_reports, keras, tmp_path):
    data = _flow_data()
    for kind in ("sintel", "chairs"):
        report = tmp_path / f"{kind}.json"
        assert script.main(["--weights", str(weights), "--data", str(data / kind), "--limit", str(LIMIT),
                            "--framework", "keras", "--report", str(report), "--quiet", "--plain"]) == 0
        ours = json.loads(report.read_text())
        for k_row, t_row in zip(ours["pairs"], torch_reports[kind]["pairs"], strict=True):
            assert k_row["pair"] == t_row["pair"]
            for field in ("epe_all_pixels", "epe_valid_pixels"):
                assert abs(k_row[field] - t_row[field]) <= EPE_TOL, (k_row["pair"], field)
        for field in ("average_epe_all_pixels", "average_epe_valid_pixels"):
            assert abs(ours[field] - torch_reports[kind][field]) <= EPE_TOL, field


def test_default_fast_form_is_checked_against_the_model_as_built(script, weights, tmp_path, capsys):
    """No --plain: zoo.fast_inference_model (compiled), checked on the first pair; one small pair keeps it short."""
    from zoo.flow import write_flo

    generator = np.random.default_rng(0)
    for name in ("0000001-img0.ppm", "0000001-img1.ppm"):
        assert cv2.imwrite(str(tmp_path / name), generator.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    write_flo(tmp_path / "0000001-gt.flo", generator.standard_normal((64, 64, 2)).astype(np.float32))
    report = tmp_path / "fast.json"
    assert script.main(["--weights", str(weights), "--data", str(tmp_path), "--report", str(report), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.count(FAST_LINE) == 1 and "on a first batch of 1 (torch: zoo.fast_inference_model)" in out
    check = json.loads(report.read_text())["fast_check"]
    assert 0 <= check["max_diff"] <= 1e-4 and check["tolerance"] == 1e-4


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
    assert script.main(["--weights", str(weights), "--data", str(tmp_path), "--quiet"]) == 2
    assert "flow.flo: missing" in capsys.readouterr().err


def test_both_epes_by_arithmetic(tmp_path):
    """evaluate_flow's two EPEs on hand-made Sintel-style pairs whose answers are worked out by hand.

    Frames 100x128 are centre-cropped to 64x128 (rows 18..81, NVIDIA's
    StaticCenterCrop). Ground truth is 0 inside the crop and 1e6 outside (a
    wrong crop would show). The prediction errs by (3, 4), length 5, on the
    left 64 columns and by (0, 1), length 1, on the right 64. In pair
    ``masked``, invalid.png marks the crop's rows 0..31 of the left half
    (2048 pixels, all with error 5) and every row above the crop (must not
    count). All pixels: (4096 * 5 + 4096 * 1) / 8192 = 3. Valid pixels:
    (2048 * 5 + 4096 * 1) / 6144 = 14336 / 6144 = 7/3. Pair ``plain`` has no
    invalid.png: both numbers 3. Dataset means: all 3, valid (7/3 + 3) / 2 = 8/3.
    """
    from zoo.eval.flow_eval import evaluate_flow, find_pairs, format_table
    from zoo.flow import write_flo

    height, width, top = 100, 128, (100 - 64) // 2
    assert top == 18
    gt = np.full((height, width, 2), 1e6, np.float32)
    gt[top : top + 64] = 0.0
    for name in ("masked", "plain"):
        folder = tmp_path / name
        folder.mkdir()
        frame = np.zeros((height, width, 3), np.uint8)
        assert cv2.imwrite(str(folder / "img0.png"), frame) and cv2.imwrite(str(folder / "img1.png"), frame)
        write_flo(folder / "flow.flo", gt)
    invalid = np.zeros((height, width), np.uint8)
    invalid[top : top + 32, :64] = 255
    invalid[:top] = 255
    assert cv2.imwrite(str(tmp_path / "masked" / "invalid.png"), invalid)

    def predict(frames: np.ndarray) -> np.ndarray:
        assert frames.shape == (2, 64, 128, 3)
        flow = np.zeros((64, 128, 2), np.float32)
        flow[:, :64] = (3.0, 4.0)
        flow[:, 64:] = (0.0, 1.0)
        return flow

    result = evaluate_flow(find_pairs(tmp_path), predict, progress=False)
    masked, plain = result["pairs"]
    assert (masked["pair"], plain["pair"]) == ("masked", "plain")
    assert masked["valid_fraction"] == 6144 / 8192
    assert masked["epe_all_pixels"] == pytest.approx(3.0, abs=1e-12)
    assert masked["epe_valid_pixels"] == pytest.approx(7 / 3, abs=1e-12)
    assert plain["valid_fraction"] == 1.0
    assert plain["epe_all_pixels"] == pytest.approx(3.0, abs=1e-12)
    assert plain["epe_valid_pixels"] == pytest.approx(3.0, abs=1e-12)
    assert result["average_epe_all_pixels"] == pytest.approx(3.0, abs=1e-12)
    assert result["average_epe_valid_pixels"] == pytest.approx(8 / 3, abs=1e-12)
    text = format_table(result)
    assert "all pixels (NVIDIA losses.EPE): 3.0000" in text
    assert "valid pixels (invalid.png left out): 2.6667" in text
