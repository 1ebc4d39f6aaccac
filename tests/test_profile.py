"""The static profile: fvcore's counts checked against an independent counter, the per-layer
table against the totals, and nothing printed as warnings."""

import logging

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import archs
from bench.measure.static_profile import (
    FlopCountAnalysis,
    flop_analysis,
    format_unsupported,
    profile_model,
)
from bench.phases.static import static_rows

ALL = archs.list_models()
AT = torch.ops.aten


def flop_counter_conv_linear_flops(name: str) -> int:
    """FLOPs of convolutions and matrix products by torch's own FlopCounterMode (2 per MAC)."""
    e = archs.get_entry(name)
    model = e.build().eval()
    x = torch.randn(1, 1, e.input_size, e.input_size)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    counts = counter.get_flop_counts()["Global"]
    return sum(counts.get(op, 0) for op in (AT.convolution, AT.addmm, AT.mm, AT.bmm))


@pytest.mark.parametrize("name", ALL)
def test_fvcore_conv_linear_macs_agree_with_flop_counter_mode(name):
    profile = profile_model(archs.get_entry(name))
    assert profile.macs_conv_linear > 0
    assert 2 * profile.macs_conv_linear == flop_counter_conv_linear_flops(name)


def elements_through(name: str, kind: type[nn.Module], side: str) -> int:
    """Elements of the inputs or outputs (``side``) of every ``kind`` module, summed over calls."""
    e = archs.get_entry(name)
    model = e.build().eval()
    total = 0

    def hook(_module, inputs, output):
        nonlocal total
        total += (inputs[0] if side == "input" else output).numel()

    for module in model.modules():
        if isinstance(module, kind):
            module.register_forward_hook(hook)
    with torch.no_grad():
        model(torch.randn(1, 1, e.input_size, e.input_size))
    return total


def test_batch_norm_is_one_mac_per_element():
    p = profile_model(archs.get_entry("lenet_bn"))
    bn_elements = elements_through("lenet_bn", nn.modules.batchnorm._BatchNorm, "output")
    # 6x24x24 + 16x8x8 after the unpadded convs, 120 + 84 after the hidden linears
    assert bn_elements == 4684
    assert p.macs - p.macs_conv_linear == bn_elements


@pytest.mark.parametrize("name", ALL)
def test_macs_are_conv_linear_batch_norm_and_adaptive_pooling(name):
    """Everything fvcore counts beyond conv and linear, exactly: 1 MAC per BatchNorm output
    element (ours) and 1 per adaptive average pooling input element (fvcore's)."""
    p = profile_model(archs.get_entry(name))
    bn = elements_through(name, nn.modules.batchnorm._BatchNorm, "output")
    pool = elements_through(name, nn.AdaptiveAvgPool2d, "input")
    assert p.macs_by_operator.get("batch_norm", 0) == bn
    assert p.macs_by_operator.get("adaptive_avg_pool2d", 0) == pool
    assert p.macs == p.macs_conv_linear + bn + pool


def test_batch_norm_handle_folds_only_running_statistics():
    x = torch.randn(2, 3, 4, 4)
    elements = x.numel()
    affine, plain = nn.BatchNorm2d(3).eval(), nn.BatchNorm2d(3, affine=False).eval()
    assert FlopCountAnalysis(affine, x).total() == 2 * elements  # fvcore's own count
    assert flop_analysis(affine, x).total() == elements
    assert flop_analysis(plain, x).total() == elements
    # batch statistics (training mode, or none tracked) are computed: fvcore's count stands
    for bn in (nn.BatchNorm2d(3).train(), nn.BatchNorm2d(3, track_running_stats=False).eval()):
        fvcore = FlopCountAnalysis(bn, x).total()
        assert fvcore > elements
        assert flop_analysis(bn, x).total() == fvcore


@pytest.mark.parametrize("name", ALL)
def test_profile_totals_and_units(name):
    p = profile_model(archs.get_entry(name))
    model = archs.build_model(name)
    assert p.params == sum(t.numel() for t in model.parameters())
    assert p.params_trainable == p.params
    assert p.flops == 2 * p.macs
    assert p.param_size_mb_fp32 == pytest.approx(p.params * 4 / 1e6)
    assert p.macs == sum(p.macs_by_operator.values())


@pytest.mark.parametrize("name", ALL)
def test_layer_table_adds_up_to_the_model(name):
    p = profile_model(archs.get_entry(name))
    root = p.layers[0]
    assert (root.path, root.depth, root.params, root.macs) == ("", 0, p.params, p.macs)
    children = [r for r in p.layers if r.depth == 1]
    assert sum(r.params for r in children) == p.params
    assert sum(r.macs for r in children) == p.macs
    assert children[-1].output_shape == (1, 10)
    assert all(r.output_shape is not None for r in children)


def test_uncounted_operators_are_returned_not_logged(caplog, recwarn, capsys):
    with caplog.at_level(logging.DEBUG):
        p = profile_model(archs.get_entry("lenet"))
    # LeNet's sigmoid and average pooling have no fvcore handler; fvcore ignores flatten
    assert p.unsupported_ops == {"aten::avg_pool2d": 2, "aten::flatten": 1, "aten::sigmoid": 4}
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [w for w in recwarn if "fvcore" in str(w.filename)]
    out, err = capsys.readouterr()
    assert out == "" and err == ""


@pytest.mark.parametrize(
    ("name", "uncounted"),
    [
        ("small_cnn", "not counted: max_pool2d x2, relu x3; no arithmetic: dropout x1, flatten x1"),
        # 4 dense blocks of 4 BN-ReLU-conv blocks, each concatenated; 3 transitions
        (
            "densenet",
            "not counted: avg_pool2d x3, max_pool2d x1, relu x21; "
            "no arithmetic: cat x16, flatten x1",
        ),
        ("resnet18", "not counted: add x8, max_pool2d x1, relu x17; no arithmetic: flatten x1"),
    ],
)
def test_every_uncounted_operator_is_listed(name, uncounted):
    """ReLU, concatenation and dropout too, which fvcore leaves out of its own list."""
    p = profile_model(archs.get_entry(name))
    assert format_unsupported(p.unsupported_ops) == uncounted


def test_uncounted_operators_go_with_the_unsupported_ops_row():
    p = profile_model(archs.get_entry("lenet"))
    rows = {row["metric"]: row for row in static_rows(archs.get_entry("lenet"), p)}
    row = rows.pop("unsupported_ops")
    assert row["value"] == 7
    assert row["method"] == (
        f"{p.method}; not counted: avg_pool2d x2, sigmoid x4; no arithmetic: flatten x1"
    )
    assert {r["method"] for r in rows.values()} == {p.method}


def test_input_size_override_changes_the_count():
    e = archs.get_entry("resnet18_d2l")
    at_96 = profile_model(e)
    at_192 = profile_model(e, input_size=192)
    assert at_192.input_shape == (1, 192, 192)
    assert at_192.params == at_96.params
    # every spatial map doubles in side: conv MACs grow four times
    assert at_192.macs_by_operator["conv"] == 4 * at_96.macs_by_operator["conv"]


def test_fixed_size_model_raises_at_another_size():
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        profile_model(archs.get_entry("lenet"), input_size=32)
