"""NAS-Bench-201 architecture value, its official string, and the official benchmark index
(docs/spaces/nb201.md#architecture-string-and-benchmark-index).

An architecture is the 6 operation names of the cell's edges in α row order
(``1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2``).  Its text form is the official string
``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` (every edge written out, ``none`` included).

The index is the position in the official ``meta_archs`` list, re-created as
AutoDL-Projects ``exps/NAS-Bench-201/main.py generate_meta_info`` does: enumerate all 5^6 cells
(``Structure.gen_all``: node 1 outermost, within a node the edge from input 0 slowest, ops in
``NB201_OPS`` order — i.e. the lexicographic product over the 6 edges in α row order), then
``random.seed(88); random.shuffle(archs)``.
"""

from __future__ import annotations

import itertools
import random
import re
from functools import lru_cache
from typing import Dict, Iterable, List, Tuple

from harness.errors import ArchFormatError
from harness.spaces.nb201.ops import NB201_OPS

MAX_NODES = 4
#: (node, input) of every edge, in α row order
EDGES: Tuple[Tuple[int, int], ...] = tuple((i, j) for i in range(1, MAX_NODES) for j in range(i))
#: "i<-j" keys in α row order (= sorted keys, xautodl ``edge2index``)
EDGE_KEYS: Tuple[str, ...] = tuple(f"{i}<-{j}" for i, j in EDGES)
NUM_ARCHS = len(NB201_OPS) ** len(EDGES)  # 15,625

EXPECTED_FORMAT = "|op~0|+|op~0|op~1|+|op~0|op~1|op~2|"
_OPS_TEXT = ", ".join(NB201_OPS)
_EXAMPLE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def _format_error(text: str, problem: str) -> ArchFormatError:
    return ArchFormatError(
        f"malformed NAS-Bench-201 arch string {text!r}: {problem}. Expected the format "
        f"{EXPECTED_FORMAT} (3 nodes joined by '+', every edge written out in ascending input "
        f"order, op one of: {_OPS_TEXT}), e.g. {_EXAMPLE}"
    )


class NB201Arch(tuple):
    """Immutable NB201 cell: a tuple of 6 op names in α row order."""

    __slots__ = ()

    def __new__(cls, ops: Iterable[str]):
        ops = tuple(ops)
        if len(ops) != len(EDGES):
            raise ArchFormatError(f"a NAS-Bench-201 cell has {len(EDGES)} edges, got {len(ops)} ops: {ops!r}")
        for op in ops:
            if op not in NB201_OPS:
                raise ArchFormatError(f"unknown NAS-Bench-201 operation {op!r}; expected one of: {_OPS_TEXT}")
        return super().__new__(cls, ops)

    # -- text form -------------------------------------------------------------------------
    def __str__(self) -> str:
        nodes = []
        for i in range(1, MAX_NODES):
            parts = [f"{self[EDGES.index((i, j))]}~{j}" for j in range(i)]
            nodes.append("|" + "|".join(parts) + "|")
        return "+".join(nodes)

    def __repr__(self) -> str:
        return f"NB201Arch({str(self)!r})"

    def tostr(self) -> str:
        """Same as ``str(arch)`` (the xautodl / nas_201_api ``Structure.tostr`` name)."""
        return str(self)

    def edges(self) -> List[Tuple[int, int, str]]:
        """``(input node j, node i, op)`` of every edge ``i<-j``, in α row order (``none`` included)."""
        return [(j, i, op) for (i, j), op in zip(EDGES, self)]

    @classmethod
    def parse(cls, text: str) -> "NB201Arch":
        if isinstance(text, NB201Arch):
            return text
        if not isinstance(text, str):
            raise ArchFormatError(f"a NAS-Bench-201 arch string must be a str, got {type(text).__name__}")
        s = text.strip()
        nodes = s.split("+")
        if len(nodes) != MAX_NODES - 1:
            raise _format_error(text, f"expected {MAX_NODES - 1} nodes separated by '+', found {len(nodes)}")
        ops: Dict[Tuple[int, int], str] = {}
        for i, node in enumerate(nodes, start=1):
            if not (len(node) >= 2 and node.startswith("|") and node.endswith("|")):
                raise _format_error(text, f"node {i} ({node!r}) must start and end with '|'")
            items = node[1:-1].split("|")
            if len(items) != i:
                raise _format_error(
                    text,
                    f"node {i} must list exactly {i} incoming edge(s) "
                    f"(inputs 0..{i - 1}), found {len(items)} in {node!r}",
                )
            for j, item in enumerate(items):
                m = re.fullmatch(r"([A-Za-z0-9_]+)~(\d+)", item)
                if not m:
                    raise _format_error(text, f"edge {item!r} of node {i} is not of the form op~input")
                op, src = m.group(1), int(m.group(2))
                if op not in NB201_OPS:
                    raise _format_error(text, f"unknown operation {op!r} on node {i}")
                if src != j:
                    raise _format_error(
                        text,
                        f"edge {j + 1} of node {i} has input {src}, expected {j} "
                        f"(inputs must be 0..{i - 1} in ascending order)",
                    )
                ops[(i, j)] = op
        return cls(ops[e] for e in EDGES)

    # -- benchmark index -------------------------------------------------------------------
    @property
    def index(self) -> int:  # type: ignore[override]  # the official benchmark index, not tuple.index
        return _arch_to_index()[tuple(self)]

    @classmethod
    def from_index(cls, index: int) -> "NB201Arch":
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"a NAS-Bench-201 index must be an int, got {type(index).__name__}")
        if not 0 <= index < NUM_ARCHS:
            raise IndexError(f"NAS-Bench-201 index {index} out of range 0..{NUM_ARCHS - 1}")
        return cls(all_archs()[index])


@lru_cache(maxsize=1)
def _meta_arch_tuples() -> Tuple[Tuple[str, ...], ...]:
    archs: List[Tuple[str, ...]] = list(itertools.product(NB201_OPS, repeat=len(EDGES)))
    # == `random.seed(88); random.shuffle(archs)` (the module functions are methods of one
    # Random instance), without disturbing the caller's global `random` stream
    random.Random(88).shuffle(archs)
    return tuple(archs)


def all_archs() -> Tuple[Tuple[str, ...], ...]:
    """The official ``meta_archs`` order as op tuples (position = NAS-Bench-201 index); cached."""
    return _meta_arch_tuples()


@lru_cache(maxsize=1)
def _arch_to_index() -> Dict[Tuple[str, ...], int]:
    return {a: i for i, a in enumerate(_meta_arch_tuples())}
