"""The results table: the contract between ``bench`` (which writes it) and ``reports`` (which
reads it).

A run's results are one tidy table, a row per measured figure. Every fact a reader needs is a
column of its own, never parsed out of a name or of the ``method`` prose:

- ``model``, ``family``, ``phase``: what was measured, in which phase; ``source``: where the
  model comes from (``archbench`` for the suite's own, ``tv`` torchvision, ``timm``, ``file``
  for a user's file, or the name of the package that registered it); ``device``: the device
  it ran on (run.json's ``device_name``), so that runs on several devices merge into one table.
- ``mode``: the execution mode's name (``fp32``, ``bf16+cl+compile``, ...), of speed figures
  and of the accuracy phase's training; ``precision``, ``layout`` (``nchw`` or
  ``channels_last``) and ``compile`` (torch.compile's mode, ``none`` when eager) are its parts.
- ``batch``: the batch the figure ran at: 1 for batch-1 latency, the halved batch after an
  out-of-memory retry, the training batch of the accuracy figures; empty for per-model
  figures such as parameters.
- ``requested_batch``: the batch a speed measurement was asked for (an entry of
  ``--batch-sizes``); every row of one measurement shares it, its latency rows included, so it
  names the measurement (what a resumed run skips).
- ``budget_unit``, ``budget``: the accuracy phase's training budget (``epochs`` 2, ``steps``
  500, ``seconds`` 60); ``train_images``, ``test_images``: how many images it trained and
  evaluated on.
- ``metric``, ``value``, ``unit``: the figure, from ``METRICS`` below, each with its unit, so
  no figure is stored without one.
- ``method``: how it was measured, for people; ``error``: why a phase failed. A model that
  fails in a phase gets a row with ``metric == "error"`` and the message in ``error``; the run
  goes on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, unquote

# the columns that say what a figure is about (all but metric, value, unit, method, error)
FACT_COLUMNS: tuple[str, ...] = (
    "model",
    "family",
    "source",
    "device",
    "phase",
    "mode",
    "precision",
    "layout",
    "compile",
    "batch",
    "requested_batch",
    "budget_unit",
    "budget",
    "train_images",
    "test_images",
)
RESULT_COLUMNS: tuple[str, ...] = (*FACT_COLUMNS, "metric", "value", "unit", "method", "error")
# the columns holding whole numbers (empty where they do not apply), the rest but value are text
INTEGER_COLUMNS: tuple[str, ...] = (
    "batch",
    "requested_batch",
    "train_images",
    "test_images",
)
TEXT_COLUMNS: tuple[str, ...] = tuple(
    c for c in RESULT_COLUMNS if c not in (*INTEGER_COLUMNS, "value", "budget")
)

# thresholds that define metrics, owned here so that the writer and the readers agree
NOISY_REL_IQR = 0.05  # IQR/median above this flags a measurement as noisy
HOST_BOUND_RATIO = 0.9  # enqueue time / event time at or above this flags a figure host-bound
ACCURACY_TARGETS = (85, 90, 93)  # test accuracy (%) whose time-to-reach is reported

# what identifies one measured item of each phase: the columns its rows share (a model's
# static profile, a speed measurement per mode and asked-for batch, ...); a phase not named
# here measures once per model. Resuming skips items; --shard deals them out; merge checks
# that no two runs hold one.
ITEM_KEYS: dict[str, tuple[str, ...]] = {
    "static": ("model",),
    "speed": ("model", "mode", "requested_batch"),
    "accuracy": ("model",),
    "profile": ("model", "mode"),
    "ddp": ("model", "mode"),
}

LAYER_COLUMNS: tuple[str, ...] = ("path", "type", "depth", "output_shape", "params", "macs")

# the profile phase's per-layer table (RUN_DIR/profile/MODEL__MODE.csv): per training step of
# the phase's batch, times in ms; forward_ms and backward_ms of a container include its
# children; self_ms is forward and backward outside any child module; join_ms the part of it
# spent concatenating and adding (see bench.measure.layer_time); self_share is self_ms over the
# profiled step (%); macs per step (the static profile's per sample x batch), self_macs those
# outside any child; mac_per_s from infer_forward_ms; activation_bytes the output at the batch;
# memory_growth_bytes the net bytes allocated in the training forward (output and what autograd
# saves, less what it freed; CUDA memory on CUDA, CPU memory on the CPU), children included.
# Rows whose path is in parentheses are not modules: the loss, the optimizer, and backward
# nodes of no module (gradient accumulation, the loss's backward).
PROFILE_COLUMNS: tuple[str, ...] = (
    "path",
    "type",
    "kind",
    "depth",
    "infer_forward_ms",
    "infer_self_ms",
    "forward_ms",
    "backward_ms",
    "self_ms",
    "join_ms",
    "self_share",
    "macs",
    "self_macs",
    "mac_per_s",
    "activation_bytes",
    "memory_growth_bytes",
)
# the kinds of layers the profile phase sums time and MACs by
LAYER_KINDS: dict[str, str] = {
    "conv": "convolution",
    "norm": "normalisation",
    "activation": "activation",
    "pooling": "pooling",
    "linear": "linear",
    "join": "concatenation and residual addition",
    "other": "other",
}

CURVE_COLUMNS: tuple[str, ...] = (
    "model",
    "seed",
    "epoch",
    "train_seconds",
    "train_loss",
    "train_acc",
    "test_acc",
)

ERROR_METRIC = "error"


@dataclass(frozen=True)
class Metric:
    """A figure a phase writes: its name, its unit, what it is; ``phase`` the phase that
    writes it ("" for the rows of every phase: memory, errors)."""

    name: str
    unit: str
    description: str
    phase: str = ""


def _in_phase(phase: str, *metrics: Metric) -> tuple[Metric, ...]:
    return tuple(dataclasses.replace(m, phase=phase) for m in metrics)


def _throughput_metrics(kind: str, what: str) -> tuple[Metric, ...]:
    return (
        Metric(f"{kind}_throughput", "samples/s", f"{what}: batch / median seconds per step"),
        Metric(f"{kind}_throughput_iqr", "samples/s", f"{what}: IQR of per-block samples/s"),
        Metric(f"{kind}_rel_iqr", "%", f"{what}: IQR / median of the per-step times"),
        Metric(f"{kind}_noisy", "flag", f"{what}: 1 when IQR / median exceeds {NOISY_REL_IQR:.0%}"),
        Metric(f"{kind}_batch", "samples", f"{what}: batch that ran (halved on out-of-memory)"),
        Metric(f"{kind}_tflops", "TFLOP/s", f"{what}: achieved, from the static FLOPs"),
        Metric(f"{kind}_mfu", "%", f"{what}: achieved TFLOP/s / device peak at the precision"),
        Metric(
            f"{kind}_peak_mem",
            "MB",
            f"{what}: steady-state peak CUDA memory allocated "
            "(10^6 bytes), reset after the warm-up, over the timed blocks",
        ),
        Metric(
            f"{kind}_first_call_peak_mem",
            "MB",
            f"{what}: peak CUDA memory allocated during "
            "the first call (compilation, CUDA-graph recording, autotuning)",
        ),
        Metric(
            f"{kind}_host_ratio",
            "%",
            f"{what}: the host's enqueue loop time / the GPU "
            "event time of the same blocks (CUDA only)",
        ),
        Metric(
            f"{kind}_host_bound",
            "flag",
            f"{what}: 1 when the host's enqueue time is at "
            f"least {HOST_BOUND_RATIO:.0%} of the event time: the figure measures Python "
            "dispatch, not the GPU",
        ),
        Metric(f"{kind}_compile_time", "s", f"{what}: first call alone, compilation included"),
        Metric(f"{kind}_graph_breaks", "count", f"{what}: torch.compile graph breaks"),
    )


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        *_in_phase(
            "static",
            Metric("input_channels", "channels", "input channels the model was profiled with"),
            Metric("input_height", "px", "input height the model was profiled at"),
            Metric("input_width", "px", "input width the model was profiled at"),
            Metric("params", "parameters", "all parameters"),
            Metric("params_trainable", "parameters", "parameters with requires_grad"),
            Metric("param_size_fp32", "MB", "parameters x 4 bytes / 1e6"),
            Metric(
                "macs", "MAC/sample", "multiply-accumulates per sample, BatchNorm 1 per element"
            ),
            Metric("flops", "FLOP/sample", "2 x macs"),
            Metric("macs_conv_linear", "MAC/sample", "conv + linear multiply-accumulates only"),
            Metric("unsupported_ops", "ops", "operator calls left uncounted, ReLU included"),
            Metric("activation_elems", "elements/sample", "elements output by the leaf layers"),
        ),
        *_in_phase(
            "speed",
            # speed phase: per model, mode and batch; raw samples are in samples.jsonl
            *_throughput_metrics("infer", "inference (no grad)"),
            *_throughput_metrics("train", "training step: forward, backward, SGD step"),
            *(
                metric
                for kind, what in (
                    ("infer", "eval-mode logits"),
                    ("train", "one SGD step's update"),
                )
                for metric in (
                    Metric(
                        f"{kind}_eager_error",
                        "%",
                        f"compiled modes' check: {what} of the eager model in the mode, relative "
                        "L2 error against an fp64 run",
                    ),
                    Metric(
                        f"{kind}_compiled_error",
                        "%",
                        f"compiled modes' check: {what} of the compiled model, relative L2 error "
                        "against an fp64 run",
                    ),
                    Metric(
                        f"{kind}_compiled_mismatch",
                        "flag",
                        f"compiled modes' check: 1 when the compiled {what} is further from fp64 "
                        "than eager's allows (bench.measure.agreement)",
                    ),
                )
            ),
        ),
        *_in_phase(
            "ddp",
            # ddp phase: per model and eager mode, at the first batch (per process); the accuracy
            # phase's training with --accuracy-processes: per model, at its batch (split)
            Metric("ddp_processes", "count", "DistributedDataParallel processes (torchrun)"),
            Metric("ddp_throughput", "samples/s", "training samples/s of all processes together"),
            Metric("ddp_throughput_per_process", "samples/s", "ddp_throughput / processes"),
            Metric("ddp_single_throughput", "samples/s", "the same measured with one process"),
            Metric(
                "ddp_scaling_efficiency",
                "%",
                "ddp_throughput / (processes x ddp_single_throughput)",
            ),
            Metric(
                "ddp_single_test_acc",
                "%",
                "the accuracy phase's test accuracy trained by one process (--accuracy-processes)",
            ),
        ),
        *_in_phase(
            "speed",
            Metric("latency_p50", "ms", "batch-1 inference latency, median"),
            Metric("latency_p90", "ms", "batch-1 inference latency, 90th percentile"),
            Metric("latency_p99", "ms", "batch-1 inference latency, 99th percentile"),
            Metric("latency_rel_iqr", "%", "IQR / median of the batch-1 latencies"),
            Metric("latency_compile_time", "s", "first batch-1 call alone, compilation included"),
            Metric(
                "latency_peak_mem",
                "MB",
                "steady-state peak CUDA memory allocated while timing batch 1, reset after the "
                "warm-up",
            ),
            Metric(
                "latency_first_call_peak_mem",
                "MB",
                "peak CUDA memory allocated during the "
                "first batch-1 call (compilation, CUDA-graph recording)",
            ),
        ),
        *_in_phase(
            "profile",
            # profile phase: per model and eager mode, at the first batch; per-layer figures are
            # in profile/MODEL__MODE.csv
            Metric("profile_forward_ms", "ms", "training forward and loss alone, median of blocks"),
            Metric("profile_backward_ms", "ms", "training backward alone, median of blocks"),
            Metric("profile_optimizer_ms", "ms", "SGD step and zero_grad alone, median of blocks"),
            Metric("profile_step_ms", "ms", "unprofiled full training step, timed as speed's"),
            Metric(
                "profile_split_gap",
                "%",
                "(forward + backward + optimizer) / unprofiled step - 1: what timing the parts "
                "apart adds (synchronisations) or misses",
            ),
            Metric("profile_profiled_step_ms", "ms", "a training step under the profiler, median"),
            Metric("profile_overhead", "%", "profiled step / unprofiled step - 1"),
            Metric(
                "profile_attributed",
                "%",
                "the per-layer rows' self times (modules, loss, optimizer) / the profiled step",
            ),
            Metric("profile_infer_ms", "ms", "profiled inference forward (no grad), per batch"),
            *(
                Metric(f"profile_time_share_{k}", "%", f"{label}: share of the modules' time")
                for k, label in LAYER_KINDS.items()
            ),
            *(
                Metric(f"profile_mac_share_{k}", "%", f"{label}: share of the MACs")
                for k, label in LAYER_KINDS.items()
            ),
        ),
        *_in_phase(
            "accuracy",
            # accuracy phase: per model, mean over seeds; per-epoch curves are in curves.csv
            Metric("test_acc", "%", "top-1 accuracy on the test images, mean over seeds"),
            Metric("test_acc_std", "%", "standard deviation of test_acc over seeds (n-1)"),
            Metric("seeds", "count", "seeds trained (and not diverged)"),
            Metric("macro_f1", "%", "macro-averaged F1 on the test images, mean over seeds"),
            Metric("final_train_acc", "%", "accuracy on the last epoch's augmented batches"),
            Metric("final_train_loss", "loss", "mean label-smoothed cross-entropy, last epoch"),
            Metric("fit_throughput", "examples/s", "training examples / training seconds"),
            Metric("fit_time", "s", "training seconds, evaluation and the first step excluded"),
            Metric("fit_epochs", "epochs", "epochs trained (the last may be partial)"),
            Metric("first_step_time", "s", "the first training step alone (compile, autotune)"),
            *(
                Metric(
                    f"time_to_{t}",
                    "s",
                    f"training seconds until test accuracy >= {t}% (epoch resolution; empty if "
                    "never)",
                )
                for t in ACCURACY_TARGETS
            ),
            *(
                Metric(f"class_acc_{k}", "%", f"test accuracy on class {k}, mean over seeds")
                for k in range(10)
            ),
            Metric("diverged", "count", "seeds stopped because the loss was not finite"),
            Metric(
                "note_test_acc",
                "%",
                "the test accuracy the model's seed note printed, under the note's own recipe",
            ),
            Metric(
                "note_examples_per_s",
                "examples/s",
                "the training examples/s the model's seed note printed, on the note's own GPU",
            ),
            Metric(
                "not_trained_estimate",
                "s",
                "not trained: the training time its first steps "
                "predicted for the budget, over the cap (the method says how to run it)",
            ),
        ),
        # every phase, per model (the row's phase is the one measured)
        Metric(
            "peak_rss",
            "MB",
            "the process's peak resident memory while this phase ran for this model (held "
            "before it too: the data, what earlier models left in the allocator)",
        ),
        Metric(
            "peak_rss_added",
            "MB",
            "peak_rss less the resident memory when this phase began for this model",
        ),
        Metric(ERROR_METRIC, "", "the phase failed for this model; see the error column"),
    )
}
# per phase and model, not per measurement: rows without mode, batch or budget
MEMORY_METRICS = frozenset({"peak_rss", "peak_rss_added"})


def metrics_of(phase: str) -> list[Metric]:
    """The metrics ``phase`` writes, in the schema's order."""
    return [m for m in METRICS.values() if m.phase == phase]


