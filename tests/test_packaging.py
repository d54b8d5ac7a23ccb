"""zoo and its PyTorch side work without TensorFlow; zoo.keras says what to install."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# A meta-path finder that makes TensorFlow and Keras unimportable, as on a
# machine where the `keras` extra is not installed.
_BLOCK_TF = textwrap.dedent(
    """
    import sys
    class _Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"):
                raise ImportError(f"blocked for this test: {name}")
            return None
    sys.meta_path.insert(0, _Block())
    """
)


def _run(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-c", _BLOCK_TF + textwrap.dedent(code)], capture_output=True, text=True, env=env, cwd=ROOT
    )


def test_torch_side_imports_without_tensorflow():
    result = _run(
        """
        import torch
        import zoo
        from zoo.layers import Conv2dSame, MaxPool2dSame, AvgPool2dSame, tf_same_pad
        import zoo.layouts
        y = Conv2dSame(3, 4, 3, 2)(torch.zeros(1, 3, 9, 9))
        assert tuple(y.shape) == (1, 4, 5, 5), y.shape
        assert not any(m.split(".")[0] in ("tensorflow", "keras") for m in sys.modules)
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_zoo_keras_without_tensorflow_names_the_extra():
    result = _run(
        """
        import zoo
        try:
            zoo.keras
        except ImportError as error:
            print(error)
        else:
            raise SystemExit("zoo.keras imported without Keras")
        """
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'zoo[keras]'" in result.stdout


def test_import_zoo_does_not_import_tensorflow():
    code = "import sys, zoo, zoo.layers; print(any(m.startswith(('tensorflow', 'keras')) for m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_readme_gives_exactly_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    assert readme.count("<!-- main-command -->") == 1
    assert readme.count("<!-- test-command -->") == 1
    test_block = readme.split("<!-- test-command -->")[1].split("```sh\n")[1].split("\n")[0]
    assert "pytest" in test_block
    assert "test-command" in (ROOT / ".ci" / "run").read_text()
