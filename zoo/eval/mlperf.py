"""MLPerf Inference LoadGen runs of the classifiers: a QSL over the preprocessed arrays, a batching SUT, scoring.

Upstream facts this module restates (mlcommons/inference, read, not copied):

* ``vision/classification_and_detection/python/main.py``: the SUT answers each
  query sample with the post-processed label (argmax + the model's label
  offset) as one float32: the response buffer is the float32's bytes in an
  ``array.array("B")`` that stays referenced until ``QuerySamplesComplete``
  returns. Queries of more samples than ``--max-batchsize`` are split into
  batches of at most that size. The settings come from the config files first
  (``FromConfig(conf, model_name, scenario)``, ``model_name`` being
  ``entry.mlperf.model_name``), then main.py's overrides: ``--time`` sets min
  and max duration, ``--qps`` the Server target and the Offline expected qps,
  ``--count`` min and max query count.
* ``loadgen/mlperf.conf`` (built into LoadGen since v4.1): ResNet-50's
  ``performance_sample_count_override = 1024``, used here for every model on
  the same ImageNet QSL; SingleStream's metric is the 90th percentile latency, MultiStream's the 99th.
* ``tools/accuracy-imagenet.py``: scoring ``mlperf_log_accuracy.json``: skip a
  ``qsl_idx`` already seen, decode ``data`` (hex) as float32, compare
  ``int(data[0])`` with the val_map label of line ``qsl_idx``, print
  ``accuracy={:.3f}%, good={}, total={}``.

LoadGen 6.0's binding applies its built-in mlperf.conf only on the *first*
``FromConfig(path, model, scenario)`` call of a process (checked: a second call
leaves ``min_duration_ms`` at its 10 s default); ``conf_type=0`` applies it on
every call, so :func:`make_settings` calls that first, then the user.conf.
"""

from __future__ import annotations

import array
import json
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ArgumentError, FormatError, MissingFileError, ZooError
from ..fileio import atomic_write_bytes
from ..registry import get_model_entry
from .datasets import ArrayDataset
from .imagenet_models import array_size, mlperf_entry
from .predictors import Predictor, make_predictor

__all__ = [
    "BACKENDS",
    "MODES",
    "SCENARIOS",
    "AccuracyResult",
    "ClassifierSUT",
    "SampleLibrary",
    "accuracy_line",
    "import_loadgen",
    "make_backend",
    "make_settings",
    "parse_summary",
    "run_loadgen",
    "scenario_metric",
    "score_accuracy_log",
    "write_accuracy_report",
]

SCENARIOS = ("SingleStream", "MultiStream", "Server", "Offline")
# --mode -> LoadGen's TestMode member.
MODES = {"accuracy": "AccuracyOnly", "performance": "PerformanceOnly", "submission": "SubmissionRun"}
BACKENDS = ("torch", "keras", "onnxruntime", "tf-upstream")
ACCURACY_LOG = "mlperf_log_accuracy.json"
SUMMARY_LOG = "mlperf_log_summary.txt"
ACCURACY_REPORT_FORMAT = "zoo-mlperf-accuracy/1"
INSTALL_HINT = 'pip install "zoo[mlperf]"'


def import_loadgen():
    """The ``mlperf_loadgen`` module, or a :class:`ZooError` naming the extra that installs it."""
    try:
        import mlperf_loadgen
    except ImportError:
        raise ZooError(f"MLPerf LoadGen (module mlperf_loadgen) is not installed; {INSTALL_HINT}") from None
    return mlperf_loadgen


def check_scenario(scenario: str) -> str:
    """``scenario`` if it is one of :data:`SCENARIOS`, else an :class:`ArgumentError`."""
    if scenario not in SCENARIOS:
        raise ArgumentError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
    return scenario


# --- the query sample library ----------------------------------------------------------

