"""Finding and checking the real Fashion-MNIST files."""

import gzip
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from bench.training import data
from bench.training.data import FILES, DataError, find_data_dir, load_fashion_mnist

ROOT = Path(__file__).resolve().parent.parent


def test_real_files_load_and_check(fmnist):
    assert fmnist.train_images.shape == (60_000, 28, 28)
    assert fmnist.test_images.shape == (10_000, 28, 28)
    assert fmnist.train_labels.bincount().tolist() == [6000] * 10
    assert fmnist.test_labels.bincount().tolist() == [1000] * 10
    # note 003 normalises with mean 0.286 and std 0.353: the real images' statistics
    pixels = fmnist.train_images.float() / 255
    assert pixels.mean().item() == pytest.approx(0.2860, abs=1e-4)
    assert pixels.std().item() == pytest.approx(0.3530, abs=1e-4)


@pytest.fixture
def copy_of_data(fmnist, tmp_path):
    """The four real files, copied into a folder the test may damage."""
    for f in FILES.values():
        shutil.copy(data._file_in(fmnist.source, f), tmp_path)
    return tmp_path


def test_data_dir_flag_comes_first(copy_of_data, monkeypatch):
    monkeypatch.setenv(data.ENV_VAR, "/nonexistent")
    assert find_data_dir(copy_of_data) == copy_of_data


def test_environment_variable(copy_of_data, monkeypatch):
    monkeypatch.setenv(data.ENV_VAR, str(copy_of_data))
    assert find_data_dir() == copy_of_data


def test_uncompressed_files_are_accepted(copy_of_data):
    for f in FILES.values():
        gz = copy_of_data / (f.stem + ".gz")
        (copy_of_data / f.stem).write_bytes(gzip.decompress(gz.read_bytes()))
        gz.unlink()
    assert load_fashion_mnist(copy_of_data).test_labels.shape == (10_000,)


def test_missing_folder_says_how_to_get_the_data(tmp_path):
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        find_data_dir(tmp_path / "empty")


def test_incomplete_folder_is_refused(copy_of_data):
    (copy_of_data / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="does not hold the four"):
        find_data_dir(copy_of_data)


def _rewrite(path: Path, change) -> None:
    raw = bytearray(gzip.decompress(path.read_bytes()))
    path.write_bytes(gzip.compress(bytes(change(raw))))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda b: b[:-100], "bytes, expected"),  # truncated
        (lambda b: b[:8] + bytes([b[8] ^ 1]) + b[9:], "SHA-256 differs"),  # one label changed
        (lambda b: b"\x00\x00\x08\x03" + b[4:], "header says magic 2051"),  # images' magic
    ],
)
def test_corrupt_files_are_refused(copy_of_data, change, message):
    _rewrite(copy_of_data / "t10k-labels-idx1-ubyte.gz", change)
    with pytest.raises(DataError, match=message) as err:
        load_fashion_mnist(copy_of_data)
    assert "t10k-labels" in str(err.value) and "apt-get" in str(err.value)


def test_file_that_is_not_gzip(copy_of_data):
    (copy_of_data / "train-labels-idx1-ubyte.gz").write_bytes(b"not a gzip file")
    with pytest.raises(DataError, match="cannot be read"):
        load_fashion_mnist(copy_of_data)


def test_gzip_file_whose_compressed_bytes_are_corrupt(copy_of_data):
    path = copy_of_data / "t10k-labels-idx1-ubyte.gz"
    damaged = bytearray(path.read_bytes())
    damaged[100:108] = bytes(b ^ 0xFF for b in damaged[100:108])  # inside the deflate stream
    path.write_bytes(damaged)
    with pytest.raises(zlib.error):  # what escaped before: neither OSError nor EOFError
        gzip.decompress(bytes(damaged))
    with pytest.raises(DataError, match="cannot be read") as err:
        load_fashion_mnist(copy_of_data)
    assert "t10k-labels" in str(err.value) and "apt-get" in str(err.value)


def test_cli_without_data_exits_2_with_instructions(tmp_path):
    env = {"PATH": "/usr/bin:/bin", data.ENV_VAR: str(tmp_path / "none")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--models",
            "lenet",
            "--phases",
            "accuracy",
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "does not hold the four Fashion-MNIST files" in proc.stderr
    assert "apt-get install dataset-fashion-mnist" in proc.stderr
    assert "Traceback" not in proc.stderr
