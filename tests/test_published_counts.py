"""ImageNet configuration (3 channels, 1000 classes, 224x224): the registry's models reproduce
the parameter and MAC counts published for them.

torchvision's weight metadata holds ``num_params`` and ``_ops`` (GFLOPS in its docs; it counts
one multiply-add as one, over convolutions and linear layers only, rounded to 3 decimals). The
metadata is part of the package: reading it downloads nothing.
"""

import pytest
import torch
from torchvision import models as tvm

import archs
from bench.measure.static_profile import profile_model

TORCHVISION = {
    "resnet18": tvm.ResNet18_Weights.IMAGENET1K_V1,
    "resnet34": tvm.ResNet34_Weights.IMAGENET1K_V1,
    "resnet50": tvm.ResNet50_Weights.IMAGENET1K_V1,
    "resnet101": tvm.ResNet101_Weights.IMAGENET1K_V1,
    "resnet152": tvm.ResNet152_Weights.IMAGENET1K_V1,
    "vgg11": tvm.VGG11_Weights.IMAGENET1K_V1,
    "vgg16": tvm.VGG16_Weights.IMAGENET1K_V1,
}


def imagenet_profile(name: str):
    return profile_model(archs.get_entry(name), input_size=224, num_classes=1000, in_channels=3)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_matches_torchvision_metadata(name):
    meta = TORCHVISION[name].meta
    p = imagenet_profile(name)
    assert p.params == meta["num_params"]
    assert round(p.macs_conv_linear / 1e9, 3) == pytest.approx(meta["_ops"], abs=1e-9)


def test_d2l_resnet18_differs_from_torchvision_only_by_biases_and_shortcut_bn():
    """d2l's convs carry biases and its 1x1 projection shortcuts have no BatchNorm; otherwise
    the layers are the published ResNet-18's: the same MACs (fvcore counts no bias adds), and
    parameters that differ by exactly those two things."""
    meta = TORCHVISION["resnet18"].meta
    p = imagenet_profile("resnet18_d2l")
    model = archs.build_model("resnet18_d2l", num_classes=1000, in_channels=3)
    conv_biases = sum(
        m.bias.numel()
        for m in model.modules()
        if isinstance(m, torch.nn.Conv2d) and m.bias is not None
    )
    # stem 64 + stage convs 4*64 + 4*128 + 4*256 + 4*512 + shortcuts 128 + 256 + 512
    assert conv_biases == 4800
    reference = tvm.resnet18(weights=None)
    shortcut_bn = sum(
        p.numel() for name, p in reference.named_parameters() if "downsample.1" in name
    )
    assert shortcut_bn == 2 * (128 + 256 + 512)
    assert p.params == meta["num_params"] + conv_biases - shortcut_bn
    assert round(p.macs_conv_linear / 1e9, 3) == meta["_ops"]


def test_alexnet_is_the_papers_network_with_a_5x5_last_map():
    """Krizhevsky et al. (2012): 96-256-384-384-256 convs and 4096-4096-1000 FCs, whose weights
    and biases add up to the 62,378,344 parameters usually quoted for the paper's network
    (the "60 million" of its abstract) with a 6x6x256 = 9216-feature first FC. d2l pads the
    11x11 conv by 1 at 224x224, which leaves 5x5x256 = 6400 features: 2816 x 4096 fewer weights.
    """
    p = imagenet_profile("alexnet")
    assert p.params == 62_378_344 - (9216 - 6400) * 4096


def test_googlenet_is_close_to_the_papers_table():
    """Szegedy et al. (2014), Table 1: about 6.8M parameters and 1.5G multiply-adds. The table
    rounds each row (its 7x7 stem row, 2.7K params and 34M ops, is itself inconsistent with a
    7x7x3x64 conv at 112x112: 9.4K and 118M), so the check is to a few percent, not exact."""
    p = imagenet_profile("googlenet")
    assert p.params == pytest.approx(6.8e6, rel=0.03)
    assert p.macs_conv_linear == pytest.approx(1.5e9, rel=0.06)
    stem = 7 * 7 * 3 * 64 * 112 * 112
    assert p.macs_conv_linear - stem + 34e6 == pytest.approx(1.502e9, rel=0.005)


def test_lenet_parameter_count():
    """d2l's LeNet-5 with full C3 connectivity: 156 + 2,416 + 48,120 + 10,164 + 850 = 61,706
    (the paper's LeNet-5, with its sparse C3 and RBF output, has about 60,000)."""
    p = profile_model(archs.get_entry("lenet"))
    assert p.params == 61_706
    assert p.params == pytest.approx(60_000, rel=0.03)
