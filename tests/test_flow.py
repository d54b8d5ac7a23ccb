"""Optical-flow tools: ``.flo`` I/O, end-point error, Middlebury colour coding.

Expectations come from outside the code under test: the ``.flo`` layout in
Middlebury's ``flow_io.cpp`` (tag "PIEH" = float 202021.25, int32 width,
int32 height, float32 u/v interleaved row-major), encoded here with
``struct``; arithmetic facts (a (1, 0) shift has end-point error 1, a (3, 4)
shift 5); the documented sizes and mean magnitudes of the real FlyingChairs
and MPI-Sintel files in ``../shared/data/flow``; and colours worked out by hand
from the Middlebury colour wheel (``colorcode.cpp``: segments RY=15, YG=6,
GC=4, CB=11, BM=13, MR=6; entry ``k`` is hit by ``atan2(-v, -u) / pi = 2k/54 - 1``;
inside radius 1, ``col = 255 - r * (255 - wheel)``; beyond it ``0.75 * wheel``;
truncated to an integer).
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from parity import require_module, require_shared

from zoo.errors import FormatError
from zoo.flow import average_epe, flow_to_color, read_flo, read_sintel_invalid, save_flow_png, write_flo

ROOT = Path(__file__).resolve().parents[1]

# Documented sizes (shared/README.md; FlyingChairs and MPI-Sintel releases), as (H, W).
CHAIRS_SHAPE = (384, 512)
SINTEL_SHAPE = (436, 1024)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def cv2():
    """OpenCV (a dev extra): skip without it (a failure under ZOO_REQUIRE_ALL=1, see conftest)."""
    return require_module("cv2")


@pytest.fixture(scope="module")
def flow_data() -> Path:
    """``shared/data/flow`` (FlyingChairs and MPI-Sintel pairs), or skip."""
    folder = require_shared("data", "flow")
    if not (folder / "chairs").is_dir() or not (folder / "sintel" / "index.json").is_file():
        pytest.skip(f"real flow data incomplete under {folder}")
    return folder


def _sintel_entries(flow_data: Path) -> list[dict]:
    return json.loads((flow_data / "sintel" / "index.json").read_text())


def _flo_bytes(flow: np.ndarray, magic: float = 202021.25, width: int | None = None, height: int | None = None) -> bytes:
    """An independent .flo encoding (flow_io.cpp layout)."""
    h, w = flow.shape[:2]
    header = struct.pack("<fii", magic, w if width is None else width, h if height is None else height)
    return header + np.ascontiguousarray(flow, dtype="<f4").tobytes()


def _finite_random_floats(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Random float32 bit patterns (denormals, huge and tiny values, signed zeros), NaN/inf replaced."""
    bits = rng.integers(0, 2**32, size=shape, dtype=np.uint64).astype(np.uint32)
    values = bits.view(np.float32).copy()
    values[~np.isfinite(values)] = np.float32(1.5)
    return values


# --------------------------------------------------------------------------- .flo


def test_flo_written_bytes_match_independent_encoding(tmp_path, rng):
    flow = (rng.standard_normal((5, 7, 2)) * 20).astype(np.float32)
    path = tmp_path / "f.flo"
    write_flo(path, flow)
    written = path.read_bytes()
    assert written[:4] == b"PIEH"  # flow_io.cpp: the tag in ASCII
    assert struct.unpack("<fii", written[:12]) == (202021.25, 7, 5)  # width first, then height
    assert written == _flo_bytes(flow)
    assert len(written) == 12 + 7 * 5 * 8


def test_flo_round_trip_is_bit_exact(tmp_path, rng):
    flow = _finite_random_floats(rng, (13, 17, 2))
    path = tmp_path / "r.flo"
    write_flo(path, flow)
    back = read_flo(path)
    assert back.dtype == np.float32 and back.shape == (13, 17, 2)
    np.testing.assert_array_equal(back.view(np.uint32), flow.view(np.uint32))


