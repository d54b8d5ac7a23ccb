"""The README's first command: the main job runs offline and prints the parity table."""

from __future__ import annotations

import os
import subprocess
import sys

from safetensors.torch import save_file

from parity import ROOT
from test_eval_imagenet import FAST_LINE
from zoo.registry import list_models

MODELS = list_models()


def _demo(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        [sys.executable, "-m", "zoo.demo", *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=600
    )


def _verdicts(stdout: str) -> dict[tuple[str, str], tuple[str, str]]:
    """(model, framework) -> (form, verdict) of each row of the parity table."""
    rows = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] in MODELS and parts[1] in ("torch", "keras"):
            rows[(parts[0], parts[1])] = (parts[2], parts[-1])
    return rows


def test_main_job_prints_the_parity_table(tf):
    # Every registered model as built (--plain, the cheapest); the default fast forms: the next test.
    result = _demo("--plain")
    assert result.returncode == 0, result.stdout + result.stderr
    verdicts = _verdicts(result.stdout)
    width = max(13, *(len(model) for model in MODELS))  # the table's model column
    for model in MODELS:
        for framework in ("torch", "keras"):
            assert verdicts.get((model, framework)) == ("as", "exact"), result.stdout  # form "as built"
        assert f"{model:{width}} upstream reference" in result.stdout, result.stdout
    assert FAST_LINE.split(":")[0] not in result.stdout


def test_main_job_runs_the_fast_forms_checked_against_the_models_as_built(tf, capsys):
    """The default: zoo.fast_inference_model and zoo.keras.fast, each checked before its row is printed.

    In this process (the other tests start ``python -m zoo.demo``): it saves a second TensorFlow start.
    """
    from zoo.demo import main

    assert main(["--models", "mobilenet_v1"]) == 0
    stdout = capsys.readouterr().out
    verdicts = _verdicts(stdout)
    assert verdicts == {("mobilenet_v1", "torch"): ("fast", "exact"), ("mobilenet_v1", "keras"): ("fast", "exact")}
    assert stdout.count(FAST_LINE) == 2, stdout
    assert "(mobilenet_v1 torch; its first call" in stdout and "(mobilenet_v1 keras; its first call" in stdout


def test_main_job_with_real_weights_prints_top5(tf, tmp_path):
    # Any converted file stands in for real weights here: a random-init model's state dict.
    model = __import__("zoo").mobilenet_v1_tf_compat()
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    save_file(state, str(tmp_path / "m.safetensors"))
    labels = tmp_path / "synset_words.txt"
    labels.write_text("".join(f"n{i:08d} class{i}, alias\n" for i in range(1000)))
    # One model only: the parity of every model is the test above.
    result = _demo("--models", "mobilenet_v1", "--weights", f"mobilenet_v1={tmp_path / 'm.safetensors'}",
                   "--labels", str(labels), "--plain")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "mobilenet_v1 (torch) top-5" in result.stdout
    first = next(line for line in result.stdout.splitlines() if line.strip().startswith("input 0"))
    assert first.count(";") == 4 and "class" in first
    for other in MODELS:
        if other != "mobilenet_v1":
            assert other not in result.stdout, other


def test_building_block_table(tf):
    result = _demo("--layers")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    verdicts = [line.split()[-2] for line in lines[2:] if line.split()[-2] in ("exact", "differs", "FAIL", "agrees?")]
    assert verdicts.count("exact") >= 10
    # Each naive port shown for contrast must really differ from the reference.
    assert "agrees?" not in verdicts and "FAIL" not in verdicts
