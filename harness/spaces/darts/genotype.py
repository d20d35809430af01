"""The DARTS ``Genotype`` value, its text form, the quark0 derivation rule and model-size keys.

``Genotype`` is a namedtuple with quark0's fields (``normal normal_concat reduce reduce_concat``,
quark0/darts:cnn/genotypes.py), normalised on construction to lists of ``(op, input)`` tuples and
lists of ints, so that ``str(genotype)`` is exactly quark0's printed form::

    Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ...], normal_concat=[2, 3, 4, 5],
             reduce=[...], reduce_concat=[2, 3, 4, 5])

GDAS fixed-reduction-cell (FRC) genotypes have ``reduce=None`` (as GDAS_F1 in
D-X-Y/AutoDL-Projects:lib/nas/genotypes.py): the reduction cells are the fixed GDAS cell.
"""

from __future__ import annotations

import ast
from collections import namedtuple
from typing import Any, Dict, List, Optional, Sequence, Tuple

from harness.errors import ArchFormatError
from harness.spaces.darts.ops import FIRST_CONV_INDEX, PRIMITIVES
from harness.spaces.darts.zoo import _load as _zoo_entries
from harness.spaces.darts.zoo import zoo_entry, zoo_names, zoo_text

_GenotypeBase = namedtuple("Genotype", "normal normal_concat reduce reduce_concat")  # type: ignore[name-match]


def _norm_pairs(pairs: Any) -> Optional[List[Tuple[str, int]]]:
    if pairs is None:
        return None
    return [(str(p[0]), int(p[1])) for p in pairs]


def _norm_concat(concat: Any) -> List[int]:
    return [int(c) for c in concat]


class Genotype(_GenotypeBase):
    """quark0-compatible genotype; ``reduce is None`` marks a GDAS fixed reduction cell (FRC)."""

    __slots__ = ()

    def __new__(cls, normal, normal_concat, reduce, reduce_concat):
        return super().__new__(
            cls, _norm_pairs(normal), _norm_concat(normal_concat), _norm_pairs(reduce), _norm_concat(reduce_concat)
        )

    @property
    def fixed_reduction(self) -> bool:
        return self.reduce is None

    def __str__(self) -> str:
        return (
            f"Genotype(normal={self.normal!r}, normal_concat={self.normal_concat!r}, "
            f"reduce={self.reduce!r}, reduce_concat={self.reduce_concat!r})"
        )

    __repr__ = __str__


# Fair DARTS variable cells (harness.spaces.darts.sparse: derivation rule, evaluation cell)

Triple = Tuple[str, int, int]


def _norm_triples(items: Any) -> List[Triple]:
    return [(str(t[0]), int(t[1]), int(t[2])) for t in items]


class SparseGenotype(Genotype):
    """A Fair DARTS genotype (docs/spaces/darts.md#variable-cells): ``normal`` / ``reduce`` are lists of
    ``(op, to, from)`` (to = node 2, 3, ...; from = an earlier state); the concat lists are kept as written
    (``harness.spaces.darts.sparse.DCOCell`` concatenates the present nodes)."""

    __slots__ = ()

    def __new__(cls, normal, normal_concat, reduce, reduce_concat):
        return _GenotypeBase.__new__(
            cls,
            _norm_triples(normal),
            [int(c) for c in normal_concat],
            _norm_triples(reduce),
            [int(c) for c in reduce_concat],
        )

    @property
    def fixed_reduction(self) -> bool:
        return False


def is_sparse_fields(fields: Dict[str, Any]) -> bool:
    """True when the ``normal`` entries are ``(op, to, from)`` triples with an integer third element, or empty (a
    cell with no op above the threshold; a quark0 genotype is never empty)."""
    normal = fields.get("normal")
    if not isinstance(normal, (list, tuple)):
        return False
    return all(
        isinstance(t, (list, tuple)) and len(t) == 3 and isinstance(t[2], int) and not isinstance(t[2], bool)
        for t in normal
    )