def test_flo_write_converts_dtype_and_layout(tmp_path, rng):
    flow64 = rng.standard_normal((6, 4, 2)) * 3
    strided = flow64[::-1, ::2]  # not C-contiguous
    write_flo(tmp_path / "a.flo", strided)
    assert (tmp_path / "a.flo").read_bytes() == _flo_bytes(strided.astype(np.float32))
    ints = np.arange(24, dtype=np.int16).reshape(3, 4, 2)
    write_flo(tmp_path / "b.flo", ints)
    np.testing.assert_array_equal(read_flo(tmp_path / "b.flo"), ints.astype(np.float32))


@pytest.mark.parametrize("shape", [(4, 5), (4, 5, 3), (4, 5, 2, 1), (0, 5, 2)])
def test_flo_write_rejects_bad_shapes_and_writes_nothing(tmp_path, shape):
    with pytest.raises(ValueError, match="shape|empty"):
        write_flo(tmp_path / "bad.flo", np.zeros(shape, np.float32))
    assert list(tmp_path.iterdir()) == []


def test_flo_write_failure_keeps_old_file_and_leaves_no_temporary(tmp_path, rng, monkeypatch):
    path = tmp_path / "keep.flo"
    original = _flo_bytes(np.ones((2, 3, 2), np.float32))
    path.write_bytes(original)

    def failing_replace(src, dst):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="simulated"):
        write_flo(path, rng.standard_normal((4, 4, 2)))
    monkeypatch.undo()
    assert path.read_bytes() == original
    assert [p.name for p in tmp_path.iterdir()] == ["keep.flo"]


def test_flo_write_leaves_only_the_target(tmp_path):
    write_flo(tmp_path / "only.flo", np.zeros((2, 2, 2)))
    assert [p.name for p in tmp_path.iterdir()] == ["only.flo"]


def _corrupt_cases() -> dict[str, tuple[bytes, str]]:
    good = np.arange(4 * 3 * 2, dtype=np.float32).reshape(3, 4, 2)
    encoded = _flo_bytes(good)
    return {
        "zero_bytes": (b"", "header"),
        "partial_header": (encoded[:7], "header"),
        "wrong_magic": (_flo_bytes(good, magic=1.0), "tag"),
        "png_instead": (b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "tag"),
        "big_endian": (struct.pack(">fii", 202021.25, 4, 3) + good.astype(">f4").tobytes(), "tag"),
        "truncated_data": (encoded[:-4], "truncated"),
        "header_only": (encoded[:12], "truncated"),
        "trailing_bytes": (encoded + b"\0\0\0\0", "trailing"),
        "negative_width": (_flo_bytes(good, width=-4), "width"),
        "zero_height": (_flo_bytes(good, height=0), "height"),
        "absurd_dimensions": (_flo_bytes(good, width=2_000_000_000, height=2_000_000_000), "width"),
        "swapped_dimensions_wrong_size": (_flo_bytes(good, width=3, height=5), "truncated|trailing"),
    }


@pytest.mark.parametrize("case", sorted(_corrupt_cases()))
def test_corrupt_flo_raises_format_error_naming_the_file(tmp_path, case):
    payload, problem = _corrupt_cases()[case]
    path = tmp_path / f"{case}.flo"
    path.write_bytes(payload)
    with pytest.raises(FormatError, match=problem) as info:
        read_flo(path)
    assert str(path) in str(info.value)


# --------------------------------------------------------------------------- real data


def test_real_chairs_flo_have_documented_size(flow_data):
    files = sorted((flow_data / "chairs").glob("*-gt.flo"))
    assert len(files) == 9  # shared/README.md: 9 FlyingChairs pairs
    for path in files:
        flow = read_flo(path)
        assert flow.shape == (*CHAIRS_SHAPE, 2), path
        assert flow.dtype == np.float32
        assert np.isfinite(flow).all()
        # Independent decode: skip the 12-byte header, little-endian float32.
        raw = np.fromfile(path, dtype="<f4", offset=12).reshape(*CHAIRS_SHAPE, 2)
        np.testing.assert_array_equal(flow, raw)


