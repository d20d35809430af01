"""CIFAR-10: decode once into a cached uint8 tensor, search splits, batched tensor augmentation.

Sources (looked for in the data folder, see ``harness.paths``):

* ``cifar-10-batches-py/``: torchvision's official download (``--download`` fetches it when online);
* ``cifar10-jpeg/{train,test}.zip``: ImageFolder-style zips (the offline JPEG q75 copy).

The JPEG copy is stored class by class; its images are put in an interleaved order
(index = 10·file_number + class) so that index-based splits stay class-balanced.  That order is
not the official image order, so the reference splits (DARTS halves, NB201 ``cifar-split``)
select different images on that copy; records say so in ``provenance.split``.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import random
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from harness.errors import DataError
from harness.paths import PROJECT_ROOT, cache_dir, data_dir

MANIFEST = PROJECT_ROOT / "data" / "manifests" / "cifar10.json"
CACHE_VERSION = 2


@lru_cache(maxsize=1)
def manifest() -> dict:
    with open(MANIFEST) as fh:
        return json.load(fh)


CIFAR_MEAN = tuple(manifest()["mean"])
CIFAR_STD = tuple(manifest()["std"])


@dataclass(frozen=True)
class Cifar10Source:
    kind: str  # "cifar10-jpeg" | "cifar-10-batches-py"
    path: Path
    label: str


def find_cifar10(root: Optional[Path] = None, download: bool = False) -> Cifar10Source:
    """Locate CIFAR-10 under the data folder; ``download`` fetches the official files with torchvision."""
    root = data_dir(root)
    candidates = [root / "cifar-10-batches-py", root / "cifar10-jpeg"]
    labels = {k: v["label"] for k, v in manifest()["sources"].items()}
    if (root / "cifar-10-batches-py" / "data_batch_1").is_file():
        return Cifar10Source("cifar-10-batches-py", root / "cifar-10-batches-py", labels["cifar-10-batches-py"])
    if (root / "cifar10-jpeg" / "train.zip").is_file():
        return Cifar10Source("cifar10-jpeg", root / "cifar10-jpeg", labels["cifar10-jpeg"])
    if download:
        import torchvision

        try:
            torchvision.datasets.CIFAR10(root=str(root), train=True, download=True)
            torchvision.datasets.CIFAR10(root=str(root), train=False, download=True)
        except Exception as exc:  # network errors etc.
            raise DataError(f"could not download CIFAR-10 into {root}: {exc}") from exc
        return find_cifar10(root)
    raise DataError(
        "CIFAR-10 not found: looked for "
        + " and ".join(str(c) for c in candidates)
        + f" (data folder {root}; set --data-dir or HARNESS_DATA, or pass --download when online)"
    )


def _digest(path: Path, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_source(src: Cifar10Source, split: str) -> str:
    """Check the file(s) of ``split`` against the manifest; returns the checksum used as cache key."""
    files = manifest()["sources"][src.kind]["files"]
    if src.kind == "cifar10-jpeg":
        name = f"{split}.zip"
        path = src.path / name
        if not path.is_file():
            raise DataError(f"CIFAR-10 {split} images not found: looked for {path}")
        digest = _digest(path, "sha256")
        if digest != files[name]["sha256"]:
            raise DataError(
                f"checksum mismatch for {path}: sha256 {digest[:16]}…, expected {files[name]['sha256'][:16]}… "
                "(corrupt or different file; re-copy it)"
            )
        return digest
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    digests = []
    for name in names:
        path = src.path / name
        if not path.is_file():
            raise DataError(f"CIFAR-10 file not found: looked for {path}")
        digest = _digest(path, "md5")
        if digest != files[name]["md5"]:
            raise DataError(f"checksum mismatch for {path}: md5 {digest}, expected {files[name]['md5']}")
        digests.append(digest)
    return hashlib.sha256("".join(digests).encode()).hexdigest()


def _decode_zip(path: Path, split: str) -> Tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    classes = manifest()["classes"]
    entries = []
    try:
        with zipfile.ZipFile(path) as zf:
            for name in zf.namelist():
                parts = name.split("/")
                if len(parts) != 3 or not parts[2].lower().endswith((".jpg", ".jpeg", ".png")):
                    continue
                top, cls, fname = parts
                if cls not in classes:
                    raise DataError(f"{path}: unexpected class folder {cls!r} in {name}")
                entries.append((int(Path(fname).stem), classes.index(cls), name))
            entries.sort()  # interleaved order: (file number, class)
            images = np.empty((len(entries), 32, 32, 3), dtype=np.uint8)
            labels = np.empty(len(entries), dtype=np.int64)
            for i, (_, cls_idx, name) in enumerate(entries):
                with Image.open(io.BytesIO(zf.read(name))) as img:
                    arr = np.asarray(img.convert("RGB"))
                if arr.shape != (32, 32, 3):
                    raise DataError(f"{path}:{name}: image of shape {arr.shape}, expected 32x32 RGB")
                images[i] = arr
                labels[i] = cls_idx
    except zipfile.BadZipFile as exc:
        raise DataError(f"{path} is not a readable zip file: {exc}") from exc
    return images, labels


def _decode_batches(folder: Path, split: str) -> Tuple[np.ndarray, np.ndarray]:
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    xs, ys = [], []
    for name in names:
        with open(folder / name, "rb") as fh:
            entry = pickle.load(fh, encoding="latin1")
        xs.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        ys.append(np.asarray(entry.get("labels", entry.get("fine_labels")), dtype=np.int64))
    return np.concatenate(xs), np.concatenate(ys)


def load_cifar10(
    split: str = "train", root: Optional[Path] = None, download: bool = False
) -> Tuple[torch.Tensor, torch.Tensor, Dict[str, str]]:
    """Images (N, 3, 32, 32) uint8, labels (N,) int64 and provenance {label, source, sha256}.

    The decoded tensors are cached (``harness.paths.cache_dir()``) keyed by the source checksum.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    src = find_cifar10(root, download=download)
    digest = verify_source(src, split)
    cache = cache_dir() / f"cifar10-{src.kind}-{split}-{digest[:16]}-v{CACHE_VERSION}.pt"
    prov = {"label": src.label, "source": str(src.path), "sha256": digest}
    if cache.is_file():
        try:
            blob = torch.load(cache, weights_only=True)
            return blob["images"], blob["labels"], prov
        except Exception:
            cache.unlink(missing_ok=True)  # corrupt cache: rebuild
    if src.kind == "cifar10-jpeg":
        images, labels = _decode_zip(src.path / f"{split}.zip", split)
    else:
        images, labels = _decode_batches(src.path, split)
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    y = torch.from_numpy(labels)
    from harness.records import atomic_torch_save

    atomic_torch_save(cache, {"images": x, "labels": y})
    return x, y, prov