class SampleLibrary:
    """LoadGen's QSL over an :class:`ArrayDataset`: ``load`` reads the samples into memory, ``unload`` drops them."""

    def __init__(self, dataset: ArrayDataset) -> None:
        self.dataset = dataset
        self.loaded: dict[int, np.ndarray] = {}

    def load(self, indices: Sequence[int]) -> None:
        for i in indices:
            if i not in self.loaded:
                self.loaded[i] = np.array(self.dataset.load(i))  # a copy in memory, not the memory map

    def unload(self, indices: Sequence[int] | None) -> None:
        for i in (list(self.loaded) if indices is None else indices):
            self.loaded.pop(i, None)

    def batch(self, indices: Sequence[int]) -> np.ndarray:
        """The loaded samples ``indices`` as one float32 batch (LoadGen only asks for loaded ones)."""
        return np.stack([self.loaded[i] if i in self.loaded else np.asarray(self.dataset.load(i)) for i in indices])


# --- backends --------------------------------------------------------------------------

def _onnxruntime_predictor(model: str, weights, batch: int, threads: int | None) -> Predictor:
    """ONNX Runtime on the PyTorch port exported at a static batch size ``batch``; smaller batches are zero-padded."""
    import tempfile

    try:
        import onnxruntime as ort
    except ImportError:
        raise ZooError('--backend onnxruntime needs onnxruntime, onnx and onnxscript; pip install "zoo[bench]"') from None
    from ..export import export_model

    with tempfile.TemporaryDirectory(prefix="zoo-mlperf-onnx-") as folder:
        # Exported at the size of the preprocessed arrays it will be fed.
        path = export_model(model, weights, Path(folder) / f"{model}.onnx", batch=batch, size=array_size(model))
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name

    def run(x: np.ndarray) -> np.ndarray:
        n = len(x)
        if n < batch:  # the export's shape is static; rows are independent, so padding changes nothing
            x = np.concatenate([x, np.zeros((batch - n, *x.shape[1:]), np.float32)])
        out = np.asarray(session.run(None, {feed: x})[0])
        if len(out) != batch:
            raise FormatError(f"the exported model returned {len(out)} rows for a batch of {batch}")
        return out[:n]

    def chunked(x: np.ndarray) -> np.ndarray:
        return np.concatenate([run(x[i:i + batch]) for i in range(0, len(x), batch)])

    # The export takes the PyTorch port's input layout.
    return Predictor("onnxruntime", get_model_entry(model).input.layout("torch"), chunked)


def make_backend(model: str, backend: str, weights=None, upstream=None, device: str | None = None,
                 max_batchsize: int = 1, threads: int | None = None, fast: bool = True,
                 check_batch: np.ndarray | None = None, batch_layout: str = "NHWC") -> Predictor:
    """The :class:`Predictor` for ``backend`` (one of :data:`BACKENDS`), built by :func:`make_predictor`.

    ``torch`` and ``keras`` run the ports in their fastest exact form
    (:mod:`zoo.fast`, :mod:`zoo.keras.fast`) unless ``fast`` is False; that
    form is checked against the model as built on its first batch. Given
    ``check_batch`` (in ``batch_layout``), that first batch runs here, so a
    form that is not exact raises :class:`zoo.errors.NotExactError` before
    LoadGen starts (and a compiled form compiles for this batch's shape now).
    """
    if backend == "onnxruntime":
        if weights is None:
            raise ArgumentError("--backend onnxruntime needs --weights (a converted .safetensors file or a tag)")
        return _onnxruntime_predictor(model, weights, max_batchsize, threads)
    if backend not in BACKENDS:
        raise ArgumentError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    predictor = make_predictor(model, backend, weights=weights, upstream=upstream, device=device, fast=fast)
    if predictor.fast_check is not None and check_batch is not None and len(check_batch):
        predictor(check_batch, batch_layout)
    return predictor


# --- the system under test -------------------------------------------------------------

