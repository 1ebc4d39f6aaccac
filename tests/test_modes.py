import pytest
import torch

from bench.measure import backends
from bench.measure.modes import (
    CPU_DEFAULT_MODES,
    GPU_DEFAULT_MODES,
    Mode,
    ModeError,
    parse_mode,
    parse_modes,
)

CPU = torch.device("cpu")


@pytest.mark.parametrize(
    "text, mode",
    [
        ("fp32", Mode("fp32", False, "none")),
        ("amp", Mode("bf16", False, "none")),
        ("bf16+cl", Mode("bf16", True, "none")),
        ("cl+bf16+compile", Mode("bf16", True, "default")),
        ("fp16+channels_last+compile-ro", Mode("fp16", True, "reduce-overhead")),
        ("TF32+compile-max", Mode("tf32", False, "max-autotune")),
        ("fp32+nchw", Mode("fp32", False, "none")),
    ],
)
def test_parse_mode(text, mode):
    assert parse_mode(text) == mode
    assert parse_mode(mode.name) == mode  # names round-trip


@pytest.mark.parametrize(
    "text, message",
    [
        ("fp33", "'fp33' is unknown"),
        ("bf16+fp16", "'fp16' is unknown or repeated"),
        ("cl+compile", "names no precision"),
        ("bf16+cl+cl", "repeated"),
    ],
)
def test_bad_mode_names(text, message):
    with pytest.raises(ModeError, match=message):
        parse_mode(text)


@pytest.mark.parametrize("text", ["tf32", "bf16+compile-ro"])
def test_cuda_only_modes_are_refused_on_the_cpu(text):
    with pytest.raises(ModeError, match="CUDA"):
        parse_modes(text, CPU)


def test_default_matrices():
    assert [m.name for m in parse_modes(None, CPU)] == list(CPU_DEFAULT_MODES)
    gpu = [parse_mode(n) for n in GPU_DEFAULT_MODES]
    assert [m.name for m in gpu] == ["fp32", "bf16", "bf16+cl", "bf16+cl+compile"]
    assert parse_modes("fp32,fp32, bf16", CPU) == [Mode("fp32"), Mode("bf16")]


@pytest.mark.parametrize("device", [CPU, torch.device("cuda")])
def test_backend_switches_are_set_explicitly_and_restored(device):
    """cuDNN autotuning is on for every GPU figure; TF32 only in tf32 modes; whatever was set
    before comes back afterwards."""
    before = backends.current()
    inherited = backends.BackendState(
        cudnn_benchmark=device.type != "cuda", tf32_matmul=True, tf32_cudnn=True
    )
    with backends.applied(inherited):
        with backends.applied(parse_mode("fp32").backends(device)) as state:
            # IEEE fp32: PyTorch's default would leave cuDNN's TF32 on
            assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
            assert (
                torch.backends.cudnn.benchmark is (device.type == "cuda") is state.cudnn_benchmark
            )
        assert backends.current() == inherited
        if device.type == "cuda":
            with backends.applied(parse_mode("tf32").backends(device)):
                assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
                assert torch.backends.cudnn.benchmark
    assert backends.current() == before


def test_backend_state_is_described_for_the_method():
    gpu = parse_mode("bf16").backends(torch.device("cuda"))
    assert gpu.describe(torch.device("cuda")) == (
        "cuDNN benchmark on, TF32 matmul off, TF32 cuDNN off"
    )
    assert (
        parse_mode("fp32").backends(CPU).describe(CPU) == f"{torch.get_num_threads()} CPU threads"
    )


def test_max_autotune_is_a_cuda_graph_mode_and_nocg_is_not():
    assert parse_mode("bf16+compile-max").cuda_graphs
    assert parse_mode("bf16+compile-ro").cuda_graphs
    nocg = parse_mode("bf16+compile-max-nocg")
    assert not nocg.cuda_graphs and nocg.compile_option == "max-autotune-no-cudagraphs"
    assert nocg.name == "bf16+compile-max-nocg"
    assert "no CUDA graphs" in nocg.describe()
    assert "CUDA graphs" in parse_mode("fp32+compile-max").describe()
    assert parse_mode("fp32+compile").compile_option is None
    parse_mode("fp32+compile-max").check_device(CPU)  # no graphs on the CPU: allowed
    with pytest.raises(ModeError, match="CUDA only"):
        parse_mode("fp32+compile-ro").check_device(CPU)


def test_mode_description_names_everything():
    assert parse_mode("bf16+cl+compile").describe() == (
        "bf16 autocast, channels_last, torch.compile mode=default"
    )
