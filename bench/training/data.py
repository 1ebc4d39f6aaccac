"""Real Fashion-MNIST: found where it is, checked, loaded as uint8 tensors.

Looked for, in this order: ``--data-dir``, ``$ARCHBENCH_DATA_DIR``, Debian's
``/usr/share/datasets/fashion-mnist/`` (package ``dataset-fashion-mnist``), and torchvision's
layout under ``~/.cache/archbench`` (``FashionMNIST/raw``), which is downloaded into only when
the machine is online. A folder qualifies when it holds the four original IDX files, gzipped
or not. Each file is checked on its decompressed bytes (re-gzipped copies, such as Debian's,
differ in their gzip headers only): length, IDX header, counts, label range and SHA-256.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import socket
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch

ENV_VAR = "ARCHBENCH_DATA_DIR"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
TORCHVISION_ROOT = Path.home() / ".cache" / "archbench"
CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


@dataclass(frozen=True)
class IdxFile:
    stem: str
    magic: int  # 2051 images, 2049 labels
    count: int
    sha256: str  # of the decompressed file

    @property
    def length(self) -> int:
        return 16 + self.count * 28 * 28 if self.magic == 2051 else 8 + self.count


FILES = {
    "train_images": IdxFile(
        "train-images-idx3-ubyte",
        2051,
        60_000,
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    ),
    "train_labels": IdxFile(
        "train-labels-idx1-ubyte",
        2049,
        60_000,
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    ),
    "test_images": IdxFile(
        "t10k-images-idx3-ubyte",
        2051,
        10_000,
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    ),
    "test_labels": IdxFile(
        "t10k-labels-idx1-ubyte",
        2049,
        10_000,
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    ),
}

HOW_TO_GET = (
    "get it with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu; files land in "
    f"{DEBIAN_DIR}), or on a machine online run once with no data anywhere and torchvision "
    f"downloads it into {TORCHVISION_ROOT}/FashionMNIST/raw, or pass --data-dir DIR (or set "
    f"{ENV_VAR}) to a folder holding the four original IDX files "
    f"({', '.join(f.stem + '[.gz]' for f in FILES.values())})"
)


class DataError(Exception):
    """Missing or corrupt data: the message says what and how to get it."""


@dataclass(frozen=True)
class FashionMNIST:
    train_images: torch.Tensor  # (60000, 28, 28) uint8
    train_labels: torch.Tensor  # (60000,) int64
    test_images: torch.Tensor  # (10000, 28, 28) uint8
    test_labels: torch.Tensor  # (10000,) int64
    source: Path


def _file_in(directory: Path, f: IdxFile) -> Path | None:
    for name in (f.stem, f.stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def _complete(directory: Path) -> bool:
    return all(_file_in(directory, f) for f in FILES.values())


def _online(host: str = "fashion-mnist.s3-website.eu-central-1.amazonaws.com") -> bool:
    try:
        with socket.create_connection((host, 80), timeout=3):
            return True
    except OSError:
        return False


def find_data_dir(data_dir: Path | None = None) -> Path:
    """The first folder, in the documented order, that holds all four files."""
    looked: list[str] = []
    if data_dir is not None:
        if _complete(data_dir):
            return data_dir
        raise DataError(
            f"--data-dir {data_dir} does not hold the four Fashion-MNIST files; " + HOW_TO_GET
        )
    env = os.environ.get(ENV_VAR)
    if env:
        if _complete(Path(env)):
            return Path(env)
        raise DataError(
            f"${ENV_VAR}={env} does not hold the four Fashion-MNIST files; " + HOW_TO_GET
        )
    looked.append(f"${ENV_VAR} (unset)")
    raw = TORCHVISION_ROOT / "FashionMNIST" / "raw"
    for candidate in (DEBIAN_DIR, raw):
        if _complete(candidate):
            return candidate
        looked.append(str(candidate))
    if _online():
        from torchvision.datasets import FashionMNIST as TorchvisionFashionMNIST

        TorchvisionFashionMNIST(str(TORCHVISION_ROOT), train=True, download=True)
        if _complete(raw):
            return raw
    else:
        looked.append("download (offline)")
    raise DataError(f"Fashion-MNIST not found (looked in: {'; '.join(looked)}); " + HOW_TO_GET)


def _read_checked(path: Path, f: IdxFile) -> bytes:
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path} cannot be read ({exc}); " + HOW_TO_GET) from None
    problem = None
    if len(data) != f.length:
        problem = f"{len(data)} bytes, expected {f.length}"
    else:
        magic, count = struct.unpack(">II", data[:8])
        if (magic, count) != (f.magic, f.count):
            problem = f"header says magic {magic}, {count} items; expected {f.magic}, {f.count}"
        elif hashlib.sha256(data).hexdigest() != f.sha256:
            problem = "SHA-256 differs from the original file's"
    if problem:
        raise DataError(f"{path} is corrupt: {problem}; replace it: " + HOW_TO_GET)
    return data


def load_fashion_mnist(data_dir: Path | None = None) -> FashionMNIST:
    directory = find_data_dir(data_dir)
    tensors = {}
    for key, f in FILES.items():
        data = _read_checked(_file_in(directory, f), f)
        if f.magic == 2051:
            tensors[key] = torch.frombuffer(bytearray(data[16:]), dtype=torch.uint8).view(
                f.count, 28, 28
            )
        else:
            labels = torch.frombuffer(bytearray(data[8:]), dtype=torch.uint8).long()
            if int(labels.max()) > 9:
                raise DataError(f"{directory}: labels outside 0-9; " + HOW_TO_GET)
            tensors[key] = labels
    return FashionMNIST(**tensors, source=directory)
