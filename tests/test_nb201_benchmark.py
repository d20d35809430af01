"""NAS-Bench-201 benchmark lookup: compact table, official-API column mapping, discovery, lookup_json."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from harness.errors import ArchFormatError, DataError
from harness.paths import PROJECT_ROOT
from harness.spaces.nb201 import NB201Space
from harness.spaces.nb201 import benchmark as bm
from harness.spaces.nb201.arch import NB201Arch
from harness.spaces.nb201.benchmark import (
    COLUMN_DOCS,
    COLUMNS,
    OFFICIAL_NAMES,
    OFFICIAL_QUERIES,
    BenchmarkNotFoundError,
    CompactTable,
    OfficialBenchmark,
    find_benchmark,
    lookup_json,
)

README_SHA = "8368174d6fbee14f2f3013fdb209a4e451d59db155d02b080d03b8da040de21c"
ALL_SKIP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"


def _data_dir() -> Path:
    default = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    return Path(os.environ.get("HARNESS_DATA") or default)


@pytest.fixture(scope="module")
def data() -> Path:
    path = _data_dir()
    assert (path / "nas-bench-201" / "nb201_accuracy.csv").is_file(), f"no compact table under {path}"
    return path


@pytest.fixture(scope="module")
def table(data) -> CompactTable:
    return CompactTable(data / "nas-bench-201" / "nb201_accuracy.csv")


def test_manifest_matches_readme_checksum():
    manifest = json.loads((PROJECT_ROOT / "data" / "manifests" / "nb201.json").read_text())
    assert manifest["sha256"] == README_SHA == bm._FALLBACK_MANIFEST["sha256"]
    assert manifest["rows"] == 15625 == bm._FALLBACK_MANIFEST["rows"]
    assert manifest["file"] == "nas-bench-201/nb201_accuracy.csv"
    assert tuple(manifest["columns"][2:]) == COLUMNS


def test_all_skip_cell_values(table):
    values = table.lookup(NB201Arch.parse(ALL_SKIP))
    assert set(values) == set(COLUMNS)
    assert values["cifar10_test_200ep"] == pytest.approx(54.2967)
    assert values["cifar100_test_200ep"] == pytest.approx(15.6067)
    assert values["imagenet16_120_test_200ep"] == pytest.approx(16.3222)
    assert table.lookup(ALL_SKIP) == values == table.lookup_index(1835)


def test_best_cifar10_arch(table):
    assert len(table) == 15625
    best = max(range(15625), key=lambda i: table.lookup_index(i)["cifar10_test_200ep"])
    assert table.lookup_index(best)["cifar10_test_200ep"] == pytest.approx(94.3733)
    assert table.lookup(NB201Arch.from_index(best))["cifar10_test_200ep"] == pytest.approx(94.3733)


def test_table_loaded_once_and_source(table, data):
    again = CompactTable(data / "nas-bench-201" / "nb201_accuracy.csv")
    assert again._rows is table._rows  # cached per path: the CSV is read once per process
    assert table.source == f"compact table nb201_accuracy.csv (sha256 {README_SHA[:12]})"
    assert table.sha256 == README_SHA


def test_lookup_returns_a_copy(table):
    table.lookup_index(0)["cifar10_test_200ep"] = -1.0
    assert table.lookup_index(0)["cifar10_test_200ep"] == pytest.approx(85.8633)


def test_corrupt_table_checksum_error(tmp_path, data):
    dest = tmp_path / "nas-bench-201" / "nb201_accuracy.csv"
    dest.parent.mkdir()
    shutil.copyfile(data / "nas-bench-201" / "nb201_accuracy.csv", dest)
    raw = bytearray(dest.read_bytes())
    pos = raw.index(b"54.2967")
    raw[pos] = ord("9")  # 54.2967 -> 94.2967: a plausible-looking silent corruption
    dest.write_bytes(bytes(raw))
    with pytest.raises(DataError) as exc:
        CompactTable(dest)
    msg = str(exc.value)
    assert str(dest) in msg and README_SHA in msg and bm.sha256_file(dest) in msg
    with pytest.raises(DataError):
        find_benchmark(tmp_path)
    with pytest.raises(DataError):  # a corrupt benchmark is an error, not "no benchmark"
        NB201Space(data_dir=tmp_path).arch_info(NB201Arch.parse(ALL_SKIP))
    # unverified load still works and sees the altered value
    assert CompactTable(dest, verify=False).lookup(ALL_SKIP)["cifar10_test_200ep"] == pytest.approx(94.2967)


def test_missing_benchmark_lists_every_path(tmp_path):
    with pytest.raises(BenchmarkNotFoundError) as exc:
        find_benchmark(tmp_path)
    assert isinstance(exc.value, DataError)
    msg = str(exc.value)
    assert str(tmp_path / "nas-bench-201" / "nb201_accuracy.csv") in msg
    for name in OFFICIAL_NAMES:
        assert str(tmp_path / name) in msg
        assert str(tmp_path / "nas-bench-201" / name) in msg
    info = NB201Space(data_dir=tmp_path).arch_info(NB201Arch.parse(ALL_SKIP))
    assert info == {"index": 1835, "benchmark": None, "benchmark_source": None}


def test_find_benchmark_uses_env(monkeypatch, data, tmp_path):
    monkeypatch.setenv("HARNESS_DATA", str(data))
    assert isinstance(find_benchmark(), CompactTable)
    monkeypatch.setenv("HARNESS_DATA", str(tmp_path))
    with pytest.raises(BenchmarkNotFoundError):
        find_benchmark()


def test_space_arch_info(data):
    space = NB201Space(data_dir=data)
    info = space.arch_info(space.parse_arch(ALL_SKIP))
    assert info["index"] == 1835
    assert info["benchmark"]["cifar10_test_200ep"] == pytest.approx(54.2967)
    assert info["benchmark_source"].startswith("compact table nb201_accuracy.csv")
    assert space.arch_info(ALL_SKIP) == info
    json.dumps(info)


def test_lookup_json(data):
    by_index = lookup_json("1835", data_dir=data)
    by_arch = lookup_json(ALL_SKIP, data_dir=data)
    assert by_index == by_arch
    assert by_index["index"] == 1835 and by_index["arch"] == ALL_SKIP
    assert by_index["benchmark"]["cifar100_test_200ep"] == pytest.approx(15.6067)
    assert set(by_index["columns"]) == set(COLUMNS)
    assert by_index["source"].startswith("compact table")
    json.dumps(by_index)
    assert lookup_json(" 0 ", data_dir=data)["arch"] == str(NB201Arch.from_index(0))
    for bad in ("15625", "-1"):
        with pytest.raises(ArchFormatError, match="out of range"):
            lookup_json(bad, data_dir=data)
    with pytest.raises(ArchFormatError, match="expected 3 nodes"):
        lookup_json("resnet", data_dir=data)


def test_column_docs():
    assert tuple(COLUMN_DOCS) == COLUMNS == tuple(OFFICIAL_QUERIES)
    for col, doc in COLUMN_DOCS.items():
        assert "mean over the benchmark's seeds" in doc
        assert ("200-epoch" in doc) == col.endswith("_200ep")
        assert ("12-epoch" in doc) == col.endswith("_12ep")


# ---------------------------------------------------------------------------------------------
# official benchmark files: column mapping with a fake API
# ---------------------------------------------------------------------------------------------
class FakeAPI:
    """Mimics NASBench201API / NATStopology.get_more_info: values encode (dataset, hp, metric)."""

    DATASETS = {"cifar10-valid": 1, "cifar10": 2, "cifar100": 3, "ImageNet16-120": 4}

    def __init__(self, missing=(), shift=0):
        self.calls = []
        self.missing = set(missing)
        self.shift = shift

    def query_index_by_arch(self, arch):
        return NB201Arch.parse(arch).index + self.shift

    def get_more_info(self, index, dataset, iepoch=None, hp="12", is_random=True):
        self.calls.append((index, dataset, hp, is_random))
        if (dataset, hp) in self.missing:
            raise KeyError(hp)
        d = self.DATASETS[dataset]
        base = d * 10 + (2 if hp == "200" else 1)
        info = {"train-accuracy": 99.0, "valid-accuracy": base + 0.25, "test-accuracy": base + 0.5}
        if dataset == "cifar10":
            info.pop("valid-accuracy")
        return info


def test_official_column_mapping():
    api = FakeAPI()
    bench = OfficialBenchmark("NATS-tss-v1_0-3ffb9-simple", api=api)
    values = bench.lookup(ALL_SKIP)
    assert values == {
        "cifar10_test_200ep": 22.5,  # cifar10, hp 200, test
        "cifar100_test_200ep": 32.5,
        "imagenet16_120_test_200ep": 42.5,
        "cifar10_valid_val_12ep": 11.25,  # cifar10-valid, hp 12, valid (x-valid)
        "cifar10_test_12ep": 21.5,  # cifar10, hp 12, test (ori-test)
        "cifar100_val_12ep": 31.25,
        "cifar100_test_12ep": 31.5,
        "imagenet16_120_val_12ep": 41.25,
        "imagenet16_120_test_12ep": 41.5,
    }
    assert all(idx == 1835 and rnd is False for idx, _, _, rnd in api.calls)  # mean over seeds
    assert len(api.calls) == len({(d, hp) for _, d, hp, _ in api.calls}) == 7  # one call per (dataset, hp)
    assert bench.source.startswith("official NATS-tss-v1_0-3ffb9-simple (sha256 ")


def test_official_missing_schedule_is_none_and_index_checked():
    bench = OfficialBenchmark("NAS-Bench-201-v1_0-e61699.pth", api=FakeAPI(missing={("cifar100", "12")}))
    values = bench.lookup(NB201Arch.from_index(7))
    assert values["cifar100_val_12ep"] is None and values["cifar100_test_12ep"] is None
    assert values["cifar100_test_200ep"] == 32.5
    with pytest.raises(DataError, match="index"):
        OfficialBenchmark("x.pth", api=FakeAPI(shift=1)).lookup(ALL_SKIP)


@pytest.mark.parametrize("name", OFFICIAL_NAMES)
@pytest.mark.parametrize("sub", ["", "nas-bench-201"])
def test_find_official_files(tmp_path, monkeypatch, name, sub):
    loaded = []

    def fake_load(path):
        loaded.append(path)
        return FakeAPI()

    monkeypatch.setattr(OfficialBenchmark, "_load_api", staticmethod(fake_load))
    monkeypatch.setattr(bm, "_OFFICIAL_CACHE", {})
    target = tmp_path / sub / name
    target.parent.mkdir(parents=True, exist_ok=True)
    if name.endswith(".pth"):
        target.write_bytes(b"not really a benchmark")
    else:
        target.mkdir()
    bench = find_benchmark(tmp_path)
    assert isinstance(bench, OfficialBenchmark) and loaded == [target]
    assert find_benchmark(tmp_path) is bench  # loaded once per path
    assert name in bench.source
    assert bench.lookup(ALL_SKIP)["cifar10_test_200ep"] == 22.5
