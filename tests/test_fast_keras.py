"""zoo.keras.fast.fast_inference_function: the folded Keras port in a tf.function (XLA on request) is exact.

The reference is TensorFlow running the upstream stand-in frozen graph at the
same size. Tolerance: the model's registry tolerance (``entry.tolerance``, via
tests/parity.py), with and without XLA.
"""

from __future__ import annotations

import numpy as np
import pytest

from parity import assert_matches_reference


@pytest.fixture(scope="module")
def fast_keras(keras):
    if keras.backend.backend() != "tensorflow":
        pytest.skip(f"zoo.keras.fast needs the TensorFlow backend, Keras runs on {keras.backend.backend()}")
    from zoo.keras import fast

    return fast


# XLA is off by default (not faster on CPU), but jit_compile=True must be exact too.
@pytest.mark.parametrize("options", [{}, {"jit_compile": True}], ids=["default", "xla"])
def test_mobilenet_fast_function_matches_upstream(tf, standins, fast_keras, options):
    import zoo.keras
    from zoo.standins import mobilenet_v1 as upstream

    run = fast_keras.fast_inference_function(
        zoo.keras.mobilenet_v1_tf_compat(weights=standins.converted("mobilenet_v1")), **options)
    assert run.jit_compile is options.get("jit_compile", False)
    x = np.random.default_rng(1).uniform(-1, 1, (2, 97, 97, 3)).astype(np.float32)
    weights = upstream.model_variables(upstream.make_variables(0))
    ref = upstream.run_graph(upstream.frozen_graph_def(weights, image_size=97, global_pool=True), x)
    out = run(x)
    assert isinstance(out, tf.Tensor)
    assert_matches_reference("mobilenet_v1", out.numpy(), ref,
                             f"keras fast mobilenet (jit_compile={run.jit_compile})")


def test_resnet50_fast_function_matches_upstream(tf, standins, fast_keras):
    import zoo.keras
    from zoo.standins import resnet50 as upstream

    run = fast_keras.fast_inference_function(zoo.keras.resnet50_tf_compat(weights=standins.converted("resnet50")))
    x = np.random.default_rng(1).uniform(-124, 152, (2, 64, 64, 3)).astype(np.float32)
    ref = upstream.run_graph(upstream.frozen_graph_def(upstream.make_weights(0), image_size=64), x)
    assert_matches_reference("resnet50", run(tf.constant(x)).numpy(), ref,
                             f"keras fast resnet50 (jit_compile={run.jit_compile})")


def test_fast_function_rejects_other_dtypes(tf, fast_keras):
    import zoo.keras
    from zoo.errors import InputTypeError

    run = fast_keras.fast_inference_function(zoo.keras.mobilenet_v1_tf_compat())
    with pytest.raises(InputTypeError, match="float32"):
        run(np.zeros((1, 32, 32, 3), np.float64))
