"""Dataset readers on small files in the real on-disk formats, subsets, and the device loader."""

from __future__ import annotations

import gzip
import pickle

import numpy as np
import pytest
import torch

from lsnotes import data


def write_idx(path, array: np.ndarray, compress: bool = False) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    (gzip.open if compress else open)(path, "wb").write(payload)


def fake_images(n, channels, side, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, channels, side, side), dtype=np.uint8)


@pytest.mark.parametrize("name, folder, compress", [("mnist", "MNIST", False),
                                                    ("fashion-mnist", "FashionMNIST", True)])
def test_mnist_family_reads_torchvision_raw_layout(tmp_path, name, folder, compress):
    images, labels = fake_images(12, 1, 28)[:, 0], np.arange(12) % 10
    suffix = ".gz" if compress else ""
    write_idx(tmp_path / folder / "raw" / f"t10k-images-idx3-ubyte{suffix}", images, compress)
    write_idx(tmp_path / folder / "raw" / f"t10k-labels-idx1-ubyte{suffix}", labels, compress)
    x, y = data.load_dataset(name, "test", root=tmp_path)
    assert x.shape == (12, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.equal(x[:, 0], torch.from_numpy(images).float() / 255)
    assert y.tolist() == labels.tolist()


def test_truncated_idx_file_is_rejected(tmp_path):
    write_idx(tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte", fake_images(3, 1, 28)[:, 0])
    write_idx(tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte", np.arange(3))
    path = tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match="truncated"):
        data.load_dataset("mnist", "test", root=tmp_path)


def test_cifar10_pickle_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    expected = []
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)]):
        images = fake_images(4, 3, 32, seed=i)
        expected.append(images)
        batch = {b"batch_label": b"x", b"data": images.reshape(4, -1), b"labels": [i, i, i, i]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    (folder / "test_batch").write_bytes(pickle.dumps(
        {b"data": fake_images(2, 3, 32).reshape(2, -1), b"labels": [7, 8]}))
    x, y = data.load_dataset("cifar10", "train", root=tmp_path)
    assert x.shape == (20, 3, 32, 32)
    assert torch.equal(x, torch.from_numpy(np.concatenate(expected)).float() / 255)
    assert y.tolist() == [i for i in range(5) for _ in range(4)]
    assert data.load_dataset("cifar10", "test", root=tmp_path)[1].tolist() == [7, 8]


def test_cifar100_uses_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    batch = {"data": fake_images(3, 3, 32).reshape(3, -1), "fine_labels": [99, 0, 42],
             "coarse_labels": [1, 2, 3]}
    (folder / "test").write_bytes(pickle.dumps(batch))
    x, y = data.load_dataset("cifar100", "test", root=tmp_path)
    assert x.shape == (3, 3, 32, 32) and y.tolist() == [99, 0, 42]


def test_dataset_pickle_with_code_is_refused(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    (folder / "test").write_bytes(pickle.dumps({"data": print, "fine_labels": [0]}))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        data.load_dataset("cifar100", "test", root=tmp_path)


def test_svhn_mat_file_maps_label_10_to_0(tmp_path):
    import scipy.io

    images = fake_images(5, 3, 32)                       # N, C, H, W
    scipy.io.savemat(tmp_path / "test_32x32.mat",
                     {"X": np.transpose(images, (2, 3, 1, 0)), "y": np.array([[10], [1], [2], [10], [9]])})
    x, y = data.load_dataset("svhn", "test", root=tmp_path)
    assert torch.equal(x, torch.from_numpy(images).float() / 255)
    assert y.tolist() == [0, 1, 2, 0, 9]


def test_missing_dataset_names_the_fetch_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="download=True"):
        data.load_dataset("cifar10", "test", root=tmp_path)


@pytest.mark.parametrize("kwargs", [{"name": "imagenet"}, {"name": "mnist", "split": "val"}])
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError, match="must be one of"):
        data.load_dataset(**kwargs)


