"""Datasets as whole tensors on the training device.

Images stay in pixel space, floats in [0, 1] shaped N×C×H×W; normalisation is the first layer of
every model (:mod:`lsnotes.models`), so attacks and ε budgets are expressed in pixels.

Files are read in their published on-disk formats by small readers here (IDX for the MNIST family,
the python pickle batches for CIFAR, ``.mat`` for SVHN). torchvision's dataset classes are used to
*download* (and md5-check) them when ``download=True``; reading them ourselves avoids re-hashing
hundreds of megabytes on every load and lets the tests use small files in the same formats.

:class:`DeviceLoader` keeps a (sub)set on the device and shuffles / augments whole batches there,
as airbench does, so a training step never copies images from the host.
"""

from __future__ import annotations

import functools
import gzip
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lsnotes.checks import choice, flag, non_negative_int, positive_int, resolve_device

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
#: The environment variable naming the data folder (for machines without a network).
DATA_ENV = "LSNOTES_DATA"


@dataclass(frozen=True)
class DatasetInfo:
    num_classes: int
    shape: tuple[int, int, int]           # C, H, W
    mean: tuple[float, ...]               # per channel, of the training images in [0, 1]
    std: tuple[float, ...]
    default_eps: float                    # the L∞ budget the papers use on this dataset
    augment: bool                         # random crop (+ flip) by default in training
    flip: bool                            # horizontal flips are label-preserving
    description: str


DATASETS: dict[str, DatasetInfo] = {
    "fashion-mnist": DatasetInfo(10, (1, 28, 28), (0.2860,), (0.3530,), 0.1, False, False,
                                 "Zalando clothing, 60k/10k grey 28×28"),
    "mnist": DatasetInfo(10, (1, 28, 28), (0.1307,), (0.3081,), 0.3, False, False,
                         "handwritten digits, 60k/10k grey 28×28"),
    "cifar10": DatasetInfo(10, (3, 32, 32), (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616),
                           8 / 255, True, True, "natural images, 50k/10k colour 32×32, 10 classes"),
    "cifar100": DatasetInfo(100, (3, 32, 32), (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762),
                            8 / 255, True, True, "natural images, 50k/10k colour 32×32, 100 classes"),
    "svhn": DatasetInfo(10, (3, 32, 32), (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970),
                        8 / 255, True, False, "house-number digits, 73k/26k colour 32×32"),
}

SPLITS = ("train", "test")


