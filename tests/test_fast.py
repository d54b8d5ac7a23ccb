"""zoo.fast_inference_model: the compiled, frozen form computes what the model as built computes.

Each compiled form is checked against the model as built and, for the
classifiers, against the independent reference: TensorFlow running the
upstream stand-in frozen graph at the same size, within the model's registry
tolerance (``entry.tolerance``, via tests/parity.py). The models without an
upstream check here are checked against themselves as built: max |diff| <= 1e-4
relative to the output's scale (``check_fast_matches``).

Small inputs keep compiles short (inductor compiles one graph per input shape):
MobileNet-v1 at 97x97 (odd, so the stride-2 layers' TF padding is asymmetric
and the widened depthwise kernels are exercised), ResNet-50 at 64x64,
every other model at its smallest size of at least 64x64. Tests that compile
skip, saying why, where ``torch.compile`` cannot run (no C++ compiler).
"""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest
import torch
from torch._dynamo.utils import counters

import zoo
import zoo.fast
from parity import assert_matches_reference, small_valid_size, torch_logits
from zoo.errors import NotExactError, ZooError
from zoo.fast import FastInferenceModel, check_fast_matches, compiler_problem, fast_inference_model


@pytest.fixture
def needs_compiler() -> None:
    problem = compiler_problem()
    if problem is not None:
        pytest.skip(f"torch.compile cannot run here: {problem}")


def _nhwc_noise(batch: int, size: int, low: float, high: float, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(low, high, (batch, size, size, 3)).astype(np.float32)


def test_mobilenet_compiled_matches_model_and_upstream_and_recompiles_per_shape(
        tf, standins, needs_compiler, caplog):
    from zoo.standins import mobilenet_v1 as upstream

    model = zoo.mobilenet_v1_tf_compat(weights=standins.converted("mobilenet_v1"))
    fast = zoo.fast_inference_model(model)
    assert isinstance(fast, FastInferenceModel) and fast.compiled
    weights = upstream.model_variables(upstream.make_variables(0))
    graph = upstream.frozen_graph_def(weights, image_size=97, global_pool=True)
    x = _nhwc_noise(3, 97, -1, 1)
    with caplog.at_level(logging.INFO, logger="zoo.fast"):
        # Two batch sizes: two shapes, each compiled once and logged once, both right.
        for batch in (2, 3, 2):
            ours = torch_logits(fast, x[:batch])
            assert_matches_reference("mobilenet_v1", ours, upstream.run_graph(graph, x[:batch]),
                                     f"compiled, batch {batch}")
            check_fast_matches(torch.from_numpy(ours), torch.from_numpy(torch_logits(model, x[:batch])),
                               f"compiled, batch {batch}")
    assert sorted(fast.compile_seconds) == [((2, 3, 97, 97),), ((3, 3, 97, 97),)]
    # The caller's grad mode does not matter: no third graph under inference_mode.
    graphs = counters["stats"]["unique_graphs"]
    with torch.inference_mode():
        fast(torch.from_numpy(x[:2].transpose(0, 3, 1, 2).copy()))
    assert counters["stats"]["unique_graphs"] == graphs, "a call under inference_mode recompiled"
    assert sum("compiled" in r.getMessage() for r in caplog.records) == 2, "log the compile once per shape"


def test_resnet50_compiled_matches_model_and_upstream(tf, standins, needs_compiler):
    from zoo.standins import resnet50 as upstream

    model = zoo.resnet50_tf_compat(weights=standins.converted("resnet50"))
    fast = zoo.fast_inference_model(model)
    assert fast.compiled
    x = _nhwc_noise(2, 64, -124, 152)  # MLPerf-preprocessed pixel range
    ours = torch_logits(fast, x)
    ref = upstream.run_graph(upstream.frozen_graph_def(upstream.make_weights(0), image_size=64), x)
    assert_matches_reference("resnet50", ours, ref, "compiled resnet50 64x64")
    assert_matches_reference("resnet50", ours, torch_logits(model, x), "compiled resnet50 vs as built")


# The models the tests above also check against their upstream graph; every other model is checked
# below against itself as built (its upstream reference is the model tests' job).
CHECKED_AGAINST_UPSTREAM_ABOVE = ("mobilenet_v1", "resnet50")


@pytest.mark.parametrize("model", [m for m in zoo.list_models() if m not in CHECKED_AGAINST_UPSTREAM_ABOVE])
def test_compiled_matches_model_as_built(model, needs_compiler):
    entry = zoo.get_model_entry(model)
    torch.manual_seed(0)
    net = entry.builder("torch")()
    fast = zoo.fast_inference_model(net)
    size = small_valid_size(model, at_least=64)
    x = torch.from_numpy(entry.input.example(1, size, seed=0, framework="torch"))
    with torch.no_grad():
        plain = net(x)
    out = fast(x)
    assert out.shape == plain.shape
    if not entry.is_classifier:
        # A map output keeps the input's spatial size.
        assert tuple(out.shape[-2:]) == size
    # Relative to the output's scale (max(1, max |output|)), as the benchmarks check it.
    assert check_fast_matches(out, plain, f"compiled {model}") <= 1e-4


def test_without_a_compiler_the_eager_folded_form_runs_with_one_warning(monkeypatch, recwarn):
    monkeypatch.setattr(zoo.fast, "compiler_problem", lambda: "no C++ compiler found (test)")
    torch.manual_seed(0)
    model = zoo.mobilenet_v1_tf_compat()
    fast = fast_inference_model(model)
    messages = [str(w.message) for w in recwarn if "fast_inference_model" in str(w.message)]
    assert len(messages) == 1 and "no C++ compiler found (test)" in messages[0]
    assert not fast.compiled and not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    x = torch.rand(2, 3, 65, 65) * 2 - 1
    with torch.no_grad():
        plain = model(x)
    assert check_fast_matches(fast(x), plain, "eager folded") <= 1e-4
    assert not fast.compile_seconds
    with pytest.raises(ZooError, match=re.escape("no C++ compiler found (test)")):
        fast_inference_model(model, compile=True)


def test_check_fast_matches_names_both_numbers():
    plain = torch.linspace(-20, 20, 1001).reshape(1, -1)
    assert check_fast_matches(plain + 1e-5, plain) <= 1e-4
    perturbed = plain.clone()
    perturbed[0, 7] += 0.1  # 0.1 / 20 = 5e-3 relative
    with pytest.raises(NotExactError, match=r"by 0\.005 .*tolerance 0\.0001"):
        check_fast_matches(perturbed, plain, "perturbed")
    with pytest.raises(NotExactError, match="shape"):
        check_fast_matches(plain[:, :10], plain)


def test_top_level_exports():
    assert zoo.fast_inference_model is fast_inference_model
    assert zoo.FastInferenceModel is FastInferenceModel