# --------------------------------------------------------------------------------------------
# splits


def nb201_cifar_split(n: int = 50000) -> Tuple[np.ndarray, np.ndarray]:
    """NB201 ``configs/nas-benchmark/cifar-split.txt``: random.seed(1021); shuffle; sorted halves."""
    idx = list(range(n))
    rng = random.Random(1021)
    rng.shuffle(idx)
    half = n // 2
    return np.array(sorted(idx[:half])), np.array(sorted(idx[half:]))


def darts_halves(n: int = 50000, portion: float = 0.5) -> Tuple[np.ndarray, np.ndarray]:
    """quark0/darts: first ``portion`` of the training set by index = search-train, rest = search-val."""
    cut = int(np.floor(portion * n))
    return np.arange(cut), np.arange(cut, n)


SPLITS = {
    "nb201": ("NB201 cifar-split (seed 1021, 25k/25k)", nb201_cifar_split),
    "darts": ("DARTS index halves (first 25k / last 25k)", darts_halves),
}


def balanced_subset(indices: np.ndarray, labels: np.ndarray, n: Optional[int], num_classes: int = 10) -> np.ndarray:
    """Deterministic class-balanced subset: the first n/num_classes indices of each class (index order)."""
    if n is None or n >= len(indices):
        return indices
    if n % num_classes:
        raise ValueError(f"subset size {n} is not a multiple of {num_classes} classes")
    per = n // num_classes
    lab = labels[indices]
    chosen = []
    for c in range(num_classes):
        members = indices[lab == c]
        if len(members) < per:
            raise ValueError(f"class {c} has only {len(members)} images in this split, {per} requested")
        chosen.append(members[:per])
    return np.sort(np.concatenate(chosen))


