"""Every registered model, parametrised over the registry: a new architecture is tested the
moment it registers."""

import pytest
import torch

import archs

ALL = archs.list_models()
HEAVY = {"vgg11", "vgg16", "alexnet", "nin", "resnet101", "resnet152"}  # a second+ on 2 cores


def test_registry_holds_every_architecture_of_the_seed_notes():
    assert set(ALL) == {
        "lenet",
        "lenet_bn",
        "small_cnn",
        "alexnet",
        "alexnet_cifar",
        "vgg11",
        "vgg16",
        "nin",
        "googlenet",
        "resnet18_d2l",
        "resnet18",
        "resnet34",
        "resnet50",
        "resnet101",
        "resnet152",
        "densenet",
    }


@pytest.mark.parametrize("name", ALL)
def test_entry_metadata_is_complete(name):
    e = archs.get_entry(name)
    assert e.family and e.paper and e.note
    assert 1989 <= e.year <= 2026
    assert e.input_size in (28, 32, 96, 224)
    assert e.builder.__doc__, "each builder says which note and variant it follows"


@pytest.mark.parametrize("name", ALL)
def test_forward_at_its_input_size_gives_n_by_10(name):
    e = archs.get_entry(name)
    model = e.build().eval()
    with torch.no_grad():
        out = model(torch.randn(2, 1, e.input_size, e.input_size))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ALL)
def test_num_classes_and_in_channels_are_honoured(name):
    e = archs.get_entry(name)
    model = e.build(num_classes=7, in_channels=3).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, e.input_size, e.input_size))
    assert out.shape == (1, 7)


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in ALL]
)
def test_one_training_step_reaches_every_parameter(name):
    e = archs.get_entry(name)
    model = e.build().train()
    x = torch.randn(2, 1, e.input_size, e.input_size)
    loss = torch.nn.functional.cross_entropy(model(x), torch.tensor([0, 1]))
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing
    assert torch.isfinite(loss)
