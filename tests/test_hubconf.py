"""hubconf.py: torch.hub's entry points build the registry's PyTorch models with the file's weights.

The entry points are zoo's builders (whose parity with upstream the model
tests check), so these tests check the plumbing: torch.hub finds exactly the
builders, under each model's name and the builder's own, models registered
before the call included; each loads a converted stand-in into the same model
the builder makes, its docstring is what torch.hub.help shows, and a plain
copy of the checkout works through torch.hub without zoo being installed from it.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file

import zoo
from parity import ROOT, small_valid_size
from zoo.registry import MODELS, register_model, unregister_model

# Entry point name -> registry name: each model's PyTorch builder, under the model's name and the builder's own.
ENTRY_POINTS = {point: name for name, entry in MODELS.items()
                for point in (name, entry.torch_builder.partition(":")[2])}



def standin_needs_tensorflow(name: str) -> bool:
    """Whether ``name``'s stand-in upstream release is written with TensorFlow (a TF graph release)."""
    return MODELS[name].upstream_graph is not None


# A model whose stand-in needs only torch where there is one (no TensorFlow start), else the first.
TORCH_ONLY_MODEL = next((name for name in sorted(MODELS) if not standin_needs_tensorflow(name)), min(MODELS))


@pytest.fixture
def hub_sees_this_checkout(monkeypatch):
    """torch.hub.list/help take only a GitHub repo; make any repo resolve to this checkout (no network)."""
    monkeypatch.setattr(torch.hub, "_get_cache_or_reload", lambda *args, **kwargs: str(ROOT))


def test_entry_points_cover_the_registry():
    assert sorted(set(ENTRY_POINTS.values())) == zoo.list_models()
    assert {"resnet50", "resnet50_tf_compat", "flownet2_sd"} <= set(ENTRY_POINTS)


def _import_hubconf():
    import importlib.util

    spec = importlib.util.spec_from_file_location("hubconf_under_test", ROOT / "hubconf.py")
    hubconf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hubconf)
    return hubconf


def test_entry_points_are_the_builders_themselves():
    hubconf = _import_hubconf()
    for entry_point, name in ENTRY_POINTS.items():
        assert getattr(hubconf, entry_point) is zoo.get_model_entry(name).builder("torch"), entry_point


# One entry point per model: the other name is the same function (test_entry_points_are_the_builders_themselves).
@pytest.mark.parametrize("entry_point", zoo.list_models())
def test_load_builds_the_builders_model_with_the_files_weights(entry_point, standins, request):
    name = ENTRY_POINTS[entry_point]
    if standin_needs_tensorflow(name):
        request.getfixturevalue("tf")
    weights = standins.converted(name)
    model = torch.hub.load(str(ROOT), entry_point, source="local", weights=weights)
    assert isinstance(model, torch.nn.Module) and not model.training

    # The weights are the file's, tensor for tensor (not a random initialisation).
    tensors = load_file(str(weights))
    state = model.state_dict()
    assert tensors.keys() <= state.keys()
    for key, tensor in tensors.items():
        assert torch.equal(state[key], tensor), key

    direct = zoo.create_model(name, weights=weights)
    # A small valid input keeps the file fast.
    x = torch.from_numpy(MODELS[name].input.example(2, small_valid_size(name, at_least=64), seed=0))
    with torch.no_grad():
        # Same code, same weights, same process: bitwise equal.
        assert torch.equal(model(x), direct(x))


@pytest.mark.parametrize("name", [name for name in zoo.list_models() if MODELS[name].is_classifier])
def test_load_passes_builder_arguments_through(name):
    entry = MODELS[name]
    model = torch.hub.load(str(ROOT), entry.builder_name("torch"), source="local", num_classes=10)
    x = torch.from_numpy(entry.input.example(1, small_valid_size(name)))
    with torch.no_grad():
        assert model(x).shape == (1, 10)