@pytest.mark.skipif(not (data.DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz").exists(),
                    reason="Debian dataset-fashion-mnist not installed")
def test_fashion_mnist_from_debian_files(tmp_path):
    x, y = data.load_dataset("fashion-mnist", "test", root=tmp_path)
    assert x.shape == (10000, 1, 28, 28) and 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert torch.bincount(y).tolist() == [1000] * 10
    assert abs(float(x.mean()) - data.DATASETS["fashion-mnist"].mean[0]) < 0.01


def test_subset_is_balanced_and_deterministic():
    y = torch.arange(1000) % 10
    x = torch.arange(1000, dtype=torch.float32)[:, None, None, None]
    xs, ys = data.subset(x, y, 95, seed=3)
    assert len(ys) == 95 and sorted(torch.bincount(ys).tolist()) == [9] * 5 + [10] * 5
    assert torch.equal(ys, y[xs.flatten().long()])        # images stay with their labels
    assert torch.equal(xs, data.subset(x, y, 95, seed=3)[0])
    assert not torch.equal(xs, data.subset(x, y, 95, seed=4)[0])
    assert data.subset(x, y, None)[0] is x


def test_device_loader_covers_each_example_once_and_is_seeded():
    x, y = torch.rand(103, 1, 8, 8), torch.arange(103)
    loader = data.DeviceLoader(x, y, 10, shuffle=True, seed=1, device="cpu", return_indices=True)
    batches = list(loader)
    assert len(loader) == len(batches) == 11
    seen = torch.cat([b[1] for b in batches])
    assert sorted(seen.tolist()) == list(range(103)) and seen.tolist() != list(range(103))
    assert all(torch.equal(xb, x[idx]) for xb, _, idx in batches)
    again = data.DeviceLoader(x, y, 10, shuffle=True, seed=1, device="cpu")
    assert torch.equal(torch.cat([b[1] for b in again]), seen)
    assert len(data.DeviceLoader(x, y, 10, drop_last=True, device="cpu")) == 10


def test_device_loader_state_restores_the_batch_sequence():
    x, y = torch.rand(40, 3, 8, 8), torch.arange(40)
    loader = data.DeviceLoader(x, y, 8, shuffle=True, augment=True, seed=0, device="cpu")
    list(loader)
    state = loader.state_dict()
    first = [b[0] for b in loader]
    loader.load_state_dict(state)
    assert all(torch.equal(a, b[0]) for a, b in zip(first, loader))


def test_augmentation_is_a_padded_shift_and_optional_flip():
    x = torch.rand(64, 3, 8, 8)
    y = torch.zeros(64, dtype=torch.long)
    for flip in (False, True):
        (batch, _), = list(data.DeviceLoader(x, y, 64, augment=True, flip=flip, device="cpu"))
        padded = torch.nn.functional.pad(x, [4] * 4)
        flipped_any = False
        for image, original in zip(batch, padded):
            windows = [(original[:, r:r + 8, c:c + 8]) for r in range(9) for c in range(9)]
            plain = any(torch.equal(image, w) for w in windows)
            mirrored = any(torch.equal(image, w.flip(2)) for w in windows)
            assert plain or (flip and mirrored)
            flipped_any |= mirrored and not plain
        assert flipped_any == flip
    assert not data.DATASETS["svhn"].flip and data.DATASETS["cifar10"].flip


def test_device_loader_rejects_bad_input():
    with pytest.raises(ValueError, match="same length"):
        data.DeviceLoader(torch.rand(3, 1, 2, 2), torch.arange(4), 2, device="cpu")
    with pytest.raises(ValueError, match="batch_size"):
        data.DeviceLoader(torch.rand(3, 1, 2, 2), torch.arange(3), 0, device="cpu")
    for kwargs, name in [({"device": "cpu:abc"}, "device"), ({"shuffle": "yes"}, "shuffle"),
                         ({"padding": -1}, "padding"), ({"seed": -1}, "seed"),
                         ({"generator": 3}, "generator")]:
        with pytest.raises(ValueError, match=f"^{name} "):
            data.DeviceLoader(torch.rand(3, 1, 2, 2), torch.arange(3), 2, **{"device": "cpu", **kwargs})
    with pytest.raises(ValueError, match="^y must be a 1-d integer"):
        data.DeviceLoader(torch.rand(3, 1, 2, 2), torch.arange(3).float(), 2, device="cpu")


def test_int32_labels_become_int64():
    loader = data.DeviceLoader(torch.rand(4, 1, 2, 2), torch.arange(4, dtype=torch.int32), 2, device="cpu")
    assert all(y.dtype == torch.int64 for _, y in loader)
    assert torch.equal(data.subset_indices(torch.arange(20).int() % 4, 8, 1),
                       data.subset_indices(torch.arange(20) % 4, 8, 1))


def test_a_root_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="^root must name a folder"):
        data.load_dataset("mnist", root=tmp_path / "file")