class ClassifierSUT:
    """Answers LoadGen's queries with each sample's label (argmax + ``label_offset``) as one float32.

    Queries are cut into batches of at most ``max_batchsize`` samples; with
    ``threads`` > 1 the batches run on that many worker threads (MLPerf's
    ``QueueRunner``), else in LoadGen's issuing thread (its ``RunnerBase``). A
    failing batch is answered with empty responses, so LoadGen does not wait
    forever, and the first error is raised by :meth:`raise_error` after the run.
    """

    def __init__(self, lg, qsl: SampleLibrary, predictor: Predictor, label_offset: int,
                 max_batchsize: int = 1, threads: int = 1) -> None:
        if max_batchsize < 1:
            raise ArgumentError(f"--max-batchsize must be >= 1, got {max_batchsize}")
        self.lg, self.qsl, self.predictor = lg, qsl, predictor
        self.label_offset, self.max_batchsize = label_offset, max_batchsize
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="zoo-sut") if threads > 1 else None
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self.samples_done = 0

    def issue_queries(self, samples) -> None:
        samples = list(samples)
        for start in range(0, len(samples), self.max_batchsize):
            chunk = samples[start:start + self.max_batchsize]
            if self.pool is None:
                self._run(chunk)
            else:
                self.pool.submit(self._run, chunk)

    def flush_queries(self) -> None:
        pass

    def labels(self, indices: Sequence[int]) -> np.ndarray:
        """The labels the SUT answers for samples ``indices``."""
        logits = self.predictor(self.qsl.batch(indices), self.qsl.dataset.layout)
        return np.argmax(logits, axis=1) + self.label_offset

    def _run(self, samples) -> None:
        try:
            labels = self.labels([s.index for s in samples]).tolist()
        except BaseException as error:  # answered empty below; re-raised after the run
            with self._lock:
                self.error = self.error or error
            labels = None
        buffers = []  # referenced until QuerySamplesComplete returns: LoadGen reads them there
        responses = []
        for i, sample in enumerate(samples):
            data = b"" if labels is None else np.array(labels[i], np.float32).tobytes()
            buffer = array.array("B", data)
            buffers.append(buffer)
            address, length = buffer.buffer_info()
            responses.append(self.lg.QuerySampleResponse(sample.id, address, length))
        self.lg.QuerySamplesComplete(responses)
        with self._lock:
            self.samples_done += len(samples)
        del buffers

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)

    def raise_error(self) -> None:
        if self.error is not None:
            raise ZooError(f"the SUT failed on a batch: {type(self.error).__name__}: {self.error}") from self.error


# --- settings --------------------------------------------------------------------------

