"""Every architecture: output shapes, the Normalize first layer, documented parameter counts."""

from __future__ import annotations

import pytest
import torch

from lsnotes.models import MODELS, Normalize, build_model, parameter_count

GREY = ("linear", "mlp", "lenet", "cnn4")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_output_shape(name):
    # The residual networks pool adaptively, so a 16-pixel input keeps this test fast.
    channels, side = (1, 28) if name in GREY else (3, 16)
    model = build_model(name, num_classes=7, in_channels=channels, image_size=side).eval()
    with torch.no_grad():
        assert model(torch.rand(2, channels, side, side)).shape == (2, 7)
    assert isinstance(model[0], Normalize)


@pytest.mark.parametrize("name", ["lenet", "cnn4", "linear"])
def test_small_models_take_colour_32px_images(name):
    model = build_model(name, 10, in_channels=3, image_size=32)
    assert model(torch.rand(1, 3, 32, 32)).shape == (1, 10)


def test_normalize_is_the_first_layer_and_saved():
    model = build_model("linear", 10, 1, 28, mean=[0.5], std=[0.25])
    assert torch.allclose(model[0](torch.full((1, 1, 2, 2), 1.0)), torch.full((1, 1, 2, 2), 2.0))
    assert "0.mean" in model.state_dict() and "0.std" in model.state_dict()


@pytest.mark.parametrize("name, millions", [("resnet18", 11.17), ("preact_resnet18", 11.17),
                                            ("wrn34_10", 46.16), ("wrn_small", 2.75)])
def test_parameter_counts_match_the_literature(name, millions):
    # ResNet-18 (CIFAR) has about 11.2M parameters and WRN-34-10 about 46.2M (Zagoruyko & Komodakis).
    count = parameter_count(build_model(name, 10, 3, 32))
    assert abs(count / 1e6 - millions) < 0.01


@pytest.mark.parametrize("kwargs, match", [({"name": "vgg"}, "name"),
                                           ({"name": "mlp", "num_classes": 1}, "num_classes"),
                                           ({"name": "mlp", "mean": [0.1, 0.2]}, "one per channel"),
                                           ({"name": "lenet", "image_size": 12}, "image_size")])
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_model(**kwargs)