def default_root() -> Path:
    """``$LSNOTES_DATA`` if set, else a per-user data folder (``$XDG_DATA_HOME/lsnotes``)."""
    if os.environ.get("LSNOTES_DATA"):
        return Path(os.environ["LSNOTES_DATA"]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "lsnotes"


def _sources(name: str, split: str) -> tuple[list[str], str]:
    """(URLs of the published files, the folder under the data root they go in), as torchvision
    downloads them."""
    import torchvision.datasets as tvd

    if name in ("mnist", "fashion-mnist"):
        cls = tvd.MNIST if name == "mnist" else tvd.FashionMNIST
        prefix = "train" if split == "train" else "t10k"
        files = [f for f, _ in cls.resources if f.startswith(prefix)]
        return [cls.mirrors[0] + f for f in files], f"{cls.__name__}/raw/"
    if name == "svhn":
        return [tvd.SVHN.split_list[split][0]], "./"
    cls = tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100
    return [cls.url], "./"


def _fetch_hint(name: str, root: Path, split: str = "train") -> str:
    """One line: what to download, where to put it, or how to let lsnotes fetch it."""
    try:
        urls, folder = _sources(name, split)
        manual = f"download {' and '.join(urls)} into {root / folder}"
        if urls[0].endswith(".tar.gz"):
            manual += " and unpack it there"
    except Exception:  # noqa: BLE001 - torchvision missing or renamed: the other hints still hold
        manual = f"put the published files under {root}"
    python_call = (f"python -c \"import lsnotes.data as d; d.load_dataset({name!r}, "
                   f"root={str(root)!r}, download=True)\"")
    debian = ""
    if name == "fashion-mnist":
        debian = (f"install the Debian package (`sudo apt-get install dataset-fashion-mnist`, files "
                  f"in {DEBIAN_FASHION_MNIST}), or ")
    return (f"{debian}{manual} (or point ${DATA_ENV} at a folder holding them), or fetch it "
            f"with: {python_call}")


# ---------------------------------------------------------------- on-disk formats

def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped): MNIST's format, big-endian dims after a magic word."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ValueError(f"{path} is truncated: expected {int(np.prod(dims))} bytes after the header, "
                         f"found {body.size}")
    return body.reshape(dims)


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """CIFAR batches are pickles; allow only what they contain (dicts, lists, numpy arrays)."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a dataset pickle")
        return super().find_class(module, name)


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with open(path, "rb") as f:
        batch = _ArraysOnlyUnpickler(f, encoding="latin1").load()
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    labels = batch.get("labels", batch.get("fine_labels"))
    images = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    return images, np.asarray(labels, dtype=np.int64)


def _mnist_family(name: str, split: str, root: Path) -> tuple[np.ndarray, np.ndarray] | None:
    prefix = "train" if split == "train" else "t10k"
    folders = [root / ("FashionMNIST" if name == "fashion-mnist" else "MNIST") / "raw"]
    if name == "fashion-mnist":
        folders.append(DEBIAN_FASHION_MNIST)
    for folder in folders:
        for suffix in ("", ".gz"):
            images = folder / f"{prefix}-images-idx3-ubyte{suffix}"
            labels = folder / f"{prefix}-labels-idx1-ubyte{suffix}"
            if images.exists() and labels.exists():
                return read_idx(images)[:, None], read_idx(labels).astype(np.int64)
    return None


def _cifar(name: str, split: str, root: Path) -> tuple[np.ndarray, np.ndarray] | None:
    if name == "cifar10":
        folder = root / "cifar-10-batches-py"
        files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    else:
        folder = root / "cifar-100-python"
        files = [split]
    if not all((folder / f).exists() for f in files):
        return None
    parts = [read_cifar_batch(folder / f) for f in files]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _svhn(split: str, root: Path) -> tuple[np.ndarray, np.ndarray] | None:
    path = root / f"{split}_32x32.mat"
    if not path.exists():
        return None
    import scipy.io

    mat = scipy.io.loadmat(path)
    images = np.transpose(mat["X"], (3, 2, 0, 1)).astype(np.uint8)  # H,W,C,N -> N,C,H,W
    labels = mat["y"].astype(np.int64).reshape(-1)
    labels[labels == 10] = 0  # SVHN stores the digit 0 as class 10
    return images, labels


def _download(name: str, split: str, root: Path) -> None:
    import torchvision.datasets as tvd

    train = split == "train"
    if name == "fashion-mnist":
        tvd.FashionMNIST(root, train=train, download=True)
    elif name == "mnist":
        tvd.MNIST(root, train=train, download=True)
    elif name == "cifar10":
        tvd.CIFAR10(root, train=train, download=True)
    elif name == "cifar100":
        tvd.CIFAR100(root, train=train, download=True)
    else:
        tvd.SVHN(root, split=split, download=True)


@functools.lru_cache(maxsize=8)
def _read_uint8(name: str, split: str, root: str, download: bool) -> tuple[np.ndarray, np.ndarray]:
    root_path = Path(root)

    def read():
        if name in ("fashion-mnist", "mnist"):
            return _mnist_family(name, split, root_path)
        if name in ("cifar10", "cifar100"):
            return _cifar(name, split, root_path)
        return _svhn(split, root_path)

    arrays = read()
    if arrays is None and download:
        _download(name, split, root_path)
        arrays = read()
    if arrays is None:
        raise FileNotFoundError(f"dataset {name!r} ({split}) is not under {root_path}; "
                                + _fetch_hint(name, root_path, split))
    images, labels = arrays
    if len(images) != len(labels):
        raise ValueError(f"dataset {name!r} ({split}) has {len(images)} images but {len(labels)} labels")
    return images, labels


def ensure_dataset(name: str, root: str | os.PathLike | None = None, download: bool = True) -> Path:
    """Make sure both splits of ``name`` are readable under ``root``; returns the root.

    Missing files are fetched through torchvision when ``download`` (a reader's machine); when
    that fails (no network) or ``download=False``, raises ``FileNotFoundError`` with one line
    saying what to download and where to put it.
    """
    choice("name", name, DATASETS)
    root_path = Path(_root_of(root))
    for split in SPLITS:
        try:
            _read_uint8(name, split, str(root_path), False)
            continue
        except FileNotFoundError:
            if not download:
                raise
        try:
            _read_uint8(name, split, str(root_path), True)
        except FileNotFoundError:
            raise
        except Exception as err:  # noqa: BLE001 - a failed download: say what to do, in one line
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise FileNotFoundError(f"dataset {name!r} ({split}) is not under {root_path} and could "
                                    f"not be downloaded ({reason}); "
                                    + _fetch_hint(name, root_path, split)) from None
    return root_path


def write_synthetic(name: str, root: str | os.PathLike, n_train: int, n_test: int,
                    seed: int = 0) -> Path:
    """Write random images of ``name``'s shape and class count in its published on-disk format
    (IDX, CIFAR pickle batches, SVHN ``.mat``) under ``root``; for tests and the GPU check.

    Labels cycle through every class, so class-balanced subsets exist. Returns ``root``.
    """
    import pickle

    choice("name", name, DATASETS)
    info = DATASETS[name]
    root = Path(root)
    rng = np.random.default_rng(seed)
    for split, n in (("train", positive_int("n_train", n_train)), ("test", positive_int("n_test", n_test))):
        images = rng.integers(0, 256, size=(n, *info.shape), dtype=np.uint8)
        labels = (np.arange(n) + rng.integers(info.num_classes)) % info.num_classes
        if name in ("mnist", "fashion-mnist"):
            folder = root / ("FashionMNIST" if name == "fashion-mnist" else "MNIST") / "raw"
            folder.mkdir(parents=True, exist_ok=True)
            prefix = "train" if split == "train" else "t10k"
            for suffix, array in (("images-idx3-ubyte", images[:, 0]), ("labels-idx1-ubyte", labels)):
                header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
                    int(d).to_bytes(4, "big") for d in array.shape)
                (folder / f"{prefix}-{suffix}").write_bytes(header + array.astype(np.uint8).tobytes())
        elif name == "svhn":
            import scipy.io

            root.mkdir(parents=True, exist_ok=True)
            digits = np.where(labels == 0, 10, labels)  # SVHN stores the digit 0 as class 10
            scipy.io.savemat(root / f"{split}_32x32.mat", {"X": np.transpose(images, (2, 3, 1, 0)),
                                                           "y": digits.reshape(-1, 1)})
        else:
            folder = root / ("cifar-10-batches-py" if name == "cifar10" else "cifar-100-python")
            folder.mkdir(parents=True, exist_ok=True)
            label_key = "labels" if name == "cifar10" else "fine_labels"
            if name == "cifar100":
                parts = {split: np.arange(n)}
            elif split == "train":
                parts = {f"data_batch_{i + 1}": chunk for i, chunk in enumerate(np.array_split(np.arange(n), 5))}
            else:
                parts = {"test_batch": np.arange(n)}
            for file, index in parts.items():
                batch = {"data": images[index].reshape(len(index), -1), label_key: labels[index].tolist()}
                (folder / file).write_bytes(pickle.dumps(batch, protocol=2))
    _read_uint8.cache_clear()
    return root


def _root_of(root) -> str:
    if root is not None and not isinstance(root, (str, os.PathLike)):
        raise ValueError(f"root must be a folder path or None; got {root!r}")
    path = (Path(root).expanduser() if root is not None else default_root()).resolve()
    if path.exists() and not path.is_dir():
        raise ValueError(f"root must name a folder; {path} is a file")
    return str(path)


def _to_tensors(images: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(np.array(images, dtype=np.float32)).div_(255.0)
    return x, torch.from_numpy(np.array(labels, dtype=np.int64))


def load_dataset(name: str, split: str = "train", root: str | os.PathLike | None = None,
                 download: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(x, y)``: float32 images in [0, 1] shaped N×C×H×W and int64 labels.

    Offline by default; ``download=True`` fetches missing files through torchvision into ``root``
    (default :func:`default_root`).
    """
    choice("name", name, DATASETS)
    choice("split", split, SPLITS)
    images, labels = _read_uint8(name, split, _root_of(root), flag("download", download))
    expected = DATASETS[name].shape
    if tuple(images.shape[1:]) != expected:
        raise ValueError(f"dataset {name!r} images have shape {tuple(images.shape[1:])}, expected {expected}")
    return _to_tensors(images, labels)


def load_subset(name: str, split: str, n: int | None, seed: int = 0,
                root: str | os.PathLike | None = None, download: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """``subset(*load_dataset(name, split), n, seed)``, converting only the chosen images."""
    choice("name", name, DATASETS)
    choice("split", split, SPLITS)
    if n is not None:
        positive_int("n", n)
    non_negative_int("seed", seed)
    images, labels = _read_uint8(name, split, _root_of(root), flag("download", download))
    index = subset_indices(torch.from_numpy(np.array(labels, dtype=np.int64)), n, seed).numpy()
    return _to_tensors(images[index], labels[index])


def subset_indices(y: torch.Tensor, n: int | None, seed: int = 0) -> torch.Tensor:
    """Indices of a deterministic, class-balanced subset of ``n`` examples (all when ``n`` is None).

    Each class contributes ``n // K`` examples (the first ``n % K`` classes one more), drawn by a
    seeded permutation; classes with too few examples give all they have.
    """
    _check_labels(y)
    if n is not None:
        positive_int("n", n)
    seed = non_negative_int("seed", seed)
    y = y.cpu()
    if n is None or n >= len(y):
        return torch.arange(len(y))
    generator = torch.Generator().manual_seed(seed)
    classes = torch.unique(y)
    per_class = [n // len(classes) + (1 if i < n % len(classes) else 0) for i in range(len(classes))]
    chosen = []
    for label, count in zip(classes.tolist(), per_class):
        members = torch.nonzero(y == label).flatten()
        chosen.append(members[torch.randperm(len(members), generator=generator)[:count]])
    # Interleave classes in a seeded order so a prefix of the subset is balanced too.
    index = torch.cat(chosen)
    return index[torch.randperm(len(index), generator=generator)]


def subset(x: torch.Tensor, y: torch.Tensor, n: int | None, seed: int = 0
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """The examples at :func:`subset_indices` (``x, y`` themselves when ``n`` is None)."""
    _check_examples(x, y)
    if n is None or n >= len(y):
        return x, y
    index = subset_indices(y, n, seed).to(y.device)
    return x[index], y[index]


def _check_labels(y) -> None:
    if not isinstance(y, torch.Tensor) or y.dim() != 1 or y.is_floating_point() \
            or y.is_complex() or y.dtype == torch.bool:
        raise ValueError("y must be a 1-d integer tensor of class labels")


def _check_examples(x, y) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() < 2:
        raise ValueError(f"x must be a tensor of examples, shape (N, ...); got {type(x).__name__}")
    _check_labels(y)
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length; got {len(x)} and {len(y)}")


class DeviceLoader:
    """Batches of a dataset that lives on ``device``; shuffling and augmentation happen there.

    Augmentation (``augment=True``): random crop with ``padding`` zero pixels, then a horizontal
    flip with probability ½ when ``flip``. A ``torch.Generator`` on the device drives every random
    choice, so the batch sequence is a function of ``seed`` alone and its state can be saved and
    restored (:meth:`state_dict`) to resume mid-training exactly.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, shuffle: bool = False,
                 augment: bool = False, seed: int = 0, device: str = "auto", drop_last: bool = False,
                 flip: bool = True, padding: int = 4, return_indices: bool = False,
                 generator: torch.Generator | None = None):
        _check_examples(x, y)
        self.batch_size = positive_int("batch_size", batch_size)
        self.shuffle, self.augment, self.flip = (flag("shuffle", shuffle), flag("augment", augment),
                                                 flag("flip", flip))
        self.drop_last = flag("drop_last", drop_last)
        self.return_indices = flag("return_indices", return_indices)
        self.padding = non_negative_int("padding", padding)
        if self.augment and x.dim() != 4:
            raise ValueError(f"augment=True needs images of shape (N, C, H, W); got {tuple(x.shape)}")
        seed = non_negative_int("seed", seed)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ValueError(f"generator must be a torch.Generator or None; got {generator!r}")
        self.device = torch.device(resolve_device(device))
        self.x = x.to(self.device)
        self.y = y.to(self.device).long()
        if generator is None:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(seed)
        self.generator = generator

    def __len__(self) -> int:
        full, rest = divmod(len(self.y), self.batch_size)
        return full if self.drop_last or rest == 0 else full + 1

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])

    def _augment(self, images: torch.Tensor) -> torch.Tensor:
        n, _, h, w = images.shape
        if self.padding:
            padded = torch.nn.functional.pad(images, [self.padding] * 4)
            dy = torch.randint(0, 2 * self.padding + 1, (n,), device=self.device, generator=self.generator)
            dx = torch.randint(0, 2 * self.padding + 1, (n,), device=self.device, generator=self.generator)
            # One gather for the whole batch: row/column indices shifted per image.
            rows = (dy[:, None] + torch.arange(h, device=self.device))[:, None, :, None]
            cols = (dx[:, None] + torch.arange(w, device=self.device))[:, None, None, :]
            batch = torch.arange(n, device=self.device)[:, None, None, None]
            channel = torch.arange(images.shape[1], device=self.device)[None, :, None, None]
            images = padded[batch, channel, rows, cols]
        if self.flip:
            flip = torch.rand(n, device=self.device, generator=self.generator) < 0.5
            images = torch.where(flip[:, None, None, None], images.flip(3), images)
        return images

    def __iter__(self):
        n = len(self.y)
        if self.shuffle:
            order = torch.randperm(n, device=self.device, generator=self.generator)
        else:
            order = torch.arange(n, device=self.device)
        for start in range(0, n, self.batch_size):
            index = order[start:start + self.batch_size]
            if self.drop_last and len(index) < self.batch_size:
                break
            images = self.x[index]
            if self.augment:
                images = self._augment(images)
            yield (images, self.y[index], index) if self.return_indices else (images, self.y[index])
