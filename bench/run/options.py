"""The run's options, declared once: the parser every entry point shares, its range checks as
argparse types, and the ``RunSpec`` built from them (``spec_from_args``) and written back as a
command (``spec_argv``). Parsing does no I/O and touches no global torch state: the session
builds the run's state (the device, the data on it) from the spec.

Bad input is a ``UsageError`` (one line, exit 2) or argparse's own error (exit 2); options are
never abbreviated (``--resum`` is refused, naming ``--resume``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
from pathlib import Path
from typing import NoReturn

import torch

import archs
from archs.user_models import is_file_spec
from bench.measure.modes import ModeError, parse_modes
from bench.measure.throughput import CPU_BATCH, GPU_BATCH
from bench.phases import DEFAULT_PHASES, PHASES, load_phase_plugins
from bench.run.shards import parse_shard
from bench.spec import ModelRef, RunSpec, SpecError
from bench.training.data import DEBIAN_DIR, ENV_VAR
from bench.training.loop import parse_budget

EXIT_USAGE = 2
# The CPU's accuracy defaults: the same number of examples for every model, whatever the load;
# a model too slow for them on this machine is reported as not trained, with its estimate.
CPU_TRAIN_LIMIT, CPU_EVAL_LIMIT, CPU_EPOCHS, CPU_CAP_S = 10_000, 1_000, 2, 120.0
# Batches of 16 keep the default CPU run under 4 GB: VGG-16 at 224x224 peaked at 13.5 GB
# evaluated at 250 and 7.5 GB trained at 64; a run training and evaluating it at 16, 3.9 GB.
CPU_TRAIN_BATCH = CPU_EVAL_BATCH = 16
GPU_EPOCHS = 5


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


class StrictParser(argparse.ArgumentParser):
    """argparse without abbreviations: an option that is a prefix of real ones is named as
    such (argparse would otherwise take ``--launch`` for ``--launcher``, and a launch would
    then hand its shards the abbreviation)."""

    def __init__(self, *args, raise_errors: bool = False, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self.raise_errors = raise_errors  # a UsageError instead of exit 2 (specs read back)

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        parsed, extra = self.parse_known_args(args, namespace)
        if extra:
            known = [o for a in self._actions for o in a.option_strings if o.startswith("--")]
            for arg in extra:
                flag = arg.split("=", 1)[0]
                full = [o for o in known if o.startswith(flag)] if flag.startswith("--") else []
                if full:
                    self.error(
                        f"{flag}: options are not abbreviated; did you mean {' or '.join(full)}?"
                    )
            self.error(f"unrecognized arguments: {' '.join(extra)}")
        return parsed

    def error(self, message: str) -> NoReturn:
        """One line, exit 2 (argparse prints the whole usage first)."""
        if self.raise_errors:
            raise UsageError(message)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _integer(text: str, flag: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{flag} takes an integer, got '{text}'") from None


def at_least(low: int, flag: str):
    """An argparse type: an integer of at least ``low``."""

    def parse(text: str) -> int:
        value = _integer(text, flag)
        if value < low:
            raise argparse.ArgumentTypeError(f"{flag} must be at least {low}, got {value}")
        return value

    return parse


def non_negative_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--accuracy-cap takes seconds, got '{text}'") from None
    if value < 0:
        raise argparse.ArgumentTypeError("--accuracy-cap must be 0 (no cap) or more seconds")
    return value


def int_list(flag: str, low: int | None = None):
    """An argparse type: comma-separated integers, duplicates dropped, each at least ``low``."""

    def parse(text: str) -> tuple[int, ...]:
        try:
            values = tuple(dict.fromkeys(int(t) for t in text.split(",") if t.strip()))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{flag} must be comma-separated integers, got '{text}'"
            ) from None
        if not values:
            raise argparse.ArgumentTypeError(f"{flag} is empty")
        if low is not None and min(values) < low:
            raise argparse.ArgumentTypeError(f"{flag} must be positive, got '{text}'")
        return values

    return parse


def input_size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?", text)
    if not m:
        raise argparse.ArgumentTypeError(f"--input-size must be N or HxW, got '{text}'")
    h, w = int(m.group(1)), int(m.group(2) or m.group(1))
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f"--input-size must be positive, got '{text}'")
    return h, w


def phase_list(text: str) -> tuple[str, ...]:
    """The phases asked for, in the order they run (``bench.phases.PHASES``)."""
    load_phase_plugins()
    phases = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    unknown = [t for t in phases if t not in PHASES]
    if unknown or not phases:
        raise argparse.ArgumentTypeError(
            f"unknown phase '{','.join(unknown) or text}'; available: {', '.join(PHASES)}"
        )
    return tuple(p for p in PHASES if p in phases)


def shard(text: str) -> tuple[int, int]:
    try:
        parsed = parse_shard(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return parsed.index, parsed.count


def budget(text: str) -> str:
    try:
        return str(parse_budget(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


MODES_HELP = (
    "Modes: precision fp32|tf32|bf16|fp16 (amp = bf16), +cl for channels_last, "
    "+compile|+compile-ro|+compile-max|+compile-max-nocg for torch.compile default|"
    "reduce-overhead|max-autotune|max-autotune-no-cudagraphs, e.g. 'fp32,bf16+cl+compile'."
)
MODELS_HELP = (
    "Models: 'all', names, globs ('resnet*') or family names, comma-separated; "
    "torchvision's and timm's with a prefix ('tv:mobilenet*', 'timm:convnext_atto', "
    "'tv:resnet' for a family), a builder in a file ('path/to/file.py:builder')."
)


def add_spec_options(p: argparse.ArgumentParser) -> None:
    """The options that make up a ``RunSpec``: what a run measures and how."""
    p.add_argument("--models", help="which models (default: all, the suite's own)")
    p.add_argument(
        "--yes",
        action="store_true",
        help=f"run a glob that matches more than {archs.MAX_GLOB_MODELS} models",
    )
    p.add_argument(
        "--input-size", type=input_size, metavar="N|HxW", help="measure every model at this size"
    )
    p.add_argument(
        "--num-classes",
        type=at_least(1, "--num-classes"),
        default=10,
        help="output classes (default 10)",
    )
    p.add_argument(
        "--in-channels",
        type=at_least(1, "--in-channels"),
        default=1,
        help="input channels (default 1)",
    )
    p.add_argument(
        "--phases",
        type=phase_list,
        default=DEFAULT_PHASES,
        help=f"comma-separated phases of {','.join(PHASES)} (default: {','.join(DEFAULT_PHASES)})",
    )
    p.add_argument(
        "--trace",
        action="store_true",
        help="the profile phase also writes a Chrome/Perfetto trace per model and mode",
    )
    p.add_argument(
        "--gpu", action="store_true", help="measure on the CUDA device (fails without one)"
    )
    p.add_argument(
        "--modes",
        help="speed modes (default: fp32,bf16,bf16+cl,bf16+cl+compile on a GPU, fp32 on the CPU)",
    )
    p.add_argument(
        "--batch-sizes",
        type=int_list("--batch-sizes", low=1),
        metavar="B[,B...]",
        help=f"throughput batch sizes (default {GPU_BATCH} on a GPU, {CPU_BATCH} on the CPU)",
    )
    p.add_argument(
        "--repeats",
        type=at_least(1, "--repeats"),
        help="timed blocks per measurement (default 10 GPU, 5 CPU)",
    )
    p.add_argument(
        "--warmup",
        type=at_least(0, "--warmup"),
        help="untimed calls before timing (default 5 GPU, 2 CPU)",
    )
    p.add_argument(
        "--budget",
        type=budget,
        help="training budget per model and seed: epochs=N, steps=N or "
        f"seconds=S (default epochs={GPU_EPOCHS} on a GPU; on the CPU epochs={CPU_EPOCHS} of "
        f"the first {CPU_TRAIN_LIMIT:,} training images)",
    )
    p.add_argument(
        "--accuracy-cap",
        type=non_negative_seconds,
        metavar="SECONDS",
        help="a model whose training, estimated from its first steps, would take "
        f"longer is not trained but reported (default {CPU_CAP_S:g} s on the "
        "CPU, none on a GPU; 0: none)",
    )
    p.add_argument(
        "--seeds",
        type=int_list("--seeds"),
        default=(0,),
        help="comma-separated training seeds (default 0)",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        help=f"folder of the Fashion-MNIST IDX files (else ${ENV_VAR}, then {DEBIAN_DIR})",
    )
    p.add_argument(
        "--train-limit",
        type=at_least(1, "--train-limit"),
        help="train on the first N training images only",
    )
    p.add_argument(
        "--eval-limit",
        type=at_least(1, "--eval-limit"),
        help="evaluate on the first N test images (default all on a GPU, "
        f"{CPU_EVAL_LIMIT:,} on the CPU)",
    )
    p.add_argument("--train-compile", action="store_true", help="torch.compile the training model")
    p.add_argument(
        "--accuracy-processes",
        type=at_least(1, "--accuracy-processes"),
        metavar="N",
        help="train with DistributedDataParallel over N processes started by torchrun (one "
        "GPU each; gloo on the CPU), the model's batch split across them, and once more with "
        "one process for the scaling efficiency (default 1: no DDP)",
    )
    p.add_argument(
        "--compiled-latency",
        action="store_true",
        help="measure batch-1 latency in compiled modes too (one more compile per "
        "model and mode; by default latency is measured in eager modes)",
    )
    p.add_argument(
        "--threads",
        type=at_least(1, "--threads"),
        help="CPU threads for CPU figures (torch.set_num_threads; default: torch's)",
    )
    p.add_argument(
        "--shard",
        type=shard,
        metavar="K/N",
        help="measure the K-th of N shards of the run's work (balanced by estimated cost); "
        "merge the shards' run folders with `python -m reports merge`",
    )
    p.add_argument(
        "--ddp-processes",
        type=at_least(1, "--ddp-processes"),
        metavar="N",
        help="the ddp phase's DistributedDataParallel processes (default: every GPU; 2 on the CPU)",
    )


def given_options(parser: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """The destinations of the options ``argv`` gives explicitly."""
    quiet = argparse.Namespace()
    for action in parser._actions:
        if action.dest != "help":
            setattr(quiet, action.dest, _UNSET)
    parsed = parser.parse_args(argv, quiet)
    return {k for k, v in vars(parsed).items() if v is not _UNSET}


_UNSET = object()


def select_models(spec: str, yes: bool) -> list[str]:
    """The models asked for; a glob matching more than ``archs.MAX_GLOB_MODELS`` needs --yes."""
    try:
        return archs.select_models(spec, max_glob=None if yes else archs.MAX_GLOB_MODELS)
    except archs.ModelSourceError as exc:
        raise UsageError(str(exc)) from None


def model_refs(tokens: str, yes: bool) -> tuple[ModelRef, ...]:
    """The models ``tokens`` selects, each with its source and the token that selects it again
    in another process (a file's builder by its absolute path)."""
    refs = []
    # registered name -> path.py:builder, for the models of files
    file_tokens = {
        archs.select_models(t)[0]: t for t in map(str.strip, tokens.split(",")) if is_file_spec(t)
    }
    for name in select_models(tokens, yes):
        entry = archs.get_entry(name)
        select = name
        if name in file_tokens:
            path, _, builder = file_tokens[name].rpartition(":")
            select = f"{Path(path).expanduser().resolve()}:{builder}"
        refs.append(ModelRef(name, entry.source, select))
    return tuple(refs)


def spec_from_args(args: argparse.Namespace) -> RunSpec:
    """Every option checked, whichever phases run (a mistake is reported now, not by the
    run that adds its phase), the defaults of the device kind filled in; no I/O."""
    phases = tuple(args.phases)
    if args.trace and "profile" not in phases:
        raise UsageError(
            "--trace writes the profile phase's traces: add profile to --phases "
            "(e.g. --phases static,speed,profile)"
        )
    if args.accuracy_processes is not None and "accuracy" not in phases:
        raise UsageError(
            "--accuracy-processes trains the accuracy phase's models: add accuracy to --phases"
        )
    device = "cuda" if args.gpu else "cpu"
    try:
        modes = parse_modes(args.modes, torch.device(device))  # a value: CUDA is not asked
    except ModeError as exc:
        raise UsageError(str(exc)) from None
    gpu = device == "cuda"
    spec = RunSpec(
        models=model_refs(args.models or "all", args.yes),
        phases=phases,
        device=device,
        modes=tuple(m.name for m in modes),
        batch_sizes=tuple(args.batch_sizes or ((GPU_BATCH,) if gpu else (CPU_BATCH,))),
        input_size=args.input_size,
        num_classes=args.num_classes,
        in_channels=args.in_channels,
        repeats=args.repeats,
        warmup=args.warmup,
        compiled_latency=args.compiled_latency,
        trace=args.trace,
        threads=args.threads,
        shard=args.shard,
    )
    if "ddp" in phases:
        spec = dataclasses.replace(spec, ddp_processes=args.ddp_processes or (None if gpu else 2))
    if "accuracy" not in phases:  # the accuracy options say nothing of this run
        return spec
    cap = args.accuracy_cap if args.accuracy_cap is not None else (None if gpu else CPU_CAP_S)
    return dataclasses.replace(
        spec,
        budget=args.budget or f"epochs={GPU_EPOCHS if gpu else CPU_EPOCHS}",
        seeds=tuple(args.seeds),
        train_limit=args.train_limit or (None if gpu else CPU_TRAIN_LIMIT),
        eval_limit=args.eval_limit or (None if gpu else CPU_EVAL_LIMIT),
        accuracy_cap_s=cap or None,
        train_compile=args.train_compile,
        data_dir=str(args.data_dir) if args.data_dir is not None else None,
        accuracy_processes=args.accuracy_processes or 1,
    )


def spec_argv(spec: RunSpec) -> list[str]:
    """The options that give ``spec`` again, every value written out (a pasteable command)."""
    argv = ["--models", ",".join(m.select for m in spec.models)]
    argv += ["--phases", ",".join(spec.phases)]
    if spec.device == "cuda":
        argv.append("--gpu")
    argv += ["--modes", ",".join(spec.modes)]
    argv += ["--batch-sizes", ",".join(map(str, spec.batch_sizes))]
    if spec.input_size is not None:
        argv += ["--input-size", "{}x{}".format(*spec.input_size)]
    argv += ["--num-classes", str(spec.num_classes), "--in-channels", str(spec.in_channels)]
    for flag, value in (
        ("--repeats", spec.repeats),
        ("--warmup", spec.warmup),
        ("--threads", spec.threads),
        ("--ddp-processes", spec.ddp_processes),
    ):
        if value is not None:
            argv += [flag, str(value)]
    for flag, on in (("--trace", spec.trace), ("--compiled-latency", spec.compiled_latency)):
        if on:
            argv.append(flag)
    if "accuracy" in spec.phases:
        argv += ["--budget", spec.budget, "--seeds", ",".join(map(str, spec.seeds))]
        for flag, value in (
            ("--train-limit", spec.train_limit),
            ("--eval-limit", spec.eval_limit),
            ("--data-dir", spec.data_dir),
        ):
            if value is not None:
                argv += [flag, str(value)]
        argv += ["--accuracy-cap", f"{spec.accuracy_cap_s or 0:g}"]
        argv += ["--accuracy-processes", str(spec.accuracy_processes)]
        if spec.train_compile:
            argv.append("--train-compile")
    if spec.shard is not None:
        argv += ["--shard", "{}/{}".format(*spec.shard)]
    if len(spec.models) > archs.MAX_GLOB_MODELS:
        argv.append("--yes")
    return argv


def spec_from_argv(argv: list[str]) -> RunSpec:
    """The spec of a command's arguments (a run folder written before ``run.json`` held its
    spec records only its ``argv``); ``UsageError`` when they no longer parse."""
    args, _ = build_spec_parser().parse_known_args(argv)
    return spec_from_args(args)


def build_spec_parser() -> argparse.ArgumentParser:
    """The spec's options alone, raising ``UsageError`` instead of exiting."""
    p = StrictParser(add_help=False, raise_errors=True)
    add_spec_options(p)
    return p


def read_spec_file(path: Path) -> RunSpec:
    """``--spec FILE``: a run folder's ``run.json`` (its ``spec``), or a JSON or TOML file of
    spec fields; fields it leaves out take the options' defaults (for its ``device``), and its
    models are selected again (a file's builder is imported, a zoo's model registered)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise UsageError(f"--spec {path}: {exc.strerror or exc}") from None
    try:
        if path.suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except ValueError as exc:
        kind = "TOML" if path.suffix == ".toml" else "JSON"
        raise UsageError(f"--spec {path}: not valid {kind}: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("spec"), dict):
        data = data["spec"]  # a run folder's run.json
    if not isinstance(data, dict):
        raise UsageError(f"--spec {path}: a spec is an object of fields, got {type(data).__name__}")
    device = ["--gpu"] if data.get("device") == "cuda" else []
    defaults = spec_from_args(build_spec_parser().parse_args(["--models", "lenet", *device]))
    try:
        spec = RunSpec.from_json({**defaults.to_json(), **data})
    except SpecError as exc:
        raise UsageError(f"--spec {path}: {exc}") from None
    try:
        return checked_spec(spec)
    except UsageError as exc:
        raise UsageError(f"--spec {path}: {exc}") from None


def checked_spec(spec: RunSpec) -> RunSpec:
    """``spec`` as this process reads it: every value checked as the options check it, and
    its models selected again (a zoo's model is registered when selected, a file's builder
    when its file is imported)."""
    return spec_from_argv(spec_argv(spec))
