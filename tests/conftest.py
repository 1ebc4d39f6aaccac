import pytest
import torch


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def fmnist():
    """The real Fashion-MNIST (CI installs Debian's dataset-fashion-mnist)."""
    from bench.training.data import DataError, load_fashion_mnist

    try:
        return load_fashion_mnist()
    except DataError as exc:
        pytest.fail(f"the tests need the real data: {exc}")
