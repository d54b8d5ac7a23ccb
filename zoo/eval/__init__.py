"""Accuracy and end-point-error evaluation: ImageNet arrays as MLPerf caches them, top-k, flow EPE.

* :mod:`zoo.eval.imagenet`: ``val_map.txt`` parsing, MLPerf preprocessing of a
  folder of JPEGs into MLPerf's preprocessed-cache layout, the memory-mapped
  array dataset and its prefetching batch loader.
* :mod:`zoo.eval.accuracy`: the frameworks that produce logits (PyTorch,
  Keras, the upstream TensorFlow graph), top-1/top-5, the JSON report, and
  sharding across ``torchrun`` ranks.
* :mod:`zoo.eval.mlperf`: MLPerf LoadGen runs (``scripts/mlperf_run.py``): the
  query sample library, the batching SUT, settings, and scoring of
  ``mlperf_log_accuracy.json`` as MLPerf's ``accuracy-imagenet.py`` does.
* :mod:`zoo.eval.flow_eval`: FlowNet2-SD average EPE on Sintel- and
  FlyingChairs-style folders.

Nothing here imports TensorFlow or Keras until a Keras or upstream run asks for it.
"""