def _check_triples(value: Any, field: str) -> List[Triple]:
    if not isinstance(value, (list, tuple)):
        raise ArchFormatError(f"{field}: expected a list of (op, to, from) triples, got {type(value).__name__}")
    out = []
    for p, t in enumerate(value):
        if not isinstance(t, (list, tuple)) or len(t) != 3:
            raise ArchFormatError(f"{field}[{p}]: expected an (op, to, from) triple, got {t!r}")
        op, to, frm = t
        if not isinstance(op, str) or op not in PRIMITIVES or op == "none":
            ops = ", ".join(o for o in PRIMITIVES if o != "none")
            raise ArchFormatError(f"{field}[{p}]: unknown op {op!r}; known ops: {ops}")
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in (to, frm)) or not 0 <= frm < to or to < 2:
            raise ArchFormatError(f"{field}[{p}]: node indices (to={to!r}, from={frm!r}) need 0 <= from < to, to >= 2")
        out.append((op, to, frm))
    return out


def validate_sparse_genotype(fields: Dict[str, Any]) -> SparseGenotype:
    """Check raw field values of a Fair DARTS genotype (ArchFormatError on any problem)."""
    if fields.get("reduce") is None:
        raise ArchFormatError("reduce: a Fair DARTS genotype needs its reduction cell's triples")
    normal, reduce = _check_triples(fields["normal"], "normal"), _check_triples(fields["reduce"], "reduce")
    concats = []
    for name in ("normal_concat", "reduce_concat"):
        value = fields[name]
        value = list(value) if isinstance(value, range) else value
        if not isinstance(value, (list, tuple)) or not all(isinstance(c, int) and c >= 0 for c in value):
            raise ArchFormatError(f"{name}: expected a list of state indices, got {value!r}")
        concats.append(list(value))
    return SparseGenotype(normal, concats[0], reduce, concats[1])


#: concat of a 4-node DARTS cell
DEFAULT_CONCAT = [2, 3, 4, 5]


# --------------------------------------------------------------------------------------------
# parsing

_FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")


def _literal(node: ast.AST, what: str) -> Any:
    """A literal value, also accepting ``range(a, b)`` / ``range(b)`` (quark0/MiLeNAS write concat so)."""
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "range"
        and not node.keywords
        and 1 <= len(node.args) <= 3
    ):
        try:
            args = [ast.literal_eval(a) for a in node.args]
        except ValueError:
            raise ArchFormatError(f"{what}: range() takes integer literals") from None
        if not all(isinstance(a, int) and not isinstance(a, bool) for a in args):
            raise ArchFormatError(f"{what}: range() takes integer literals")
        return list(range(*args))
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError):
        raise ArchFormatError(
            f"{what}: not a literal value (only lists, tuples, strings, numbers, None and range(a, b) are allowed)"
        ) from None


def _check_pairs(value: Any, field: str, steps: Optional[int]) -> List[Tuple[str, int]]:
    if not isinstance(value, (list, tuple)):
        raise ArchFormatError(f"{field}: expected a list of (op, input) pairs, got {type(value).__name__}")
    n = len(value)
    if steps is not None and n != 2 * steps:
        raise ArchFormatError(f"{field}: expected {2 * steps} (op, input) pairs (two per node, {steps} nodes), got {n}")
    if n == 0 or n % 2:
        raise ArchFormatError(f"{field}: expected an even, non-zero number of (op, input) pairs, got {n}")
    out = []
    for p, pair in enumerate(value):
        # AutoDL's stored genotypes carry the probability as a third element: accepted and dropped
        if (
            not isinstance(pair, (list, tuple))
            or len(pair) not in (2, 3)
            or (len(pair) == 3 and not isinstance(pair[2], (int, float)))
        ):
            raise ArchFormatError(f"{field}[{p}]: expected an (op, input) pair, got {pair!r}")
        op, idx = pair[0], pair[1]
        if not isinstance(op, str) or op not in PRIMITIVES:
            raise ArchFormatError(f"{field}[{p}]: unknown op {op!r}; known ops: {', '.join(PRIMITIVES)}")
        node = p // 2
        if not isinstance(idx, int) or isinstance(idx, bool) or not 0 <= idx < node + 2:
            raise ArchFormatError(
                f"{field}[{p}]: input index {idx!r} is invalid for node {node} (allowed 0..{node + 1})"
            )
        out.append((op, idx))
    return out