def test_real_flo_rewrites_byte_identically(tmp_path, flow_data):
    source = sorted((flow_data / "chairs").glob("*-gt.flo"))[0]
    write_flo(tmp_path / "copy.flo", read_flo(source))
    assert (tmp_path / "copy.flo").read_bytes() == source.read_bytes()


def test_real_sintel_flo_size_and_mean_magnitude(flow_data):
    entries = _sintel_entries(flow_data)
    assert len(entries) == 9
    for entry in entries:
        flow = read_flo(flow_data / "sintel" / entry["name"] / "flow.flo")
        assert flow.shape == (*SINTEL_SHAPE, 2), entry["name"]
        assert (entry["h"], entry["w"]) == SINTEL_SHAPE
        if "mean_mag" in entry:
            # index.json rounds to 3 decimals; magnitude over all pixels.
            magnitude = np.hypot(flow[..., 0].astype(np.float64), flow[..., 1].astype(np.float64))
            assert magnitude.mean() == pytest.approx(entry["mean_mag"], abs=1e-3), entry["name"]


def test_real_sintel_invalid_mask(flow_data, cv2):
    for entry in _sintel_entries(flow_data):
        path = flow_data / "sintel" / entry["name"] / "invalid.png"
        valid = read_sintel_invalid(path)
        assert valid.dtype == np.bool_ and valid.shape == SINTEL_SHAPE
        raw = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        assert set(np.unique(raw)) <= {0, 255}  # Sintel: 255 marks invalid pixels
        np.testing.assert_array_equal(valid, raw == 0)


def test_real_epe_against_itself_shift_and_mask(flow_data, cv2):
    entry = max(_sintel_entries(flow_data), key=lambda e: e.get("mean_mag", 0))
    folder = flow_data / "sintel" / entry["name"]
    gt = read_flo(folder / "flow.flo")
    valid = read_sintel_invalid(folder / "invalid.png")
    assert average_epe(gt, gt) == 0.0
    shifted = gt.astype(np.float64) + np.array([1.0, 0.0])
    assert average_epe(shifted, gt) == pytest.approx(1.0, abs=1e-6)
    # Garbage where Sintel has no valid flow must not count.
    if (~valid).any():
        shifted[~valid] += 1e6
        assert average_epe(shifted, gt, valid) == pytest.approx(1.0, abs=1e-6)
        assert average_epe(shifted, gt) > 1.0 + 1e6 * (~valid).mean() / 2


# --------------------------------------------------------------------------- EPE


def test_epe_zero_against_itself(rng):
    gt = (rng.standard_normal((40, 60, 2)) * 30).astype(np.float32)
    assert average_epe(gt, gt) == 0.0


@pytest.mark.parametrize(("shift", "expected"), [((1, 0), 1.0), ((0, -1), 1.0), ((3, 4), 5.0), ((-0.6, 0.8), 1.0)])
def test_epe_of_constant_shift_is_its_length(rng, shift, expected):
    gt = (rng.standard_normal((40, 60, 2)) * 30).astype(np.float32)
    moved = gt.astype(np.float64) + np.array(shift, dtype=np.float64)
    assert average_epe(moved, gt) == pytest.approx(expected, abs=1e-6)
    assert average_epe(gt, moved) == pytest.approx(expected, abs=1e-6)


def test_epe_averages_per_pixel_errors():
    gt = np.zeros((2, 2, 2))
    flow = np.zeros((2, 2, 2))
    flow[0, :] = (1.0, 0.0)  # error 1 on the top row
    flow[1, :] = (0.0, 3.0)  # error 3 on the bottom row
    assert average_epe(flow, gt) == pytest.approx(2.0, abs=1e-12)


