import pytest
import torch

from bench.modes import CPU_DEFAULT_MODES, GPU_DEFAULT_MODES, Mode, ModeError, parse_mode, parse_modes

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


def test_tf32_flags_are_set_and_restored():
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    with parse_mode("tf32").tf32():
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    with parse_mode("fp32").tf32():
        # IEEE fp32: PyTorch's default would leave cuDNN's TF32 on
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before


def test_mode_description_names_everything():
    assert parse_mode("bf16+cl+compile").describe() == (
        "bf16 autocast, channels_last, torch.compile mode=default"
    )
