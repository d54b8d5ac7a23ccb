"""README.md stays true: its Python snippets run, its two set-up commands are intact, its links resolve.

The snippets use ``weights="mlperf"`` / ``weights="nvidia"``. Here they run offline
on stand-in weights: the ``standin_weights_env`` fixture places the session's
stand-ins of every registered model's upstream file (conftest's ``standins``) in
``$ZOO_HOME/upstream`` and points the hub at a weights
record (``ZOO_MANIFEST``) whose upstream checksums are the stand-ins', with
``ZOO_OFFLINE=1``, so the README's code takes the same route a user's first call
takes when the release is already on disk (checked, converted, cached).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from parity import ROOT

README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))

# The two set-up commands as .ci/run and users run them; change them here and in README together.
MAIN_COMMAND = ('python3 -m venv .venv && .venv/bin/pip install torch==2.13.0 -e ".[tensorflow,eval]" '
                '&& .venv/bin/python -m zoo.demo')
TEST_COMMAND = ('python3 -m venv .venv && .venv/bin/pip install torch==2.13.0 -e ".[dev,bench]" '
                '&& .venv/bin/python -m pytest -q -n 2')

_FENCE = re.compile(r"^```([\w-]*)\n(.*?)^```$", re.S | re.M)
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(first line number, code) of every ```python block, in order."""
    return [(text.count("\n", 0, m.start()) + 2, m.group(2)) for m in _FENCE.finditer(text) if m.group(1) == "python"]


def heading_anchors(text: str) -> set[str]:
    """GitHub's anchors for a Markdown file's headings (lowercase, punctuation dropped, spaces to dashes)."""
    prose = _FENCE.sub("", text)
    anchors = set()
    for line in prose.splitlines():
        if m := re.match(r"#{1,6}\s+(.*)", line):
            anchors.add(re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-"))
    return anchors


# --- the two set-up commands ------------------------------------------------------------------------


def _block_after(text: str, marker: str) -> list[str]:
    """The lines of the fenced block that directly follows ``marker``."""
    after = text.split(marker, 1)[1].lstrip("\n")
    m = _FENCE.match(after)
    assert m, f"no fenced block right after {marker}"
    assert m.group(1) == "sh", f"the block after {marker} is not a ```sh block"
    return m.group(2).strip("\n").splitlines()


def test_readme_has_exactly_the_two_marked_setup_commands():
    text = README.read_text()
    assert text.count("<!-- main-command -->") == 1 and text.count("<!-- test-command -->") == 1
    assert text.index("<!-- main-command -->") < text.index("<!-- test-command -->")
    assert _block_after(text, "<!-- main-command -->") == [MAIN_COMMAND]
    assert _block_after(text, "<!-- test-command -->") == [TEST_COMMAND]
    # .ci/run's own extraction (awk: the first line after the ```sh following the marker) finds it too.
    awk = subprocess.run(["awk", '/<!-- test-command -->/{found=1; next} found && /^```sh/{getline; print; exit}',
                          str(README)], capture_output=True, text=True, check=True)
    assert awk.stdout.strip() == TEST_COMMAND


# --- links ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("doc", [README, *DOCS], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_point_to_existing_files(doc: Path):
    text = _FENCE.sub("", doc.read_text())
    broken = []
    for target in _LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, ...
            continue
        path, _, anchor = target.partition("#")
        resolved = (doc.parent / path).resolve() if path else doc
        if not resolved.exists():
            broken.append(f"{target}: no file {resolved}")
        elif anchor and resolved.suffix == ".md" and anchor not in heading_anchors(resolved.read_text()):
            broken.append(f"{target}: no heading with anchor #{anchor} in {resolved.name}")
    assert not broken, f"{doc.name}: broken links:\n" + "\n".join(broken)


def test_readme_links_to_every_doc():
    text = README.read_text()
    assert DOCS, "docs/*.md is missing"
    missing = [d.name for d in DOCS if f"(docs/{d.name}" not in text]
    assert not missing, f"README.md does not link to {missing}"


def test_link_checker_catches_a_broken_link(tmp_path):
    doc = tmp_path / "x.md"
    (tmp_path / "there.md").write_text("# A heading\n")
    doc.write_text("[ok](there.md) [ok](there.md#a-heading) [web](https://example.com) "
                   "[gone](nowhere.md) [bad anchor](there.md#nope)\n")
    with pytest.raises(AssertionError, match=r"nowhere\.md(.|\n)*#nope"):
        test_relative_links_point_to_existing_files(doc)


# --- the snippets -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def standin_weights_env(tmp_path_factory, tf, standins) -> dict[str, str]:
    """Environment in which weights="mlperf"/"nvidia" resolve offline to stand-in weights.

    The one place that knows how tests point the hub elsewhere (ZOO_HOME,
    ZOO_MANIFEST with per-tag "upstream" overrides, ZOO_OFFLINE): adapt it here
    if that mechanism changes.
    """
    from zoo.manifest import SCHEMA_VERSION, load_manifest
    from zoo.registry import get_model_entry, list_models

    root = tmp_path_factory.mktemp("readme")
    home = root / "zoo-home"
    (home / "upstream").mkdir(parents=True)
    registered = load_manifest()
    weights = {}
    for model in list_models():
        tags = get_model_entry(model).tags
        if not tags:  # no weights tag to resolve: nothing to stand in for
            continue
        tag = tags[0]  # the default tag, the one the stand-in stands in for
        key = f"{model}.{tag}"
        upstream = registered.entry(model, tag).upstream
        # The session's stand-in (conftest.StandIns), placed where a user copies the release for offline use.
        path = home / "upstream" / upstream.file
        path.symlink_to(standins.source(model))
        weights[key] = {"upstream": {
            "file": upstream.file, "urls": list(upstream.urls), "size": path.stat().st_size,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "md5": None}}
    record = root / "standin-weights.json"
    record.write_text(json.dumps({"schema_version": SCHEMA_VERSION, "weights": weights}))
    env = {k: v for k, v in os.environ.items() if k != "ZOO_WEIGHTS_URL"}
    env.update(ZOO_HOME=str(home), ZOO_MANIFEST=str(record), ZOO_OFFLINE="1", ZOO_QUIET="1",
               TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT))
    return env