def test_epe_mask_counts_only_valid_pixels(rng):
    gt = (rng.standard_normal((30, 50, 2)) * 10).astype(np.float32)
    valid = rng.random((30, 50)) < 0.7
    flow = gt.astype(np.float64) + np.array([1.0, 0.0])
    flow[~valid] += np.array([1e6, -1e6])  # huge error on every masked pixel
    assert average_epe(flow, gt, valid) == pytest.approx(1.0, abs=1e-6)
    assert average_epe(flow, gt) > 1e5
    # Only one valid pixel, with error 5.
    single = np.zeros((30, 50), bool)
    single[3, 4] = True
    flow[3, 4] = gt[3, 4] + np.array([3.0, 4.0])
    assert average_epe(flow, gt, single) == pytest.approx(5.0, abs=1e-6)


def test_epe_without_mask_is_nvidia_losses_epe(rng):
    """valid=None is NVIDIA flownet2-pytorch's losses.EPE: torch.norm(target - output, p=2, dim=1).mean() on NCHW."""
    torch = pytest.importorskip("torch")
    gt = (rng.standard_normal((2, 24, 40, 2)) * 10).astype(np.float32)
    flow = gt + (rng.standard_normal(gt.shape) * 3).astype(np.float32)
    # NVIDIA's formula as it reads, on a batch of NCHW tensors: one number for the batch.
    nvidia = float(torch.norm(torch.from_numpy(gt - flow).permute(0, 3, 1, 2), p=2, dim=1).mean())
    # Same-sized samples: the batch mean is the mean of the per-sample means.
    ours = np.mean([average_epe(flow[i], gt[i]) for i in range(2)])
    assert ours == pytest.approx(nvidia, rel=1e-5)


def test_epe_keeps_float64_precision():
    gt = np.full((3, 3, 2), 1000.0)
    flow = gt + np.array([1e-4, 0.0])  # float32 would round 1000.0001 to 1000.00012207
    assert average_epe(flow, gt) == pytest.approx(1e-4, abs=1e-9)


