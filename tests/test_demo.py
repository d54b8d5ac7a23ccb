"""The README's first command: the main job runs offline and prints the parity table."""

from __future__ import annotations

import os
import subprocess
import sys

from safetensors.torch import save_file

from parity import ROOT


def _demo(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        [sys.executable, "-m", "zoo.demo", *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=600
    )


def _verdicts(stdout: str) -> dict[tuple[str, str], str]:
    rows = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] in ("mobilenet_v1", "resnet50", "flownet2_sd"):
            rows[(parts[0], parts[1])] = parts[-1]
    return rows


def test_main_job_prints_the_parity_table(tf):
    result = _demo()
    assert result.returncode == 0, result.stdout + result.stderr
    verdicts = _verdicts(result.stdout)
    for model in ("mobilenet_v1", "resnet50", "flownet2_sd"):
        for framework in ("torch", "keras"):
            assert verdicts.get((model, framework)) == "exact", result.stdout


def test_main_job_with_real_weights_prints_top5(tf, tmp_path):
    # Any converted file stands in for real weights here: a random-init model's state dict.
    model = __import__("zoo").mobilenet_v1_tf_compat()
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    save_file(state, str(tmp_path / "m.safetensors"))
    labels = tmp_path / "synset_words.txt"
    labels.write_text("".join(f"n{i:08d} class{i}, alias\n" for i in range(1000)))
    # One model only: the parity of all three is the test above.
    result = _demo("--models", "mobilenet_v1", "--weights", f"mobilenet_v1={tmp_path / 'm.safetensors'}",
                   "--labels", str(labels))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "mobilenet_v1 (torch) top-5" in result.stdout
    chelsea = next(line for line in result.stdout.splitlines() if line.strip().startswith("chelsea"))
    assert chelsea.count(";") == 4 and "class" in chelsea
    assert "resnet50" not in result.stdout


def test_building_block_table(tf):
    result = _demo("--layers")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    verdicts = [line.split()[-2] for line in lines[2:] if line.split()[-2] in ("exact", "differs", "FAIL", "agrees?")]
    assert verdicts.count("exact") >= 10
    # Each naive port shown for contrast must really differ from the reference.
    assert "agrees?" not in verdicts and "FAIL" not in verdicts