def resize_uint8(x: torch.Tensor, size: int) -> torch.Tensor:
    """Downsample a uint8 batch once (bilinear, antialiased), staying uint8."""
    if x.shape[-1] == size:
        return x
    out = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return out.round_().clamp_(0, 255).to(torch.uint8)


# --------------------------------------------------------------------------------------------
# batched augmentation (on whatever device the tensors live on)


class Normalizer:
    def __init__(self, device: torch.device, mean=CIFAR_MEAN, std=CIFAR_STD):
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1) * 255.0
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1) * 255.0

    def __call__(self, x_uint8: torch.Tensor) -> torch.Tensor:
        return (x_uint8.float() - self.mean) / self.std


def draw_crop_flip(b: int, pad: int, gen: torch.Generator, flip: bool = True) -> Dict[str, torch.Tensor]:
    """The random draws of ``random_crop_flip`` for a batch of ``b`` images, on the CPU (the data generator
    lives there, so every device sees the same stream): crop offsets ``oy``, ``ox`` and the flip mask."""
    out: Dict[str, torch.Tensor] = {}
    if pad > 0:
        out["oy"] = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
        out["ox"] = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    if flip:
        out["flip"] = torch.rand(b, generator=gen) < 0.5
    return out


def apply_crop_flip(x: torch.Tensor, pad: int, draws: Dict[str, torch.Tensor]) -> torch.Tensor:
    """Zero-padded crop and horizontal flip of a whole batch with draws already on ``x``'s device."""
    b, _, h, w = x.shape
    dev = x.device
    if "oy" in draws:
        x = F.pad(x, (pad, pad, pad, pad))
        rows = (draws["oy"][:, None] + torch.arange(h, device=dev)[None]).view(b, 1, h, 1)
        cols = (draws["ox"][:, None] + torch.arange(w, device=dev)[None]).view(b, 1, 1, w)
        bidx = torch.arange(b, device=dev).view(b, 1, 1, 1)
        cidx = torch.arange(x.shape[1], device=dev).view(1, -1, 1, 1)
        x = x[bidx, cidx, rows, cols]
    if "flip" in draws:
        x = torch.where(draws["flip"].view(b, 1, 1, 1), x.flip(-1), x)
    return x


def random_crop_flip(x: torch.Tensor, pad: int, gen: torch.Generator, flip: bool = True) -> torch.Tensor:
    """Random crop with zero padding and horizontal flip, per image, for a whole batch (uint8 or float)."""
    draws = to_device_once(draw_crop_flip(x.shape[0], pad, gen, flip), x.device)
    return apply_crop_flip(x, pad, draws)


def draw_cutout(b: int, h: int, w: int, gen: torch.Generator) -> Dict[str, torch.Tensor]:
    """The random draws of ``cutout`` (hole centres), on the CPU."""
    return {"cy": torch.randint(0, h, (b,), generator=gen), "cx": torch.randint(0, w, (b,), generator=gen)}


def apply_cutout(x: torch.Tensor, length: int, draws: Dict[str, torch.Tensor]) -> torch.Tensor:
    """One length×length hole per image at the drawn centres (clipped at the border), as DARTS' Cutout."""
    b, _, h, w = x.shape
    cy, cx = draws["cy"].view(b, 1, 1), draws["cx"].view(b, 1, 1)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    half = length // 2
    hole = (ys >= cy - half) & (ys < cy + half + length % 2) & (xs >= cx - half) & (xs < cx + half + length % 2)
    return x * (~hole).unsqueeze(1).to(x.dtype)


def cutout(x: torch.Tensor, length: int, gen: torch.Generator) -> torch.Tensor:
    """One length×length hole per image (centre uniform, clipped at the border), as DARTS' Cutout."""
    if length <= 0:
        return x
    b, _, h, w = x.shape
    return apply_cutout(x, length, to_device_once(draw_cutout(b, h, w, gen), x.device))