def make_settings(lg, model: str, scenario: str, mode: str, user_conf: str | os.PathLike | None = None,
                  count: int | None = None, seconds: float | None = None, qps: float | None = None,
                  dataset_size: int | None = None):
    """LoadGen ``TestSettings``: the built-in mlperf.conf, then ``user_conf``, then the command line's overrides."""
    check_scenario(scenario)
    if mode not in MODES:
        raise ArgumentError(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
    name = mlperf_entry(model).mlperf.model_name
    settings = lg.TestSettings()
    # conf_type=0: only LoadGen's built-in mlperf.conf, applied on every call (see the module docstring).
    if settings.FromConfig("", name, scenario, 0) != 0:
        raise ZooError("LoadGen could not apply its built-in mlperf.conf")
    if user_conf is not None:
        if not Path(user_conf).is_file():
            raise MissingFileError(f"{user_conf}: no such user.conf")
        if settings.FromConfig(str(user_conf), name, scenario) != 0:
            raise FormatError(f"{user_conf}: LoadGen could not read this user.conf")
    settings.scenario = getattr(lg.TestScenario, scenario)
    settings.mode = getattr(lg.TestMode, MODES[mode])
    if seconds is not None:  # main.py --time: min and max duration
        if seconds <= 0:
            raise ArgumentError(f"--time must be > 0, got {seconds}")
        settings.min_duration_ms = int(seconds * 1000)
        settings.max_duration_ms = int(seconds * 1000)
    if qps is not None:
        if qps <= 0:
            raise ArgumentError(f"--qps must be > 0, got {qps}")
        settings.server_target_qps = float(qps)  # main.py --qps
        settings.offline_expected_qps = float(qps)
        # The latency scenarios: the expected time of one query at that rate.
        settings.single_stream_expected_latency_ns = int(1e9 / qps)
        settings.multi_stream_expected_latency_ns = int(1e9 / qps)
    if count is not None:  # main.py --count
        settings.min_query_count = count
        settings.max_query_count = count
    if dataset_size is not None and settings.performance_sample_count_override > dataset_size:
        # mlperf.conf asks for 1024 samples in memory; a smaller data set can hold only its own.
        settings.performance_sample_count_override = dataset_size
    return settings


# --- the run ---------------------------------------------------------------------------

@dataclass
class RunResult:
    """What :func:`run_loadgen` did: where the logs are and how many samples the SUT answered."""

    output: Path
    samples: int
    performance_sample_count: int
    settings: dict = field(default_factory=dict)


def run_loadgen(lg, model: str, dataset: ArrayDataset, predictor: Predictor, settings, output: str | os.PathLike,
                max_batchsize: int = 1, threads: int = 1) -> RunResult:
    """Run LoadGen with a :class:`ClassifierSUT` over ``dataset``; its logs go to ``output``."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    entry = get_model_entry(model)
    qsl = SampleLibrary(dataset)
    scenario = settings.scenario
    batch = 1 if scenario == lg.TestScenario.SingleStream else max_batchsize
    sut_impl = ClassifierSUT(lg, qsl, predictor, entry.label_offset, batch, threads)
    performance_count = min(len(dataset), entry.mlperf.performance_sample_count)
    log_output = lg.LogOutputSettings()
    log_output.outdir = str(output)
    log_output.copy_summary_to_stdout = False
    log_settings = lg.LogSettings()
    log_settings.log_output = log_output
    sut = lg.ConstructSUT(sut_impl.issue_queries, sut_impl.flush_queries)
    qsl_handle = lg.ConstructQSL(len(dataset), performance_count, qsl.load, qsl.unload)
    try:
        # LoadGen applies an audit.config found at the path it is given (default: one in the working
        # directory); pointing it into OUT keeps a stray one elsewhere from changing the run.
        lg.StartTestWithLogSettings(sut, qsl_handle, settings, log_settings, str(output / "audit.config"))
    finally:
        sut_impl.close()
        lg.DestroyQSL(qsl_handle)
        lg.DestroySUT(sut)
        qsl.unload(None)
    sut_impl.raise_error()
    return RunResult(output, sut_impl.samples_done, performance_count)


# --- scoring (tools/accuracy-imagenet.py) -----------------------------------------------

@dataclass
class AccuracyResult:
    """The score of an accuracy log: distinct samples, correct ones, duplicates skipped, label per sample."""

    good: int
    total: int
    duplicates: int
    found: dict[int, int]

    @property
    def percent(self) -> float:
        return 100.0 * self.good / self.total if self.total else 0.0


def score_accuracy_log(path: str | os.PathLike, labels: Sequence[int], dtype: str = "float32") -> AccuracyResult:
    """Score ``mlperf_log_accuracy.json`` against ``labels`` (label of QSL index i = ``labels[i]``).

    As ``tools/accuracy-imagenet.py``: a ``qsl_idx`` seen before is skipped;
    the label is ``int`` of the first ``dtype`` value of the hex ``data``.
    """
    path = Path(path)
    try:
        results = json.loads(path.read_text())
    except FileNotFoundError:
        raise MissingFileError(f"{path}: no such accuracy log (was this an accuracy run?)") from None
    except (OSError, ValueError) as error:
        raise FormatError(f"{path}: not a readable LoadGen accuracy log ({error})") from None
    if not isinstance(results, list):
        raise FormatError(f"{path}: expected a JSON list of results")
    found: dict[int, int] = {}
    good = duplicates = 0
    for number, item in enumerate(results):
        try:
            idx, data = int(item["qsl_idx"]), bytes.fromhex(item["data"])
        except (KeyError, TypeError, ValueError) as error:
            raise FormatError(f"{path}: result {number} is not a {{qsl_idx, data}} entry ({error})") from None
        if idx in found:
            duplicates += 1
            continue
        if not 0 <= idx < len(labels):
            raise FormatError(f"{path}: result {number} has qsl_idx {idx}, but the val_map lists {len(labels)} images")
        values = np.frombuffer(data, np.dtype(dtype))
        if not len(values):
            raise FormatError(f"{path}: result {number} (qsl_idx {idx}) has no data")
        found[idx] = int(values[0])
        good += int(found[idx] == int(labels[idx]))
    if not found:
        raise FormatError(f"{path}: the accuracy log holds no results")
    return AccuracyResult(good, len(found), duplicates, found)


def accuracy_line(result: AccuracyResult) -> str:
    """accuracy-imagenet.py's line: ``accuracy=76.456%, good=38228, total=50000``."""
    return f"accuracy={result.percent:.3f}%, good={result.good}, total={result.total}"


def write_accuracy_report(path: str | os.PathLike, model: str, result: AccuracyResult, info: dict) -> Path:
    """OUT/accuracy.json, written atomically: the score, the MLPerf reference top-1 and the difference."""
    entry = get_model_entry(model)
    reference = entry.reference_metric.get("top1")
    report = {
        "format": ACCURACY_REPORT_FORMAT,
        "model": model,
        **info,
        "accuracy": result.percent,
        "good": result.good,
        "total": result.total,
        "duplicates": result.duplicates,
        "reference": {"top1": reference, "dataset": entry.reference_metric.get("dataset"),
                      "source": entry.reference_metric.get("source")},
        "top1_difference": None if reference is None else result.percent - reference,
    }
    return atomic_write_bytes(path, (json.dumps(report, indent=1) + "\n").encode())


# --- the performance summary -----------------------------------------------------------

def parse_summary(path: str | os.PathLike) -> dict[str, str]:
    """``mlperf_log_summary.txt``'s ``key : value`` lines as a dict (first occurrence of a key wins)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise MissingFileError(f"{path}: no LoadGen summary") from None
    values: dict[str, str] = {}
    for line in text.splitlines():
        # "key : value", but LoadGen 6.0 writes "Samples per second: 17.8" without the space before ":".
        key, sep, value = line.partition(":")
        if sep and key.strip() and not key.startswith("="):
            values.setdefault(key.strip(), value.strip())
    if "Result is" not in values:
        raise FormatError(f"{path}: no 'Result is' line; not a LoadGen performance summary")
    return values


# Per scenario: the summary keys of its metric, tried in order (LoadGen's wording differs slightly by version).
_METRICS: dict[str, list[tuple[str, str]]] = {
    "SingleStream": [(r"^90(\.0)?th percentile latency \(ns\)$", "ns")],
    "MultiStream": [(r"^99(\.0)?th percentile latency \(ns\)$", "ns")],
    "Server": [(r"^Completed samples per second$", "samples/s"), (r"^Scheduled samples per second$", "samples/s")],
    "Offline": [(r"^Samples per second$", "samples/s")],
}


def scenario_metric(summary: dict[str, str], scenario: str) -> tuple[str, float, str]:
    """(name, value, unit) of ``scenario``'s metric in a parsed summary."""
    for pattern, unit in _METRICS[check_scenario(scenario)]:
        for key, value in summary.items():
            if re.match(pattern, key):
                try:
                    return key, float(value), unit
                except ValueError:
                    raise FormatError(f"summary: {key} = {value!r} is not a number") from None
    raise FormatError(f"the summary has no {scenario} metric ({', '.join(p for p, _ in _METRICS[scenario])})")
