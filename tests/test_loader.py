import pytest
import torch

from bench.training.loader import MEAN, STD, batch_indices, model_input, to_device

CPU = torch.device("cpu")


def test_normalised_real_images_have_zero_mean_unit_std(fmnist):
    x = model_input(fmnist.train_images[:20_000], 28, augment=False)
    assert x.shape == (20_000, 1, 28, 28) and x.dtype == torch.float32
    assert abs(x.mean().item()) < 0.01
    assert abs(x.std().item() - 1) < 0.01


def test_resize_and_layout(fmnist):
    x = model_input(fmnist.test_images[:4], 96, augment=False, memory_format=torch.channels_last)
    assert x.shape == (4, 1, 96, 96)
    assert x.is_contiguous(memory_format=torch.channels_last)


def test_augmentation_flips_and_shifts_by_at_most_the_padding():
    image = torch.zeros(1, 28, 28, dtype=torch.uint8)
    image[0, 10, 5] = 255
    images = image.expand(256, 28, 28)
    g = torch.Generator().manual_seed(0)
    x = model_input(images, 28, augment=True, generator=g)[:, 0]
    bright = (x > 0).nonzero()[:, 1:]  # (row, col) of the one bright pixel of each image
    assert len(bright) == 256  # never cropped away: it sits more than 2 pixels from the edge
    rows, cols = bright[:, 0], bright[:, 1]
    assert rows.min() >= 8 and rows.max() <= 12
    flipped = cols > 13
    assert 0.3 < flipped.float().mean() < 0.7  # about half are flipped
    assert cols[~flipped].min() >= 3 and cols[~flipped].max() <= 7
    assert cols[flipped].min() >= 27 - 7 and cols[flipped].max() <= 27 - 3
    assert x.min().item() == pytest.approx(-MEAN / STD, abs=1e-6)  # black padding, normalised


def test_augmentation_is_reproducible_with_a_seed():
    images = torch.randint(0, 256, (32, 28, 28), dtype=torch.uint8)
    a = model_input(images, 28, augment=True, generator=torch.Generator().manual_seed(3))
    b = model_input(images, 28, augment=True, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_batches_cover_the_split_once(fmnist):
    train, test = to_device(fmnist, CPU, train_limit=1000, eval_limit=300)
    assert len(train) == 1000 and len(test) == 300
    idx = list(
        batch_indices(
            1000,
            256,
            shuffle=True,
            drop_last=True,
            generator=torch.Generator().manual_seed(0),
            device=CPU,
        )
    )
    assert [len(i) for i in idx] == [256, 256, 256]
    assert len(torch.cat(idx).unique()) == 768
    idx = list(batch_indices(300, 128, shuffle=False, drop_last=False, generator=None, device=CPU))
    assert torch.equal(torch.cat(idx), torch.arange(300))


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_grey_channel_repeated_for_colour_models(fmnist, layout):
    images = fmnist.test_images[:4]
    grey = model_input(images, 96, augment=False)
    x = model_input(images, 96, augment=False, memory_format=layout, in_channels=3)
    assert x.shape == (4, 3, 96, 96) and x.is_contiguous(memory_format=layout)
    assert 0 not in x.stride()  # real copies, not an expanded view
    for c in range(3):
        assert torch.equal(x[:, c], grey[:, 0])