def group_by_batch(flat: Dict[str, torch.Tensor], n: int) -> list:
    """``{"i.key": t}`` → a list of ``n`` dicts ``{key: t}`` (one pass over the keys)."""
    out: list = [{} for _ in range(n)]
    for key, value in flat.items():
        i, rest = key.split(".", 1)
        out[int(i)][rest] = value
    return out


def to_device_once(tensors: Dict[str, torch.Tensor], device: torch.device) -> Dict[str, torch.Tensor]:
    """Move many small CPU tensors (indices, offsets, masks) to ``device`` in ONE host-to-device copy: packed
    into one int64 buffer, pinned and copied without blocking on CUDA, split back (views) on the device.
    On the CPU it returns them unchanged.  Each blocking copy would wait for the GPU and break graph capture."""
    if device.type == "cpu" or not tensors:
        return tensors
    items = list(tensors.items())
    flat = torch.cat([t.reshape(-1).to(torch.int64) for _, t in items])
    if device.type == "cuda":
        flat = flat.pin_memory()
    flat = flat.to(device, non_blocking=True)
    parts = flat.split([t.numel() for _, t in items])
    return {k: p.view(t.shape).to(t.dtype) for (k, t), p in zip(items, parts)}


# --------------------------------------------------------------------------------------------
# search data: train/val halves on the device, batches per epoch


@dataclass
class SearchDataConfig:
    split: str = "nb201"  # nb201 | darts
    val_sampling: str = "paired"  # paired (NB201: a random val image per train image, with replacement)
    # | fresh-iterator (DARTS: next(iter(val_loader)) each step)
    n_train: Optional[int] = None  # class-balanced subset of the search-train half (None = all)
    n_val: Optional[int] = None  # class-balanced subset of the search-val half
    n_eval: Optional[int] = None  # images of the val half used for the per-epoch supernet evaluation
    image_size: int = 32
    batch_size: int = 64
    augment: bool = True
    dataset: str = "cifar10"
    reference_eval_augment: bool = False  # the references' per-epoch val measurement uses the train transform


