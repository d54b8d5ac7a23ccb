"""ZOO_REQUIRE_ALL=1 (set by CI) turns every kind of skip into a failure, through conftest's one hook."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

SKIPPING_TESTS = '''
import pytest
from parity import require_module, require_shared

def test_plain_skip():
    pytest.skip("no reason")

def test_importorskip():
    pytest.importorskip("a_module_that_does_not_exist")

@pytest.mark.skip(reason="marker")
def test_marker():
    pass

def test_require_module():
    require_module("another_module_that_does_not_exist")

def test_require_shared():
    require_shared("no", "such", "folder")

def test_passes():
    pass
'''
MODULE_LEVEL_SKIP = 'import pytest\npytest.importorskip("a_module_that_does_not_exist")\n\ndef test_never_runs():\n    pass\n'


def _run(tmp_path: Path, require_all: bool) -> str:
    for name in ("conftest.py", "parity.py"):
        shutil.copy(HERE / name, tmp_path / name)
    (tmp_path / "test_skips.py").write_text(SKIPPING_TESTS)
    (tmp_path / "test_module_skip.py").write_text(MODULE_LEVEL_SKIP)
    env = {k: v for k, v in os.environ.items() if k not in ("ZOO_REQUIRE_ALL", "ZOO_DATA_DIR")}
    env["ZOO_DATA_DIR"] = str(tmp_path / "absent" / "data")  # hide ../shared
    if require_all:
        env["ZOO_REQUIRE_ALL"] = "1"
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--continue-on-collection-errors",
                             str(tmp_path)],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    return result.stdout.strip().splitlines()[-1]


def test_skips_stay_skips_by_default(tmp_path):
    assert _run(tmp_path, require_all=False).startswith("1 passed, 6 skipped")


def test_require_all_turns_every_skip_into_a_failure(tmp_path):
    last = _run(tmp_path, require_all=True)
    # Four run-time skips fail; the skip marker (reported at setup) and the module-level
    # importorskip (at collection) become errors. Nothing is skipped.
    assert last.startswith("4 failed, 1 passed, 2 errors"), last