def test_epe_rejects_bad_input():
    gt = np.zeros((4, 5, 2))
    with pytest.raises(ValueError, match="shape"):
        average_epe(np.zeros((4, 6, 2)), gt)
    with pytest.raises(ValueError, match="shape"):
        average_epe(np.zeros((4, 5)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="no pixel valid"):
        average_epe(gt, gt, np.zeros((4, 5), bool))
    with pytest.raises(ValueError, match="shape"):
        average_epe(gt, gt, np.ones((5, 4), bool))
    with pytest.raises(ValueError, match="bool"):
        average_epe(gt, gt, np.full((4, 5), 255, np.uint8))  # a raw invalid.png is not a validity mask


# --------------------------------------------------------------------------- colour coding


def _at(flow_vectors: list[tuple[float, float]], max_flow: float | None = None) -> np.ndarray:
    flow = np.array([flow_vectors], dtype=np.float64)
    return flow_to_color(flow, max_flow)[0]


def test_color_output_type_and_zero_flow_is_white(rng):
    image = flow_to_color(rng.standard_normal((7, 9, 2)))
    assert image.dtype == np.uint8 and image.shape == (7, 9, 3)
    np.testing.assert_array_equal(flow_to_color(np.zeros((3, 4, 2))), np.full((3, 4, 3), 255, np.uint8))


def test_color_cardinal_directions_at_full_magnitude():
    colors = _at([(1, 0), (-1, 0), (0, 1), (0, -1)], max_flow=1.0)
    # +x: atan2(-0, -1)/pi = -1 -> wheel entry 0, the start of red-yellow: pure red.
    np.testing.assert_array_equal(colors[0], (255, 0, 0))
    # -x: angle 0 -> entry 27 = cyan-blue entry 2: (0, 255 - 255*2//11, 255) = (0, 209, 255).
    np.testing.assert_array_equal(colors[1], (0, 209, 255))
    # +y (down): -0.5 -> 13.5, halfway between RY entries 13 and 14: G = (221 + 238) / 2 = 229.5 -> 229.
    np.testing.assert_array_equal(colors[2], (255, 229, 0))
    # -y (up): 0.5 -> 40.5, halfway between BM entries 4 and 5: R = (78 + 98) / 2 = 88.
    np.testing.assert_array_equal(colors[3], (88, 0, 255))


@pytest.mark.parametrize(
    ("entry", "rgb"),
    # The first entry of each segment is its named colour.
    [(15, (255, 255, 0)), (21, (0, 255, 0)), (25, (0, 255, 255)), (36, (0, 0, 255)), (49, (255, 0, 255))],
)
def test_color_segment_starts_are_their_named_colours(entry, rgb):
    theta = np.pi * (2 * entry / 54 - 1)  # atan2(-v, -u) = theta
    # Length a hair under 1 so rounding cannot push it past the unit circle (which dims by 0.75).
    color = _at([(-0.9999 * np.cos(theta), -0.9999 * np.sin(theta))], max_flow=1.0)[0]
    # Float rounding of the angle may land a hair before the entry, and r < 1: allow one level.
    assert np.abs(color.astype(int) - np.array(rgb)).max() <= 1, color


def test_color_saturation_dimming_and_unknown():
    half, beyond, unknown, nan = _at([(0.5, 0), (2, 0), (1e10, 0), (np.nan, 0)], max_flow=1.0)
    np.testing.assert_array_equal(half, (255, 127, 127))  # 255 - 0.5 * 255 = 127.5 -> 127
    np.testing.assert_array_equal(beyond, (191, 0, 0))  # 0.75 * 255 = 191.25 -> 191
    np.testing.assert_array_equal(unknown, (0, 0, 0))  # flowIO.h: |u| > 1e9 is unknown
    np.testing.assert_array_equal(nan, (0, 0, 0))


def test_color_normalises_by_largest_magnitude():
    colors = _at([(4, 0), (2, 0), (0, 0), (1e10, 0)])  # the unknown vector must not set the scale
    np.testing.assert_array_equal(colors[0], (255, 0, 0))
    np.testing.assert_array_equal(colors[1], (255, 127, 127))
    np.testing.assert_array_equal(colors[2], (255, 255, 255))
    # Scale invariance without max_flow.
    flow = np.array([[[3.0, -1.0], [0.2, 2.0]]])
    np.testing.assert_array_equal(flow_to_color(flow), flow_to_color(flow * 7.5))


def test_color_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        flow_to_color(np.zeros((4, 5, 3)))
    with pytest.raises(ValueError, match="max_flow"):
        flow_to_color(np.zeros((4, 5, 2)), max_flow=0)


def test_flow_png_reads_back(tmp_path, rng, cv2):
    flow = rng.standard_normal((12, 16, 2)) * 5
    flow[0, 0] = (100.0, 0.0)  # the largest vector: pure red
    path = tmp_path / "flow.png"
    save_flow_png(path, flow)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bgr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert bgr.dtype == np.uint8 and bgr.shape == (12, 16, 3)
    np.testing.assert_array_equal(bgr[0, 0], (0, 0, 255))  # red, in OpenCV's BGR order
    np.testing.assert_array_equal(bgr[..., ::-1], flow_to_color(flow))
    assert [p.name for p in tmp_path.iterdir()] == ["flow.png"]


def test_real_flow_png_reads_back(tmp_path, flow_data, cv2):
    flow = read_flo(sorted((flow_data / "chairs").glob("*-gt.flo"))[0])
    path = tmp_path / "chairs.png"
    save_flow_png(path, flow, max_flow=20.0)
    rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(rgb, flow_to_color(flow, max_flow=20.0))
