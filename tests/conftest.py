"""Shared fixtures, and the one hook that makes skips fail in CI.

Tests skip when an optional reference (TensorFlow, OpenCV) or ../shared's real
data is absent on a user's machine. CI sets ZOO_REQUIRE_ALL=1, and then every
skip, whether from pytest.skip, pytest.importorskip or a skip marker, at
collection or at run time, is reported as a failure, so a green run can never
hide a missing reference.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import numpy as np
import pytest

from parity import require_module

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest -n 2 on 2 cores: one thread per worker (and its subprocesses); two OpenMP
    # pools of two threads each on two cores spin against each other and run slower.
    for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        os.environ.setdefault(_variable, "1")

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
    from zoo.eval.val_map import ValEntry, write_val_map

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


class StandIns:
    """Stand-in upstream files (seed 0, the upstream formats) and their conversions, each made once per session.

    Writing a stand-in release costs seconds (MobileNet's .tgz holds a checkpoint,
    a frozen graph and a TFLite file); every module that needs one shares these.
    Treat the files as read-only: copy one before changing it.
    """

    def __init__(self, root: Path):
        self.root = root
        self._made: dict[str, Path] = {}

    def _once(self, key: str, make) -> Path:
        # Under pytest-xdist the workers share ``root``: the first to take a key's lock
        # writes the file, the others wait and read the path it recorded.
        if key not in self._made:
            folder = self.root / key
            folder.mkdir(parents=True, exist_ok=True)
            done = self.root / f".{key}.made"  # beside the folder: tests list the folder's files
            with open(self.root / f".{key}.lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                if not done.is_file():
                    done.write_text(str(make(folder)))
            self._made[key] = Path(done.read_text())
        return self._made[key]

    def source(self, model: str) -> Path:
        """The upstream file ``model``'s default weights tag would download, written by its stand-in."""
        from zoo.registry import get_model_entry

        standin = get_model_entry(model).load("standin")
        return self._once(model, lambda folder: standin.write_upstream(folder, seed=0))

    def frozen_graph(self, model: str) -> Path:
        """The upstream TensorFlow frozen graph (.pb): the release file itself, or its archive member extracted."""
        import tarfile

        from zoo.registry import get_model_entry

        graph = get_model_entry(model).upstream_graph
        assert graph is not None, f"{model} has no upstream TensorFlow graph"
        if graph.frozen_member is None:
            return self.source(model)

        def extract(folder: Path) -> Path:
            with tarfile.open(self.source(model)) as tar:
                (folder / graph.frozen_member).write_bytes(tar.extractfile(graph.frozen_member).read())
            return folder / graph.frozen_member

        return self._once(f"{model}_frozen_graph", extract)

    def converted(self, model: str) -> Path:
        """``model``'s stand-in converted by zoo's converter to .safetensors."""
        from zoo.registry import get_model_entry

        convert = get_model_entry(model).load("converter")
        return self._once(f"{model}_converted", lambda folder: convert(self.source(model), folder / f"{model}.safetensors"))


@pytest.fixture(scope="session")
def standins(tmp_path_factory) -> StandIns:
    """Stand-in upstream files and conversions shared by every test module (see :class:`StandIns`)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # Each worker's basetemp sits in the run's shared folder: one set of stand-ins per run.
        root = tmp_path_factory.getbasetemp().parent / "standins"
        root.mkdir(exist_ok=True)
        return StandIns(root)
    return StandIns(tmp_path_factory.mktemp("standins"))
