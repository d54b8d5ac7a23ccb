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
from parity import ROOT
from zoo.registry import MODELS, register_model, unregister_model

# Entry point name -> registry name: each model's PyTorch builder, under the model's name and the builder's own.
ENTRY_POINTS = {point: name for name, entry in MODELS.items()
                for point in (name, entry.torch_builder.partition(":")[2])}

# Small inputs keep the file fast: the classifiers take any size >= 32, FlowNet2-SD multiples of 64.
INPUT_SHAPES = {"mobilenet_v1": (2, 3, 64, 64), "resnet50": (2, 3, 64, 64), "flownet2_sd": (1, 3, 2, 64, 64)}
# Stand-ins whose upstream formats TensorFlow writes (a skip without it; FlowNet2-SD's needs only torch).
TF_WRITTEN_STANDINS = ("mobilenet_v1", "resnet50")


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
    if name in TF_WRITTEN_STANDINS:
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
    x = torch.rand(INPUT_SHAPES[name], generator=torch.Generator().manual_seed(0))
    x = x * 255 if name == "flownet2_sd" else x * 2 - 1
    with torch.no_grad():
        # Same code, same weights, same process: bitwise equal.
        assert torch.equal(model(x), direct(x))


def test_load_passes_builder_arguments_through():
    model = torch.hub.load(str(ROOT), "mobilenet_v1_tf_compat", source="local", num_classes=10)
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 10)


def test_list_is_exactly_the_builders(hub_sees_this_checkout):
    assert sorted(torch.hub.list("owner/zoo")) == sorted(ENTRY_POINTS)


def tiny_classifier(weights=None, **kwargs):
    """A model registered at run time (stands for one defined outside zoo)."""
    return torch.nn.Identity()


def test_list_sees_a_model_registered_at_run_time(hub_sees_this_checkout):
    entry = dataclasses.replace(MODELS["mobilenet_v1"], name="tiny_hub_model", torch_builder=tiny_classifier)
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
    if entry.num_classes is not None:
        assert "NCHW" in doc and str(entry.num_classes) in doc and "background" in doc
    else:
        assert "multiples of 64" in doc


def test_dependencies_are_pyprojects_runtime_dependencies():
    # tomllib is Python >= 3.11; the project supports 3.10, where this check is not needed to pass CI.
    tomllib = pytest.importorskip("tomllib")
    hubconf = _import_hubconf()
    with open(ROOT / "pyproject.toml", "rb") as file:
        requirements = tomllib.load(file)["project"]["dependencies"]
    # "torch>=2.1" -> "torch": the distribution names here are also the import names.
    names = [re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0] for requirement in requirements]
    assert sorted(hubconf.dependencies) == sorted(names)


def test_plain_checkout_without_install(tmp_path, standins):
    """A copy of the checkout that no install points at loads through torch.hub, with its own zoo.

    Run in a fresh interpreter from an unrelated folder, without PYTHONPATH:
    the zoo torch.hub imports must be the copy's (torch.hub puts the repo first
    on sys.path; the editable install's finder comes after it). Loading a
    second checkout in the same process must then refuse, naming both folders.
    """
    checkout = tmp_path / "checkout"
    shutil.copytree(ROOT / "zoo", checkout / "zoo", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "hubconf.py", checkout / "hubconf.py")
    script = textwrap.dedent(
        f"""
        import pathlib, sys, torch
        model = torch.hub.load({str(checkout)!r}, "flownet2_sd", source="local",
                               weights={str(standins.converted("flownet2_sd"))!r})
        import zoo
        assert pathlib.Path(zoo.__file__).resolve().is_relative_to({str(checkout.resolve())!r}), zoo.__file__
        try:
            torch.hub.load({str(ROOT)!r}, "flownet2_sd", source="local")
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