class SearchData:
    """Search-train / search-val tensors kept on ``device`` and batched per epoch."""

    def __init__(self, cfg: SearchDataConfig, device: torch.device, root: Optional[Path] = None):
        if cfg.split not in SPLITS:
            raise ValueError(f"unknown split {cfg.split!r}; expected one of {sorted(SPLITS)}")
        if cfg.val_sampling not in ("paired", "fresh-iterator"):
            raise ValueError(f"unknown val_sampling {cfg.val_sampling!r}")
        self.cfg = cfg
        self.device = device
        x, y, prov = load_cifar10("train", root)
        split_name, split_fn = SPLITS[cfg.split]
        tr_idx, va_idx = split_fn(len(y))
        labels = y.numpy()
        tr_idx = balanced_subset(tr_idx, labels, cfg.n_train)
        va_idx = balanced_subset(va_idx, labels, cfg.n_val)
        ev_idx = balanced_subset(va_idx, labels, cfg.n_eval) if cfg.n_eval else va_idx
        small = lambda idx: resize_uint8(x[torch.as_tensor(idx)], cfg.image_size).to(device)  # noqa: E731
        self.x_train, self.y_train = small(tr_idx), y[torch.as_tensor(tr_idx)].to(device)
        self.x_val, self.y_val = small(va_idx), y[torch.as_tensor(va_idx)].to(device)
        self.x_eval, self.y_eval = small(ev_idx), y[torch.as_tensor(ev_idx)].to(device)
        self.normalize = Normalizer(device)
        self.pad = max(1, cfg.image_size // 8) if cfg.augment else 0
        order = "interleaved JPEG-copy order" if prov["label"].endswith("copy)") else "official order"
        self.provenance = {
            "dataset": prov["label"],
            "dataset_sha256": prov["sha256"],
            "split": f"{split_name} applied to the {order}; search-train {len(tr_idx)}, search-val {len(va_idx)}"
            f" (class-balanced), eval {len(ev_idx)}",
            "image_size": cfg.image_size,
        }

    @property
    def steps_per_epoch(self) -> int:
        return -(-len(self.y_train) // self.cfg.batch_size)

    def batch_sizes(self, max_batches: Optional[int] = None) -> List[int]:
        """The distinct train batch sizes an epoch of at most ``max_batches`` batches feeds (what a compiled
        forward must be warmed up for): the full size, and the leftover last batch only if the epoch reaches it."""
        n, bs = len(self.y_train), self.cfg.batch_size
        sizes = [min(bs, n)]
        if n % bs and n > bs and (max_batches is None or max_batches >= self.steps_per_epoch):
            sizes.append(n % bs)
        return sizes

    def _augment(self, xb: torch.Tensor, draws: Dict[str, torch.Tensor], prefix: str) -> torch.Tensor:
        """Crop/flip with the batch's pre-drawn values (keys ``prefix.oy|ox|flip``), then normalise."""
        if self.cfg.augment:
            xb = apply_crop_flip(
                xb, self.pad, {k[len(prefix) + 1 :]: v for k, v in draws.items() if k.startswith(prefix + ".")}
            )
        return self.normalize(xb)

    def epoch(
        self, gen: torch.Generator, max_batches: Optional[int] = None
    ) -> Iterator[Tuple[Tuple[torch.Tensor, torch.Tensor], Tuple[torch.Tensor, torch.Tensor]]]:
        """Yield ((x_tr, y_tr), (x_val, y_val)) for one epoch over the shuffled search-train half (at most
        ``max_batches`` batches).

        Both halves get the training augmentation (as every reference does during search).  Every random draw
        of the epoch is made first, on the CPU generator, in the order the per-batch loop always made them
        (permutation; per batch: val indices, train crop/flip, val crop/flip), and moved to the device in one
        copy (``to_device_once``): no host-to-device copy inside the step loop.  A truncated epoch draws one
        batch beyond ``max_batches``, as the lazy per-batch loop did when the runner stopped it, so the random
        stream (and every record) is the same as before.
        """
        n_tr, n_va, bs = len(self.y_train), len(self.y_val), self.cfg.batch_size
        n_batches = -(-n_tr // bs)
        planned = n_batches if max_batches is None or max_batches >= n_batches else max_batches + 1
        perm = torch.randperm(n_tr, generator=gen)
        draws: Dict[str, torch.Tensor] = {}
        for i in range(planned):
            ti = perm[i * bs : (i + 1) * bs]
            if self.cfg.val_sampling == "paired":
                vi = torch.randint(0, n_va, (len(ti),), generator=gen)
            else:
                vi = torch.randperm(n_va, generator=gen)[:bs]
            draws[f"{i}.ti"], draws[f"{i}.vi"] = ti, vi
            for half, n in (("tr", len(ti)), ("va", len(vi))):
                if self.cfg.augment:
                    for k, v in draw_crop_flip(n, self.pad, gen).items():
                        draws[f"{i}.{half}.{k}"] = v
        batches = group_by_batch(to_device_once(draws, self.device), planned)
        for b in batches[: min(planned, n_batches if max_batches is None else max_batches)]:
            ti, vi = b["ti"], b["vi"]
            yield (
                (self._augment(self.x_train[ti], b, "tr"), self.y_train[ti]),
                (self._augment(self.x_val[vi], b, "va"), self.y_val[vi]),
            )

    def eval_batches(
        self, batch_size: int = 256, augment_gen: Optional[torch.Generator] = None
    ) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        """The eval subset of search-val in order; with ``augment_gen``, with the training
        augmentation drawn from that generator (quark0's valid_queue uses the train transform)."""
        for start in range(0, len(self.y_eval), batch_size):
            xb = self.x_eval[start : start + batch_size]
            if augment_gen is not None and self.cfg.augment:
                xb = random_crop_flip(xb, self.pad, augment_gen)
            xb = self.normalize(xb)
            yield xb, self.y_eval[start : start + batch_size]


# --------------------------------------------------------------------------------------------
# evaluation data: the full train / test split on the device (training a found cell from scratch)


class TrainTestData:
    """CIFAR-10 train/test decoded once, (optionally) class-balanced subsets and downsampled, on the device.

    ``cfg`` is an evaluation recipe (``harness.eval_recipe``): n_train, n_test, image_size, batch_size,
    crop_pad, flip, cutout, max_steps_per_epoch, eval_batch_size."""

    def __init__(self, cfg: Dict[str, Any], device: torch.device, root: Optional[Path] = None, download: bool = False):
        self.cfg = cfg
        self.device = device
        xtr, ytr, prov = load_cifar10("train", root, download=download)
        xte, yte, prov_te = load_cifar10("test", root, download=download)
        tr_idx = balanced_subset(np.arange(len(ytr)), ytr.numpy(), cfg["n_train"])
        te_idx = balanced_subset(np.arange(len(yte)), yte.numpy(), cfg["n_test"])
        size = cfg["image_size"]
        take = lambda x, idx: resize_uint8(x if len(idx) == len(x) else x[torch.as_tensor(idx)], size)  # noqa: E731
        self.x_train, self.y_train = take(xtr, tr_idx).to(device), ytr[torch.as_tensor(tr_idx)].to(device)
        self.x_test, self.y_test = take(xte, te_idx).to(device), yte[torch.as_tensor(te_idx)].to(device)
        self.normalize = Normalizer(device)
        order = "interleaved JPEG-copy order" if prov["label"].endswith("copy)") else "official order"
        subset = "" if cfg["n_train"] is None and cfg["n_test"] is None else ", class-balanced subsets"
        self.provenance = {
            "dataset": prov["label"],
            "dataset_sha256": prov["sha256"],
            "dataset_test_sha256": prov_te["sha256"],
            "split": f"CIFAR-10 train ({len(tr_idx)} images) / test ({len(te_idx)} images){subset}, {order}",
            "image_size": size,
            "benchmark_source": None,
        }

    @property
    def n_train(self) -> int:
        return int(self.y_train.shape[0])

    def steps_per_epoch(self) -> int:
        steps = -(-self.n_train // self.cfg["batch_size"])
        if self.cfg["max_steps_per_epoch"]:
            steps = min(steps, self.cfg["max_steps_per_epoch"])
        return steps

    def train_batches(self, gen: torch.Generator):
        """Shuffled batches with crop+flip (uint8), normalisation, then cutout (quark0 order).  The epoch's random
        draws are made first on the CPU generator, in the per-batch order (indices, crop, flip, cutout centres),
        and moved to the device in one copy (``to_device_once``)."""
        cfg, bs = self.cfg, self.cfg["batch_size"]
        perm = torch.randperm(self.n_train, generator=gen)
        size = int(self.x_train.shape[-1])
        draws: Dict[str, torch.Tensor] = {}
        steps = min(self.steps_per_epoch(), -(-self.n_train // bs))
        for i in range(steps):
            idx = perm[i * bs : (i + 1) * bs]
            draws[f"{i}.idx"] = idx
            if cfg["crop_pad"] or cfg["flip"]:
                for k, v in draw_crop_flip(len(idx), cfg["crop_pad"], gen, flip=cfg["flip"]).items():
                    draws[f"{i}.{k}"] = v
            if cfg["cutout"]:
                for k, v in draw_cutout(len(idx), size, size, gen).items():
                    draws[f"{i}.{k}"] = v
        for mine in group_by_batch(to_device_once(draws, self.device), steps):
            idx = mine["idx"]
            xb = self.x_train[idx]
            if cfg["crop_pad"] or cfg["flip"]:
                xb = apply_crop_flip(xb, cfg["crop_pad"], mine)
            xb = self.normalize(xb)
            if cfg["cutout"]:
                xb = apply_cutout(xb, cfg["cutout"], mine)
            yield xb, self.y_train[idx]

    def test_batches(self):
        bs = self.cfg["eval_batch_size"]
        for start in range(0, int(self.y_test.shape[0]), bs):
            yield self.normalize(self.x_test[start : start + bs]), self.y_test[start : start + bs]
