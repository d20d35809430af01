"""NAS-Bench-201 benchmark lookup: the compact CSV table or the official benchmark files.

Both kinds give the same column names (``COLUMNS``, described in ``COLUMN_DOCS``):

* :class:`CompactTable` — ``nas-bench-201/nb201_accuracy.csv`` (15,625 rows; read with the stdlib
  ``csv`` module, sha256-checked against ``data/manifests/nb201.json``, loaded once per process).
* :class:`OfficialBenchmark` — the official files through their PyPI APIs: NAS-Bench-201
  ``.pth`` (``nas_201_api.NASBench201API``) or a NATS-Bench topology file/folder
  (``nats_bench.create(path, 'tss', fast_mode=True, verbose=False)``).

``find_benchmark(data_dir)`` picks what the data folder holds; ``lookup_json(query)`` answers one
query (arch string or index) as a JSON-able dict.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from harness.errors import ArchFormatError, DataError
from harness.paths import PROJECT_ROOT
from harness.paths import data_dir as _data_dir
from harness.spaces.nb201.arch import NUM_ARCHS, NB201Arch

PathLike = Union[str, Path]

#: accuracy columns (%), in the compact table's order
COLUMNS: Tuple[str, ...] = (
    "cifar10_test_200ep",
    "cifar100_test_200ep",
    "imagenet16_120_test_200ep",
    "cifar10_valid_val_12ep",
    "cifar10_test_12ep",
    "cifar100_val_12ep",
    "cifar100_test_12ep",
    "imagenet16_120_val_12ep",
    "imagenet16_120_test_12ep",
)

_SEEDS = "mean over the benchmark's seeds"
COLUMN_DOCS: Dict[str, str] = {
    "cifar10_test_200ep": "CIFAR-10 test accuracy (%), 10k test set, model trained on the full 50k train set, "
    f"200-epoch schedule, {_SEEDS} (NAS-Bench-201 'cifar10' ori-test, hp=200)",
    "cifar100_test_200ep": "CIFAR-100 test accuracy (%), x-test half (5k) of the test set, 200-epoch schedule, "
    f"{_SEEDS} (NAS-Bench-201 'cifar100' x-test, hp=200)",
    "imagenet16_120_test_200ep": "ImageNet16-120 test accuracy (%), x-test half (3k) of the test set, 200-epoch "
    f"schedule, {_SEEDS} (NAS-Bench-201 'ImageNet16-120' x-test, hp=200)",
    "cifar10_valid_val_12ep": "CIFAR-10 validation accuracy (%), trained on the 25k train split, evaluated on the "
    f"other 25k (x-valid), 12-epoch schedule, {_SEEDS} ('cifar10-valid' x-valid, hp=12)",
    "cifar10_test_12ep": "CIFAR-10 test accuracy (%), 10k test set, model trained on the full 50k train set, "
    f"12-epoch schedule, {_SEEDS} ('cifar10' ori-test, hp=12)",
    "cifar100_val_12ep": "CIFAR-100 validation accuracy (%), x-valid half (5k) of the test set, 12-epoch "
    f"schedule, {_SEEDS} ('cifar100' x-valid, hp=12)",
    "cifar100_test_12ep": "CIFAR-100 test accuracy (%), x-test half (5k) of the test set, 12-epoch schedule, "
    f"{_SEEDS} ('cifar100' x-test, hp=12)",
    "imagenet16_120_val_12ep": "ImageNet16-120 validation accuracy (%), x-valid half (3k) of the test set, "
    f"12-epoch schedule, {_SEEDS} ('ImageNet16-120' x-valid, hp=12)",
    "imagenet16_120_test_12ep": "ImageNet16-120 test accuracy (%), x-test half (3k) of the test set, 12-epoch "
    f"schedule, {_SEEDS} ('ImageNet16-120' x-test, hp=12)",
}

#: column -> (dataset, hp, key of get_more_info(index, dataset, hp=hp, is_random=False))
OFFICIAL_QUERIES: Dict[str, Tuple[str, str, str]] = {
    "cifar10_test_200ep": ("cifar10", "200", "test-accuracy"),
    "cifar100_test_200ep": ("cifar100", "200", "test-accuracy"),
    "imagenet16_120_test_200ep": ("ImageNet16-120", "200", "test-accuracy"),
    "cifar10_valid_val_12ep": ("cifar10-valid", "12", "valid-accuracy"),
    "cifar10_test_12ep": ("cifar10", "12", "test-accuracy"),
    "cifar100_val_12ep": ("cifar100", "12", "valid-accuracy"),
    "cifar100_test_12ep": ("cifar100", "12", "test-accuracy"),
    "imagenet16_120_val_12ep": ("ImageNet16-120", "12", "valid-accuracy"),
    "imagenet16_120_test_12ep": ("ImageNet16-120", "12", "test-accuracy"),
}

COMPACT_RELPATH = Path("nas-bench-201") / "nb201_accuracy.csv"
OFFICIAL_NAMES: Tuple[str, ...] = (
    "NAS-Bench-201-v1_1-096897.pth",
    "NAS-Bench-201-v1_0-e61699.pth",
    "NATS-tss-v1_0-3ffb9-simple",
)
MANIFEST_PATH = PROJECT_ROOT / "data" / "manifests" / "nb201.json"
#: fallback when the project's data/manifests is not shipped (a test checks both agree)
_FALLBACK_MANIFEST = {"sha256": "8368174d6fbee14f2f3013fdb209a4e451d59db155d02b080d03b8da040de21c", "rows": NUM_ARCHS}


class BenchmarkNotFoundError(DataError):
    """No benchmark file in the data folder (the message lists every path looked at)."""


def load_manifest() -> Dict[str, Any]:
    if MANIFEST_PATH.is_file():
        with open(MANIFEST_PATH, encoding="utf-8") as fh:
            return json.load(fh)
    return dict(_FALLBACK_MANIFEST)


def sha256_file(path: PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _as_arch(arch: Union[NB201Arch, str]) -> NB201Arch:
    return arch if isinstance(arch, NB201Arch) else NB201Arch.parse(arch)


# ---------------------------------------------------------------------------------------------
# compact table
# ---------------------------------------------------------------------------------------------
_TABLE_CACHE: Dict[Tuple[str, int, int, bool], Tuple[str, List[Dict[str, float]]]] = {}


def _load_compact(path: Path, verify: bool) -> Tuple[str, List[Dict[str, float]]]:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, verify)
    hit = _TABLE_CACHE.get(key)
    if hit is not None:
        return hit
    digest = sha256_file(path)
    manifest = load_manifest()
    if verify and digest != manifest["sha256"]:
        raise DataError(
            f"checksum mismatch for the NAS-Bench-201 compact table {path}: expected sha256 "
            f"{manifest['sha256']}, got {digest} (from {MANIFEST_PATH.name}); the file is corrupt or "
            f"not the expected nb201_accuracy.csv — replace it with a fresh copy"
        )
    rows: List[Optional[Dict[str, float]]] = [None] * NUM_ARCHS
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in ("index", "arch") + COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise DataError(f"{path}: missing column(s) {', '.join(missing)}; found {reader.fieldnames}")
            for line in reader:
                idx = int(line["index"])
                if not 0 <= idx < NUM_ARCHS or rows[idx] is not None:
                    raise DataError(f"{path}: bad or duplicate index {idx}")
                if line["arch"] != str(NB201Arch.from_index(idx)):
                    raise DataError(
                        f"{path}: row {idx} has arch {line['arch']!r}, but the official "
                        f"NAS-Bench-201 index {idx} is {str(NB201Arch.from_index(idx))!r}"
                    )
                rows[idx] = {c: float(line[c]) for c in COLUMNS}
    except (ValueError, KeyError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: unreadable NAS-Bench-201 compact table ({exc})") from exc
    if any(r is None for r in rows):
        n = sum(r is not None for r in rows)
        raise DataError(f"{path}: expected {NUM_ARCHS} rows (one per architecture), found {n}")
    result = (digest, rows)
    _TABLE_CACHE[key] = result  # type: ignore[assignment]
    return result  # type: ignore[return-value]


class CompactTable:
    """The compact 15,625-row accuracy table (``nb201_accuracy.csv``)."""

    kind = "compact"

    def __init__(self, csv_path: PathLike, verify: bool = True):
        self.path = Path(csv_path)
        if not self.path.is_file():
            raise DataError(f"NAS-Bench-201 compact table not found: {self.path}")
        self.sha256, self._rows = _load_compact(self.path, verify)
        self.source = f"compact table {self.path.name} (sha256 {self.sha256[:12]})"

    def __len__(self) -> int:
        return len(self._rows)

    def lookup(self, arch: Union[NB201Arch, str]) -> Dict[str, float]:
        return dict(self._rows[_as_arch(arch).index])

    def lookup_index(self, index: int) -> Dict[str, float]:
        return dict(self._rows[index])

    def __repr__(self) -> str:
        return f"CompactTable({str(self.path)!r})"


# ---------------------------------------------------------------------------------------------
# official benchmark files
# ---------------------------------------------------------------------------------------------
_OFFICIAL_CACHE: Dict[str, "OfficialBenchmark"] = {}


def _official_digest(path: Path) -> str:
    """sha256 of the file, or for a NATS folder of its ``meta.pickle.pbz2`` (else its file listing)."""
    if path.is_file():
        return sha256_file(path)
    meta = path / "meta.pickle.pbz2"
    if meta.is_file():
        return sha256_file(meta)
    listing = "\n".join(sorted(p.name for p in path.iterdir())) if path.is_dir() else ""
    return hashlib.sha256(listing.encode()).hexdigest()


class OfficialBenchmark:
    """Official NAS-Bench-201 (``.pth``) or NATS-Bench topology (``NATS-tss-*``) files via their APIs.

    ``api`` may be given (any object with ``get_more_info(index, dataset, hp=, is_random=)`` and
    optionally ``query_index_by_arch``), e.g. an API object already loaded, or a fake in tests.
    Columns the file does not hold (e.g. 12-epoch results in v1_0) are ``None``.
    """

    kind = "official"

    def __init__(self, path: PathLike, api: Any = None):
        self.path = Path(path)
        if api is None:
            if not self.path.exists():
                raise DataError(f"official NAS-Bench-201/NATS-Bench file not found: {self.path}")
            api = self._load_api(self.path)
        self.api = api
        self.sha256 = _official_digest(self.path) if self.path.exists() else "unknown"
        self.source = f"official {self.path.name} (sha256 {self.sha256[:12]})"

    @staticmethod
    def _load_api(path: Path) -> Any:
        name = path.name
        try:
            if name.endswith(".pth") and name.startswith("NAS-Bench-201"):
                from nas_201_api import NASBench201API

                return NASBench201API(str(path), verbose=False)
            from nats_bench import create

            return create(str(path), "tss", fast_mode=True, verbose=False)
        except ImportError as exc:
            raise DataError(
                f"reading {path} needs the official API package ({exc}); "
                f"install it with `pip install nas-bench-201 nats_bench`"
            ) from exc

    def index_of(self, arch: NB201Arch) -> int:
        index = arch.index
        query = getattr(self.api, "query_index_by_arch", None)
        if query is not None:
            official = int(query(str(arch)))
            if official != index:
                raise DataError(
                    f"{self.path}: the benchmark puts {arch} at index {official}, but the "
                    f"NAS-Bench-201 order gives {index}"
                )
        return index

    def lookup(self, arch: Union[NB201Arch, str]) -> Dict[str, Optional[float]]:
        return self.lookup_index(self.index_of(_as_arch(arch)))

    def lookup_index(self, index: int) -> Dict[str, Optional[float]]:
        infos: Dict[Tuple[str, str], Optional[Dict[str, Any]]] = {}
        out: Dict[str, Optional[float]] = {}
        for col in COLUMNS:
            dataset, hp, key = OFFICIAL_QUERIES[col]
            if (dataset, hp) not in infos:
                try:
                    infos[(dataset, hp)] = self.api.get_more_info(index, dataset, hp=hp, is_random=False)
                except (KeyError, ValueError, AttributeError, TypeError, IndexError, AssertionError):
                    infos[(dataset, hp)] = None  # the file has no such (dataset, schedule)
            info = infos[(dataset, hp)]
            value = None if info is None else info.get(key)
            out[col] = None if value is None else float(value)
        return out

    def __repr__(self) -> str:
        return f"OfficialBenchmark({str(self.path)!r})"


def _official_cached(path: Path) -> OfficialBenchmark:
    key = str(path.resolve())
    if key not in _OFFICIAL_CACHE:
        _OFFICIAL_CACHE[key] = OfficialBenchmark(path)
    return _OFFICIAL_CACHE[key]


# ---------------------------------------------------------------------------------------------
# discovery and one-shot query
# ---------------------------------------------------------------------------------------------
def candidate_paths(data_dir: Optional[PathLike] = None) -> List[Path]:
    """Every path ``find_benchmark`` looks at, in order of preference."""
    root = _data_dir(data_dir)
    paths = [root / COMPACT_RELPATH]
    for name in OFFICIAL_NAMES:
        paths += [root / name, root / "nas-bench-201" / name]
    return paths


def find_benchmark(data_dir: Optional[PathLike] = None):
    """The benchmark in the data folder: the compact table first, else the official files.

    Raises DataError listing every path looked at when none exists.
    """
    paths = candidate_paths(data_dir)
    for path in paths:
        if path.exists():
            if path.name == COMPACT_RELPATH.name:
                return CompactTable(path)
            return _official_cached(path)
    listing = "\n  ".join(str(p) for p in paths)
    raise BenchmarkNotFoundError(
        "no NAS-Bench-201 benchmark found in the data folder "
        f"{_data_dir(data_dir)} (set --data-dir or $HARNESS_DATA); looked for:\n  {listing}"
    )


def resolve_query(query: Union[str, int]) -> NB201Arch:
    """An arch string or an integer index (int or decimal string) -> NB201Arch."""
    if isinstance(query, NB201Arch):
        return query
    if isinstance(query, bool):
        raise ArchFormatError(f"not a NAS-Bench-201 arch string or index: {query!r}")
    text = str(query).strip()
    if isinstance(query, int) or re.fullmatch(r"[+-]?\d+", text):
        index = int(text)
        if not 0 <= index < NUM_ARCHS:
            raise ArchFormatError(f"NAS-Bench-201 index {index} is out of range: valid indices are 0..{NUM_ARCHS - 1}")
        return NB201Arch.from_index(index)
    return NB201Arch.parse(text)


def lookup_json(query: Union[str, int], data_dir: Optional[PathLike] = None) -> Dict[str, Any]:
    """``{"index", "arch", "benchmark": {column: %}, "columns": {column: description}, "source"}``."""
    arch = resolve_query(query)
    bench = find_benchmark(data_dir)
    values = bench.lookup(arch)
    return {
        "index": arch.index,
        "arch": str(arch),
        "benchmark": values,
        "columns": {c: COLUMN_DOCS[c] for c in values},
        "source": bench.source,
    }
