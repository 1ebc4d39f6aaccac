import pytest
from torch import nn

import archs


def test_natural_sort():
    names = archs.list_models("resnet*")
    assert names.index("resnet18") < names.index("resnet34") < names.index("resnet101")
    assert names.index("resnet101") < names.index("resnet152")


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("lenet", ["lenet"]),
        ("lenet,lenet_bn", ["lenet", "lenet_bn"]),
        ("vgg", ["vgg11", "vgg16"]),  # a family
        ("resnet*", ["resnet18", "resnet18_d2l", "resnet34", "resnet50", "resnet101", "resnet152"]),
        ("resnet1?", ["resnet18"]),
        (" nin , googlenet ,nin", ["nin", "googlenet"]),  # order kept, duplicates dropped
        (["alexnet*"], ["alexnet", "alexnet_cifar"]),
    ],
)
def test_select_models(spec, expected):
    assert archs.select_models(spec) == expected


def test_glob_that_matches_nothing_is_an_error():
    with pytest.raises(archs.UnknownModelError, match="resnet9"):
        archs.select_models("resnet9*")


def test_all_selects_every_model():
    assert archs.select_models("all") == archs.list_models()
    assert len(archs.list_models()) == 16


def test_unknown_name_is_named_and_close_matches_suggested():
    with pytest.raises(archs.UnknownModelError) as err:
        archs.select_models("lenet,resnt18")
    assert err.value.name == "resnt18"
    assert "resnet18" in err.value.suggestions
    assert "unknown model 'resnt18'" in str(err.value)
    assert "did you mean" in str(err.value)


def test_a_name_that_is_both_model_and_family_is_suggested_once():
    with pytest.raises(archs.UnknownModelError) as err:
        archs.get_entry("lenett")
    suggestions = err.value.suggestions
    assert suggestions[0] == "lenet"
    assert len(suggestions) == len(set(suggestions))
    assert "did you mean lenet, " in str(err.value) and "lenet, lenet" not in str(err.value)


def test_empty_selection_is_an_error():
    with pytest.raises(archs.UnknownModelError):
        archs.select_models(" , ")


def test_duplicate_registration_is_refused():
    def lenet(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
        return nn.Identity()

    decorator = archs.register_model(family="x", year=2000, paper="p", note="n", input_size=28)
    with pytest.raises(ValueError, match="already registered"):
        decorator(lenet)


def test_register_and_build_a_new_model():
    def tiny(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * 28 * 28, num_classes))

    with archs.registry_scope():
        archs.register_model(family="tiny", year=2000, paper="p", note="n", input_size=28)(tiny)
        assert archs.select_models("tiny") == ["tiny"]
        assert archs.build_model("tiny", num_classes=3)[1].out_features == 3
        with archs.registering_as("acme-nets"):
            archs.register_model(family="tiny", input_size=28, name="tiny2")(tiny)
        assert [e.source for e in archs.registered_entries("acme-nets")] == ["acme-nets"]
        archs.unregister_model("tiny2")
        with pytest.raises(archs.UnknownModelError):
            archs.get_entry("tiny2")
    with pytest.raises(archs.UnknownModelError):  # the scope forgot what it registered
        archs.get_entry("tiny")
    assert "tiny" not in archs.list_models()
