"""Every command line turns a ZooError into one `error: ...` line on stderr and exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from zoo.cli import EXIT_ERROR, run_cli
from zoo.errors import DownloadError

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str], home: Path, **env: str) -> subprocess.CompletedProcess:
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", ZOO_HOME=str(home), **env)
    environment.pop("ZOO_MANIFEST", None)
    environment.pop("ZOO_WEIGHTS_URL", None)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, env=environment,
                          timeout=600)


def _one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == EXIT_ERROR == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_run_cli_prints_one_line_and_exits_2(capsys):
    def main(argv):
        raise DownloadError("could not download x.tgz:\n  http://a: HTTP 404\n  http://b: HTTP 503")

    with pytest.raises(SystemExit) as exit_:
        run_cli(main, [])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == "error: could not download x.tgz:; http://a: HTTP 404; http://b: HTTP 503\n"


def test_run_cli_passes_the_status_and_other_errors_through():
    for status, code in ((0, 0), (None, 0), (1, 1)):
        with pytest.raises(SystemExit) as exit_:
            run_cli(lambda argv, status=status: status)
        assert exit_.value.code == code
    with pytest.raises(ZeroDivisionError):  # a bug keeps its traceback
        run_cli(lambda argv: 1 / 0)


def test_demo_with_a_weights_tag_offline_and_nothing_cached(tf, tmp_path):
    home = tmp_path / "empty-home"
    result = _run(["-m", "zoo.demo", "--weights", "mobilenet_v1=mlperf"], home, ZOO_OFFLINE="1")
    line = _one_error_line(result)
    assert "ZOO_OFFLINE" in line and str(home / "upstream" / "mobilenet_v1_1.0_224.tgz") in line
    assert "94321559 bytes" in line
    assert not list(home.rglob("*.lock"))


def test_convert_with_a_missing_source(tmp_path):
    result = _run(["scripts/convert.py", "mobilenet_v1", "--source", str(tmp_path / "absent.tgz"),
                   "--out", str(tmp_path / "m.safetensors")], tmp_path / "home")
    assert "absent.tgz" in _one_error_line(result)
    assert not (tmp_path / "m.safetensors").exists()


def test_fetch_upstream_offline_with_nothing_cached(tmp_path):
    home = tmp_path / "home"
    result = _run(["scripts/fetch_upstream.py", "resnet50"], home, ZOO_OFFLINE="1")
    line = _one_error_line(result)
    assert "resnet50_v1.pb" in line and str(home / "upstream") in line
    assert "7b94a2da05dd30f6c0af23a46bc08886" in line


def test_publish_weights_with_an_unknown_entry(tmp_path):
    result = _run(["scripts/publish_weights.py", "vgg16", "--out", str(tmp_path / "dist")], tmp_path / "home")
    assert "vgg16" in _one_error_line(result)
