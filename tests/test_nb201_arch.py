"""NB201Arch: official string codec, parse errors, official benchmark index
(docs/spaces/nb201.md#architecture-string-and-benchmark-index)."""

from __future__ import annotations

import csv
import os
import pickle
import random
from pathlib import Path

import pytest

from harness.errors import ArchFormatError
from harness.spaces.nb201.arch import EDGE_KEYS, NUM_ARCHS, NB201Arch, all_archs


def _data_dir() -> Path:
    default = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    return Path(os.environ.get("HARNESS_DATA") or default)


CSV = _data_dir() / "nas-bench-201" / "nb201_accuracy.csv"

ANCHORS = {
    0: "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
    9: "|avg_pool_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|",
    123: "|avg_pool_3x3~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|",
    11472: "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|",
}


def _uniform(op: str) -> str:
    return f"|{op}~0|+|{op}~0|{op}~1|+|{op}~0|{op}~1|{op}~2|"


@pytest.mark.parametrize("index,text", sorted(ANCHORS.items()))
def test_index_anchors_by_string(index, text):
    arch = NB201Arch.parse(text)
    assert arch.index == index
    assert str(NB201Arch.from_index(index)) == text


@pytest.mark.parametrize(
    "op,index", [("skip_connect", 1835), ("none", 1651), ("nor_conv_3x3", 1462), ("nor_conv_1x1", 4317)]
)
def test_index_anchors_uniform_cells(op, index):
    arch = NB201Arch([op] * 6)
    assert arch.index == index
    assert str(arch) == _uniform(op)
    assert NB201Arch.from_index(index) == arch


def test_enumeration_is_the_seeded_shuffle_of_all_cells():
    archs = all_archs()
    assert len(archs) == NUM_ARCHS == 15625 == len(set(archs))
    assert all_archs() is archs  # cached
    state = random.getstate()
    NB201Arch.from_index(5)
    assert random.getstate() == state  # the caller's `random` stream is untouched


def test_codec_round_trip_all_archs_vs_compact_table():
    assert CSV.is_file(), f"compact table missing: {CSV} (set HARNESS_DATA)"
    seen = set()
    with open(CSV, newline="") as fh:
        for row in csv.DictReader(fh):
            index, text = int(row["index"]), row["arch"]
            arch = NB201Arch.parse(text)
            assert str(arch) == text
            assert arch.index == index
            assert NB201Arch.from_index(index) == arch
            seen.add(index)
    assert seen == set(range(NUM_ARCHS))


def test_value_semantics():
    a = NB201Arch.parse(ANCHORS[0])
    b = NB201Arch(["avg_pool_3x3", "nor_conv_1x1", "skip_connect", "nor_conv_1x1", "skip_connect", "skip_connect"])
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a[0] == "avg_pool_3x3" and len(a) == len(EDGE_KEYS) == 6
    with pytest.raises(TypeError):
        a[0] = "none"  # type: ignore[index]
    with pytest.raises(AttributeError):
        a.foo = 1  # type: ignore[attr-defined]
    assert pickle.loads(pickle.dumps(a)) == a and isinstance(pickle.loads(pickle.dumps(a)), NB201Arch)
    assert a.tostr() == str(a) and ANCHORS[0] in repr(a)
    assert NB201Arch.parse("  " + ANCHORS[0] + "\n") == a  # surrounding whitespace is tolerated
    assert NB201Arch.parse(a) is a


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("|conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown operation 'conv_5x5'"),
        ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "has input 1, expected 0"),
        ("|none~0|+|none~1|none~0|+|none~0|none~1|none~2|", "has input 1, expected 0"),  # wrong order
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 must list exactly 2"),  # missing edge
        ("|none~0|+|none~0|none~1|", "expected 3 nodes"),  # missing node
        ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|+|none~0|", "expected 3 nodes"),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2", "must start and end with '|'"),
        ("|none0|+|none~0|none~1|+|none~0|none~1|none~2|", "not of the form op~input"),
        ("|none~0|+|none~0|none~1|+|none~0||none~2|", "not of the form op~input"),
        ("", "expected 3 nodes"),
        ("hello", "expected 3 nodes"),
    ],
)
def test_parse_errors(text, fragment):
    with pytest.raises(ArchFormatError) as exc:
        NB201Arch.parse(text)
    msg = str(exc.value)
    assert fragment in msg
    assert "|op~0|+|op~0|op~1|+|op~0|op~1|op~2|" in msg  # shows the expected format
    assert isinstance(exc.value, ValueError)


def test_constructor_and_index_errors():
    with pytest.raises(ArchFormatError):
        NB201Arch(["none"] * 5)
    with pytest.raises(ArchFormatError, match="unknown NAS-Bench-201 operation"):
        NB201Arch(["none"] * 5 + ["max_pool_3x3"])
    with pytest.raises(ArchFormatError):
        NB201Arch.parse(123)  # type: ignore[arg-type]
    for bad in (-1, NUM_ARCHS):
        with pytest.raises(IndexError, match="out of range"):
            NB201Arch.from_index(bad)
    with pytest.raises(TypeError):
        NB201Arch.from_index("3")  # type: ignore[arg-type]


def test_strings_agree_with_official_api_parsers():
    """nas_201_api / nats_bench parse our strings into the same (op, input) lists, in α row order."""
    nas_201_api = pytest.importorskip("nas_201_api")
    nats_utils = pytest.importorskip("nats_bench.genotype_utils")
    for index in (0, 9, 123, 1835, 11472, 15624):
        arch = NB201Arch.from_index(index)
        lists = nas_201_api.NASBench201API.str2lists(str(arch))
        flat = [(op, j) for node in lists for (op, j) in node]
        assert flat == [(op, int(k.split("<-")[1])) for op, k in zip(arch, EDGE_KEYS)]
        assert nats_utils.topology_str2structure(str(arch)).tostr() == str(arch)
