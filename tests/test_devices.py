"""bench.measure.devices: one device choice and one no-CUDA error for every command."""

import pytest
import torch

from bench import gate
from bench.checks import baseline, fidelity
from bench.measure import devices


def test_without_gpu_the_cpu():
    assert devices.pick_device(False) == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_gpu_without_cuda_names_torch_and_the_remedy():
    with pytest.raises(devices.NoCudaError) as error:
        devices.pick_device(True)
    assert str(error.value) == (
        f"--gpu was given but no CUDA device is visible (torch {torch.__version__}, CUDA build "
        f"{torch.version.cuda or 'none'}); run without --gpu to measure on the CPU"
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
@pytest.mark.parametrize("script", [gate, fidelity, baseline])
def test_scripts_print_the_one_message_and_exit_2(script, capsys):
    assert script.main(["--gpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{script.__name__.split('.')[-1]}: error: --gpu was given but no CUDA")
    assert "run without --gpu" in err
