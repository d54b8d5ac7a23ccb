"""Shared fixtures, and the one hook that makes skips fail in CI.

Tests skip when an optional reference (TensorFlow, OpenCV) or ../shared's real
data is absent on a user's machine. CI sets ZOO_REQUIRE_ALL=1, and then every
skip, whether from pytest.skip, pytest.importorskip or a skip marker, at
collection or at run time, is reported as a failure, so a green run can never
hide a missing reference.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from parity import require_module

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REQUIRE_ALL = os.environ.get("ZOO_REQUIRE_ALL") == "1"


def _fail_instead_of_skip(report) -> None:
    if REQUIRE_ALL and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped, but ZOO_REQUIRE_ALL=1 forbids skips: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_instead_of_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_instead_of_skip(outcome.get_result())


@pytest.fixture(scope="session")
def tf():
    """TensorFlow, the reference for TF-born semantics."""
    return require_module("tensorflow")


@pytest.fixture(scope="session")
def keras(tf):
    """Keras 3 on the TensorFlow backend."""
    return require_module("keras")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="module")
def image_set(tmp_path_factory) -> tuple[Path, Path]:
    """(image folder, val_map): ../shared's 115 real validation JPEGs, else the skimage photos as JPEGs."""
    import cv2

    from parity import shared_dir, skimage_photos_bgr
    from zoo.eval.imagenet import ValEntry, write_val_map

    shared = shared_dir()
    if shared is not None:
        data = shared / "data" / "imagenet"
        return data / "val", data / "val_map.txt"
    folder = tmp_path_factory.mktemp("photos")
    entries = []
    for i, image in enumerate(skimage_photos_bgr()):
        name = f"photo_{i}.JPEG"
        cv2.imwrite(str(folder / name), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        entries.append(ValEntry(name, i))
    return folder, write_val_map(folder / "val_map.txt", entries)