def _check_concat(value: Any, field: str, n_nodes: int) -> List[int]:
    if isinstance(value, range):
        value = list(value)
    if not isinstance(value, (list, tuple)) or not value:
        raise ArchFormatError(f"{field}: expected a non-empty list of state indices, got {value!r}")
    for c in value:
        if not isinstance(c, int) or isinstance(c, bool) or not 0 <= c < n_nodes + 2:
            raise ArchFormatError(f"{field}: state index {c!r} out of range 0..{n_nodes + 1}")
    if len(set(value)) != len(value):
        raise ArchFormatError(f"{field}: repeated state index in {list(value)!r}")
    return list(value)


def validate_genotype(fields: Dict[str, Any], steps: Optional[int] = 4) -> Genotype:
    """Check raw field values and build a ``Genotype`` (ArchFormatError on any problem); Fair DARTS triples
    ``(op, to, from)`` give a ``SparseGenotype`` (``harness.spaces.darts.sparse``)."""
    if is_sparse_fields(fields):
        return validate_sparse_genotype(fields)
    normal = _check_pairs(fields["normal"], "normal", steps)
    n_nodes = len(normal) // 2
    normal_concat = _check_concat(fields["normal_concat"], "normal_concat", n_nodes)
    reduce = fields["reduce"]
    if reduce is not None:
        reduce = _check_pairs(reduce, "reduce", steps)
        r_nodes = len(reduce) // 2
    else:
        r_nodes = 4  # the GDAS fixed reduction cell concatenates 4 branches
    reduce_concat = _check_concat(fields["reduce_concat"], "reduce_concat", r_nodes)
    return Genotype(normal, normal_concat, reduce, reduce_concat)


def parse_genotype(text: Any, steps: Optional[int] = 4) -> Genotype:
    """Parse quark0's printed ``Genotype(...)`` text, or a zoo name such as ``DARTS_V2``.

    Safe: the text is read with ``ast`` (no eval).  ``range(2, 6)`` is accepted for the concat lists.
    ``steps`` = the required number of nodes (two pairs each); ``None`` accepts any even count.
    Already-built ``Genotype`` values are validated and returned.  Raises ``ArchFormatError``.
    """
    if isinstance(text, tuple) and getattr(text, "_fields", None) == _GenotypeBase._fields:
        return validate_genotype(dict(zip(_GenotypeBase._fields, text)), steps)  # ours, or quark0's namedtuple
    if not isinstance(text, str):
        raise ArchFormatError(f"expected genotype text, got {type(text).__name__}")
    s = text.strip()
    if not s:
        raise ArchFormatError("empty genotype text")
    if s.isidentifier():
        if s in zoo_names():
            return parse_genotype(zoo_text(s), steps)
        if s != "Genotype":
            raise ArchFormatError(f"unknown genotype name {s!r}; known names: {', '.join(zoo_names())}")
    try:
        tree = ast.parse(s, mode="eval")
    except SyntaxError as e:
        raise ArchFormatError(f"genotype text is not valid syntax ({e.msg} at column {e.offset}): {s[:80]!r}") from None
    call = tree.body
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "Genotype"):
        raise ArchFormatError(
            f"genotype text must look like Genotype(normal=[...], normal_concat=[...], "
            f"reduce=[...], reduce_concat=[...]); got {s[:80]!r}"
        )
    if len(call.args) > len(_FIELDS):
        raise ArchFormatError(f"Genotype(...) takes at most {len(_FIELDS)} fields, got {len(call.args)} positional")
    fields: Dict[str, Any] = {}
    for name, node in zip(_FIELDS, call.args):
        fields[name] = _literal(node, name)
    for kw in call.keywords:
        if kw.arg is None or kw.arg not in _FIELDS:
            raise ArchFormatError(f"Genotype(...) has an unknown field {kw.arg!r}; fields: {', '.join(_FIELDS)}")
        if kw.arg in fields:
            raise ArchFormatError(f"Genotype(...) field {kw.arg!r} given twice")
        fields[kw.arg] = _literal(kw.value, kw.arg)
    missing = [f for f in _FIELDS if f not in fields]
    if missing:
        raise ArchFormatError(f"Genotype(...) is missing field(s): {', '.join(missing)}")
    return validate_genotype(fields, steps)