# Runs each block with exec in one namespace, so a traceback names the file and line.
_RUNNER = """
import json, sys
namespace = {"__name__": "__main__"}
name, blocks = json.load(open(sys.argv[1]))
for line, code in blocks:
    print(f"--- {name} block at line {line}", flush=True)
    exec(compile(code, f"{name}:{line}", "exec"), namespace)
print(f"--- all {name} blocks ran", flush=True)
"""


def run_blocks(doc: Path, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """Run ``doc``'s python blocks in order in one fresh interpreter; fail with its output if one raises."""
    name = doc.relative_to(ROOT).as_posix()
    (cwd / "blocks.json").write_text(json.dumps([name, python_blocks(doc.read_text())]))
    result = subprocess.run([sys.executable, "-c", _RUNNER, str(cwd / "blocks.json")], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-8000:]
    assert f"--- all {name} blocks ran" in result.stdout
    return result


def test_readme_python_blocks_run(standin_weights_env, tmp_path):
    blocks = python_blocks(README.read_text())
    assert len(blocks) >= 3, "the quickstart's python blocks are gone"
    text = "\n".join(code for _, code in blocks)
    for used in ("zoo.create_model(", 'weights="mlperf"', 'weights="nvidia"', 'framework="keras"', "estimate_flow"):
        assert used in text, f"the quickstart no longer shows {used}"
    result = run_blocks(README, standin_weights_env, tmp_path)
    # The snippets took the offline route: stand-ins converted into the cache, the flow PNG written.
    home = Path(standin_weights_env["ZOO_HOME"])
    converted = sorted(p.name.split("-")[0] for p in (home / "weights").glob("*.safetensors"))
    created = sorted(set(re.findall(r'create_model\("(\w+)"', text)))
    assert created and converted == created, (converted, created)
    assert (tmp_path / "motorcycle_flow.png").stat().st_size > 0
    assert "top-5" in result.stdout and "flow field: (1, 2, 500, 741)" in result.stdout
    assert "Keras and PyTorch agree on top-1: True" in result.stdout


@pytest.mark.parametrize("doc", [d for d in DOCS if python_blocks(d.read_text())],
                         ids=lambda p: p.relative_to(ROOT).as_posix())
def test_docs_python_blocks_run(doc, standin_weights_env, tmp_path):
    run_blocks(doc, standin_weights_env, tmp_path)


def test_a_failing_block_fails_the_run(tmp_path):
    (tmp_path / "blocks.json").write_text(json.dumps(["x.md", [[3, "x = 1\n"], [7, "raise RuntimeError('rotted')\n"]]]))
    result = subprocess.run([sys.executable, "-c", _RUNNER, str(tmp_path / "blocks.json")], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "x.md:7" in result.stderr and "rotted" in result.stderr
