"""Accuracy and end-point-error evaluation: ImageNet arrays as MLPerf caches them, top-k, flow EPE.

ImageNet data:

* :mod:`~zoo.eval.imagenet_models`: which registered models the ImageNet tools take.
* :mod:`~zoo.eval.val_map`: ``val_map.txt``, image names and labels.
* :mod:`~zoo.eval.arrays`: where preprocessed arrays live (MLPerf's cache folders, zoo's ``index.json``).
* :mod:`~zoo.eval.preprocess`: JPEGs to arrays with the model's MLPerf preprocessing, in a process pool.
* :mod:`~zoo.eval.datasets`: the arrays of a val_map as a memory-mapped data set.
* :mod:`~zoo.eval.prefetch`: batches read ahead by threads.

Running models and scoring them:

* :mod:`~zoo.eval.fast_check`: the fast forms, checked against the models as built on their first batch.
* :mod:`~zoo.eval.upstream_tf`: the upstream TensorFlow graph, read from its release file and run.
* :mod:`~zoo.eval.predictors`: logits of a batch in PyTorch, Keras or the upstream graph.
* :mod:`~zoo.eval.scoring`: top-k labels and top-1/top-5 counts.
* :mod:`~zoo.eval.distributed`: sharding across ``torchrun`` ranks and gathering the results.
* :mod:`~zoo.eval.accuracy`: the top-1/top-5 evaluation and its report (``scripts/verify_accuracy.py``).
* :mod:`~zoo.eval.mlperf`: MLPerf LoadGen runs (``scripts/mlperf_run.py``).
* :mod:`~zoo.eval.flow_eval`: average end-point error of a flow model (``scripts/verify_flow.py``).

Nothing here imports TensorFlow or Keras until a Keras or upstream run asks for it.
"""
