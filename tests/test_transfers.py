"""Host-to-device copies of the data path (one per epoch, none inside the step loop) and device-to-host reads of a
search iteration (none, except a sampled forward's one).

A CPU machine has no GPU to copy to, so the data path runs on PyTorch's ``meta`` device (shapes without
values): every copy from a CPU tensor to a meta tensor is what would be a host-to-device copy on CUDA, and a
dispatch mode counts them.  The draws themselves are bit-identical to the per-batch order (checked on CPU)."""

from __future__ import annotations

import os
import sys

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from harness import config as C
from harness import data as D
from harness.registry import get_method, get_space, list_methods, list_spaces


class CopyCounter(TorchDispatchMode):
    """Counts copies whose source is on the CPU and whose result is on another device."""

    def __init__(self) -> None:
        super().__init__()
        self.host_to_device = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func in (torch.ops.aten._to_copy.default, torch.ops.aten.copy_.default):
            src = args[1] if func is torch.ops.aten.copy_.default else args[0]
            dst = out
            if (
                isinstance(src, torch.Tensor)
                and isinstance(dst, torch.Tensor)
                and src.device.type == "cpu"
                and dst.device.type != "cpu"
            ):
                self.host_to_device += 1
        return out


def _search_data(device: torch.device, **kw) -> D.SearchData:
    cfg = D.SearchDataConfig(n_train=200, n_val=100, image_size=16, batch_size=32, **kw)
    return D.SearchData(cfg, device)


def test_a_search_epoch_makes_one_host_to_device_copy():
    sd = _search_data(torch.device("meta"))
    counter = CopyCounter()
    with counter:
        batches = list(sd.epoch(torch.Generator().manual_seed(0)))
    assert len(batches) == 7 and batches[0][0][0].device.type == "meta"
    assert counter.host_to_device == 1


def test_a_truncated_search_epoch_makes_one_copy_too():
    sd = _search_data(torch.device("meta"), val_sampling="fresh-iterator")
    counter = CopyCounter()
    with counter:
        batches = list(sd.epoch(torch.Generator().manual_seed(0), max_batches=3))
    assert len(batches) == 3 and counter.host_to_device == 1


def test_an_evaluation_epoch_makes_one_host_to_device_copy():
    recipe = {
        "n_train": 300,
        "n_test": 100,
        "image_size": 16,
        "batch_size": 64,
        "crop_pad": 2,
        "flip": True,
        "cutout": 8,
        "max_steps_per_epoch": None,
        "eval_batch_size": 100,
    }
    data = D.TrainTestData(recipe, torch.device("meta"))
    counter = CopyCounter()
    with counter:
        batches = list(data.train_batches(torch.Generator().manual_seed(0)))
    assert len(batches) == 5 and counter.host_to_device == 1


def test_to_device_once_keeps_values_and_dtypes():
    draws = {
        "0.idx": torch.tensor([3, 1, 2]),
        "0.flip": torch.tensor([True, False, True]),
        "1.oy": torch.tensor([[0, 4]]),
    }
    moved = D.to_device_once(draws, torch.device("meta"))
    assert {k: (v.dtype, tuple(v.shape)) for k, v in moved.items()} == {
        k: (v.dtype, tuple(v.shape)) for k, v in draws.items()
    }
    assert D.to_device_once(draws, torch.device("cpu")) is draws
    assert D.group_by_batch(draws, 2) == [{"idx": draws["0.idx"], "flip": draws["0.flip"]}, {"oy": draws["1.oy"]}]


def test_the_epoch_draw_order_is_the_per_batch_order():
    """The planned draws equal drawing batch by batch: permutation, then per batch val indices, train crop/flip,
    val crop/flip (the order of every earlier version, so records stay comparable)."""
    sd = _search_data(torch.device("cpu"))
    gen = torch.Generator().manual_seed(3)
    (x_tr, y_tr), (x_val, y_val) = next(iter(sd.epoch(gen, max_batches=1)))
    ref = torch.Generator().manual_seed(3)
    perm = torch.randperm(200, generator=ref)
    vi = torch.randint(0, 100, (32,), generator=ref)
    tr = D.random_crop_flip(sd.x_train[perm[:32]], sd.pad, ref)
    va = D.random_crop_flip(sd.x_val[vi], sd.pad, ref)
    assert torch.equal(y_tr, sd.y_train[perm[:32]]) and torch.equal(y_val, sd.y_val[vi])
    assert torch.equal(x_tr, sd.normalize(tr)) and torch.equal(x_val, sd.normalize(va))


def test_batch_sizes_an_epoch_feeds():
    sd = _search_data(torch.device("cpu"))  # 200 images, batch 32: 6 full batches and one of 8
    assert sd.batch_sizes() == [32, 8]
    assert sd.batch_sizes(max_batches=7) == [32, 8]
    assert sd.batch_sizes(max_batches=3) == [32]  # a truncated epoch never reaches the leftover batch


class HostSyncCounter(TorchFunctionMode):
    """Counts tensor→host reads (``tolist``, ``item``, ``bool()``…) outside torch's optimizers (whose step counters
    are host tensors on every device): on a GPU each is a synchronisation that stalls the launch queue."""

    NAMES = {"tolist", "item", "__bool__", "__int__", "__float__", "__index__", "cpu", "numpy"}

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in self.NAMES:
            frame, files = sys._getframe(1), []
            while frame is not None and len(files) < 4:
                files.append(frame.f_code.co_filename)
                frame = frame.f_back
            self.count += not any(f"{os.sep}torch{os.sep}optim{os.sep}" in f for f in files)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("space", list_spaces())
@pytest.mark.parametrize("method", list_methods())
def test_a_search_iteration_reads_the_device_only_for_sampled_ops(space, method):
    """Zero host reads in a search iteration, except a sampled forward's one (the op index of every edge of every
    cell, in one transfer, whatever the sampling scope)."""
    prof = C.load_profile("smoke")
    part = dict(C.find_part(prof, space))
    part["data"] = {**part["data"], "image_size": 8, "batch_size": 4}
    cfg = C.resolve(space, method, 0, prof, part)
    net = get_space(space)().build_supernet(dict(cfg["space_cfg"]), num_classes=10)
    m = get_method(method)(net, {**cfg["optim"], **cfg["method_cfg"]}, 3, 1, speed=cfg["speed"])
    m.on_epoch_start(0)
    x, y = torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,))
    m.step((x, y), (x, y))  # optimizer states exist from here on
    forwards = []
    handle = net.register_forward_hook(lambda *a: forwards.append(1))
    counter = HostSyncCounter()
    with counter:
        m.step((x, y), (x, y))
    handle.remove()
    assert counter.count == (len(forwards) if m.forward_mode == "gumbel" else 0)
