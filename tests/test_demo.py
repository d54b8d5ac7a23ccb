"""The README's first command runs and reports every exact block within tolerance."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_demo_runs_and_prints_the_parity_table(tf):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, "-m", "zoo.demo"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    verdicts = [line.split()[-2] for line in lines[2:] if line.split()[-2] in ("exact", "differs", "FAIL", "agrees?")]
    assert verdicts.count("exact") >= 10
    # Each naive port shown for contrast must really differ from the reference.
    assert "agrees?" not in verdicts and "FAIL" not in verdicts
