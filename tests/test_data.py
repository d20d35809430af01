"""CIFAR-10 loading, the search splits, subsets and batched augmentation."""

from __future__ import annotations

import pickle
import shutil

import numpy as np
import pytest
import torch

from harness import data as D
from harness.errors import DataError


def test_nb201_split_matches_cifar_split_txt():
    train, valid = D.nb201_cifar_split()
    assert len(train) == len(valid) == 25000
    assert list(train[:11]) == [0, 5, 7, 11, 13, 15, 16, 17, 20, 24, 26]
    assert list(valid[:11]) == [1, 2, 3, 4, 6, 8, 9, 10, 12, 14, 18]
    assert len(set(train) | set(valid)) == 50000


def test_darts_halves():
    train, valid = D.darts_halves()
    assert train[0] == 0 and train[-1] == 24999 and valid[0] == 25000 and valid[-1] == 49999


def test_balanced_subset_is_deterministic_and_balanced():
    labels = np.arange(1000) % 10
    idx = np.arange(0, 1000, 2)  # only even classes present...
    labels[1::2] = (np.arange(500) * 3) % 10  # ...make odd positions carry every class
    idx = np.arange(1000)
    sub = D.balanced_subset(idx, labels, 100)
    assert len(sub) == 100 and np.bincount(labels[sub], minlength=10).tolist() == [10] * 10
    assert np.array_equal(sub, D.balanced_subset(idx, labels, 100))
    with pytest.raises(ValueError, match="multiple"):
        D.balanced_subset(idx, labels, 55)


def test_cifar10_jpeg_copy_loads_and_caches(shared_data):
    x, y, prov = D.load_cifar10("train", shared_data)
    assert x.shape == (50000, 3, 32, 32) and x.dtype == torch.uint8
    assert torch.bincount(y).tolist() == [5000] * 10
    assert prov["label"] == "CIFAR-10 (JPEG q75 copy)"
    assert y[:10].tolist() == list(range(10))  # interleaved order keeps index splits class-balanced
    xt, yt, _ = D.load_cifar10("test", shared_data)
    assert xt.shape == (10000, 3, 32, 32) and torch.bincount(yt).tolist() == [1000] * 10


def test_missing_data_names_what_and_where(tmp_path):
    with pytest.raises(DataError) as exc:
        D.load_cifar10("train", tmp_path / "nowhere")
    msg = str(exc.value)
    assert "cifar-10-batches-py" in msg and "cifar10-jpeg" in msg and "nowhere" in msg


def test_corrupt_zip_is_a_checksum_error(shared_data, tmp_path):
    dst = tmp_path / "cifar10-jpeg"
    dst.mkdir()
    blob = bytearray((shared_data / "cifar10-jpeg" / "test.zip").read_bytes())
    blob[1000] ^= 0xFF
    (dst / "test.zip").write_bytes(bytes(blob))
    shutil.copy(shared_data / "cifar10-jpeg" / "test.zip", dst / "train.zip")  # present, wrong content
    with pytest.raises(DataError, match="checksum mismatch"):
        D.load_cifar10("test", tmp_path)
    with pytest.raises(DataError, match="checksum mismatch"):
        D.load_cifar10("train", tmp_path)


def test_official_python_batches_decode(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, size=(4, 3072), dtype=np.uint8)
    with open(folder / "test_batch", "wb") as fh:
        pickle.dump({"data": raw, "labels": [3, 1, 4, 1]}, fh)
    x, y = D._decode_batches(folder, "test")
    assert x.shape == (4, 32, 32, 3) and y.tolist() == [3, 1, 4, 1]
    assert np.array_equal(x[0].transpose(2, 0, 1).reshape(-1), raw[0])  # CHW rows → HWC


def test_random_crop_flip_batched():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8) + 1
    out = D.random_crop_flip(x, pad=2, gen=g)
    assert out.shape == x.shape
    # each output is a shifted (zero-padded) and possibly mirrored copy of its own input
    for i in range(2):
        nz = out[i][out[i] > 0]
        assert set(nz.tolist()) <= set(x[i].flatten().tolist())
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(D.random_crop_flip(x, 2, g1), D.random_crop_flip(x, 2, g2))


def test_cutout_zeroes_one_square_per_image():
    g = torch.Generator().manual_seed(0)
    x = torch.ones(4, 3, 16, 16)
    out = D.cutout(x, 4, g)
    zeros = (out[:, 0] == 0).sum(dim=(1, 2))
    assert all(1 <= int(z) <= 16 for z in zeros)
    assert torch.equal(out[:, 0] == 0, out[:, 2] == 0)


def test_search_data_batches(shared_data):
    cfg = D.SearchDataConfig(split="nb201", n_train=200, n_val=100, image_size=16, batch_size=64)
    sd = D.SearchData(cfg, torch.device("cpu"), shared_data)
    assert sd.x_train.shape == (200, 3, 16, 16) and sd.steps_per_epoch == 4
    batches = list(sd.epoch(torch.Generator().manual_seed(0)))
    assert [b[0][0].shape[0] for b in batches] == [64, 64, 64, 8]
    assert all(b[1][0].shape[0] == b[0][0].shape[0] for b in batches)  # paired val images
    assert "JPEG q75 copy" in sd.provenance["dataset"] and "interleaved" in sd.provenance["split"]
    fresh = D.SearchData(
        D.SearchDataConfig(
            split="darts", val_sampling="fresh-iterator", n_train=200, n_val=100, image_size=16, batch_size=64
        ),
        torch.device("cpu"),
        shared_data,
    )
    vb = [b[1][1].shape[0] for b in fresh.epoch(torch.Generator().manual_seed(0))]
    assert vb == [64] * 4  # a full val batch every step, as next(iter(valid_queue))