def register_phase_schema(
    phase: str, metrics: Iterable[Metric], item_keys: tuple[str, ...] = ("model",)
) -> None:
    """Declare a phase defined outside this package: its metrics (``phase`` set to it; a name
    taken by another metric is refused) and the columns naming its items (``ITEM_KEYS``).
    Declaring the same again is a no-op."""
    new = [dataclasses.replace(m, phase=phase) for m in metrics]
    for m in new:
        if m.name in METRICS and METRICS[m.name] != m:
            raise ValueError(
                f"metric '{m.name}' is declared already (phase {METRICS[m.name].phase})"
            )
    unknown = [k for k in item_keys if k not in FACT_COLUMNS]
    if unknown or "model" not in item_keys:
        raise ValueError(f"item keys must be fact columns, model among them: {item_keys}")
    if ITEM_KEYS.get(phase, item_keys) != item_keys:
        raise ValueError(f"phase '{phase}' has the item keys {ITEM_KEYS[phase]} already")
    METRICS.update((m.name, m) for m in new)
    ITEM_KEYS[phase] = item_keys


def unit_of(metric: str) -> str:
    """The unit of ``metric``; a metric not declared here cannot be written."""
    return METRICS[metric].unit


def file_stem(model: str) -> str:
    """A model's name as a file name in the run folder: ``tv:resnet50`` as ``tv%3Aresnet50``
    (a colon is not allowed in Windows file names), read back by ``model_of_stem``."""
    return quote(model, safe="")


def model_of_stem(stem: str) -> str:
    return unquote(stem)