# --------------------------------------------------------------------------------------------
# derivation (quark0/darts:cnn/model_search.py genotype(); docs/spaces/darts.md#derivation-rule)


def derive_cell(
    weights: Sequence[Sequence[float]], steps: int = 4, ops: Sequence[str] = PRIMITIVES
) -> List[Tuple[str, int]]:
    """The quark0 rule on one cell's probabilities (rows = edges in node order, columns = ``ops``, an op set of
    ``OP_SETS``).

    Per node: rank inputs by their strongest non-``none`` probability (stable sort: ties keep the
    smaller input), keep the top 2 distinct inputs, and for each the first maximal non-``none`` op.
    Without ``none`` in ``ops`` every op counts (DrNAS DARTS-space/model_search.py:227-261, SDARTS ``s5``).
    """
    none = list(ops).index("none") if "none" in ops else -1
    rows = [[float(v) for v in row] for row in weights]
    expected = sum(2 + i for i in range(steps))
    if len(rows) != expected:
        raise ValueError(f"expected {expected} edge rows for {steps} nodes, got {len(rows)}")
    gene: List[Tuple[str, int]] = []
    start, n = 0, 2
    for _ in range(steps):
        W = rows[start : start + n]
        edges = sorted(range(n), key=lambda j: -max(W[j][k] for k in range(len(W[j])) if k != none))[:2]
        for j in edges:
            k_best = None
            for k in range(len(W[j])):
                if k != none and (k_best is None or W[j][k] > W[j][k_best]):
                    k_best = k
            assert k_best is not None  # every row has an op besides `none`
            gene.append((ops[k_best], j))
        start += n
        n += 1
    return gene


def cell_edges(pairs: Sequence[Tuple[Any, ...]]) -> List[Tuple[int, int, str]]:
    """``(input, node, op)`` of a cell's pairs: inputs 0, 1 are c_{k-2}, c_{k-1}, nodes are 2, 3, ... (two pairs
    each, in quark0's ``Genotype`` order)."""
    if pairs and len(pairs[0]) == 3:  # a Fair DARTS cell: (op, to, from) triples
        return [(int(t[2]), int(t[1]), str(t[0])) for t in pairs]
    return [(j, idx // 2 + 2, op) for idx, (op, j) in enumerate(pairs)]


# --------------------------------------------------------------------------------------------
# model size keys and early stopping (chaoyanghe/MiLeNAS search_space/model_search.py;
# docs/spaces/darts.md#model-size-keys-and-early-stopping-milenas)


def count_convs(pairs: Optional[Sequence[Tuple[Any, ...]]]) -> int:
    """Number of (op, input) pairs whose op index in PRIMITIVES is >= 4 (sep/dil convs); 0 for None."""
    if pairs is None:
        return 0
    return sum(1 for p in pairs if PRIMITIVES.index(p[0]) >= FIRST_CONV_INDEX)  # p: a pair, or a Fair DARTS triple


def conv_counts(genotype: Genotype) -> Dict[str, int]:
    """{"normal": n, "reduce": r}; an FRC genotype (reduce None) has no searched pairs: r = 0."""
    return {"normal": count_convs(genotype.normal), "reduce": count_convs(genotype.reduce)}


def size_key(genotype: Genotype) -> int:
    """MiLeNAS model-size key n·10 + r."""
    c = conv_counts(genotype)
    return c["normal"] * 10 + c["reduce"]


def early_stop(genotype: Genotype) -> bool:
    """MiLeNAS early stopping: normal cell has 6 conv ops and the reduction cell 0.

    Never true for an FRC genotype (there is no searched reduction cell to test).
    """
    if genotype.reduce is None:
        return False
    c = conv_counts(genotype)
    return c["normal"] == 6 and c["reduce"] == 0


def get_genotype(name: str):
    """The parsed ``Genotype`` of a zoo name."""
    zoo_entry(name)  # clear KeyError for unknown names
    return parse_genotype(zoo_text(name), steps=None)


def zoo_genotypes() -> Dict[str, Any]:
    """{canonical name: Genotype} for every entry (aliases left out)."""
    out = {}
    for name, entry in _zoo_entries().items():
        if name == entry["name"]:
            out[name] = get_genotype(name)
    return out