def test_list_is_exactly_the_builders(hub_sees_this_checkout):
    assert sorted(torch.hub.list("owner/zoo")) == sorted(ENTRY_POINTS)


def tiny_classifier(weights=None, **kwargs):
    """A model registered at run time (stands for one defined outside zoo)."""
    return torch.nn.Identity()


def test_list_sees_a_model_registered_at_run_time(hub_sees_this_checkout):
    entry = dataclasses.replace(MODELS[min(MODELS)], name="tiny_hub_model", torch_builder=tiny_classifier)
    register_model(entry)
    try:
        listed = torch.hub.list("owner/zoo")
        model = torch.hub.load(str(ROOT), "tiny_hub_model", source="local")
    finally:
        unregister_model("tiny_hub_model")
    assert {"tiny_hub_model", "tiny_classifier"} <= set(listed)
    assert isinstance(model, torch.nn.Identity)
    assert "tiny_hub_model" not in torch.hub.list("owner/zoo")


@pytest.mark.parametrize("entry_point", sorted(ENTRY_POINTS))
def test_help_describes_input_and_weights(entry_point, hub_sees_this_checkout):
    doc = torch.hub.help("owner/zoo", entry_point)
    entry = MODELS[ENTRY_POINTS[entry_point]]
    assert doc and doc.strip()
    assert "float32" in doc and ".safetensors" in doc and "None" in doc
    for tag in entry.tags:
        assert f'"{tag}"' in doc, f"{entry_point}'s docstring omits its weights tag {tag!r}"
    if entry.is_classifier:
        assert entry.input.torch_layout in doc and str(entry.num_classes) in doc
        if entry.label_offset == -1:  # class 0 is a background class
            assert "background" in doc
    if entry.input.size_multiple > 1:
        assert f"multiples of {entry.input.size_multiple}" in doc


def test_dependencies_are_pyprojects_runtime_dependencies():
    # tomllib is Python >= 3.11; the project supports 3.10, where this check is not needed to pass CI.
    tomllib = pytest.importorskip("tomllib")
    hubconf = _import_hubconf()
    with open(ROOT / "pyproject.toml", "rb") as file:
        requirements = tomllib.load(file)["project"]["dependencies"]
    # "torch>=2.1" -> "torch": the distribution names here are also the import names.
    names = [re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0] for requirement in requirements]
    assert sorted(hubconf.dependencies) == sorted(names)


def test_plain_checkout_without_install(tmp_path, standins, request):
    """A copy of the checkout that no install points at loads through torch.hub, with its own zoo.

    Run in a fresh interpreter from an unrelated folder, without PYTHONPATH:
    the zoo torch.hub imports must be the copy's (torch.hub puts the repo first
    on sys.path; the editable install's finder comes after it). Loading a
    second checkout in the same process must then refuse, naming both folders.
    """
    if standin_needs_tensorflow(TORCH_ONLY_MODEL):
        request.getfixturevalue("tf")
    checkout = tmp_path / "checkout"
    shutil.copytree(ROOT / "zoo", checkout / "zoo", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "hubconf.py", checkout / "hubconf.py")
    script = textwrap.dedent(
        f"""
        import pathlib, sys, torch
        model = torch.hub.load({str(checkout)!r}, {TORCH_ONLY_MODEL!r}, source="local",
                               weights={str(standins.converted(TORCH_ONLY_MODEL))!r})
        import zoo
        assert pathlib.Path(zoo.__file__).resolve().is_relative_to({str(checkout.resolve())!r}), zoo.__file__
        try:
            torch.hub.load({str(ROOT)!r}, {TORCH_ONLY_MODEL!r}, source="local")
        except ImportError as error:
            print("refused:", error)
        else:
            sys.exit("a second checkout's hubconf loaded with the first checkout's zoo")
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    work = tmp_path / "elsewhere"
    work.mkdir()
    result = subprocess.run([sys.executable, "-c", script], cwd=work, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"already imported zoo from {checkout.resolve()}" in result.stdout
