"""Genotype value, text codec, quark0 derivation rule, model-size keys (docs/spaces/darts.md)."""

import pytest

from harness.errors import ArchFormatError
from harness.spaces.darts.genotype import (
    Genotype,
    conv_counts,
    derive_cell,
    early_stop,
    get_genotype,
    parse_genotype,
    size_key,
    zoo_genotypes,
)
from harness.spaces.darts.ops import PRIMITIVES
from harness.spaces.darts.zoo import zoo_entry, zoo_names, zoo_text

P = {name: k for k, name in enumerate(PRIMITIVES)}

# quark0/darts cnn/genotypes.py, transcribed independently of the YAML
SPEC_DARTS = {
    "DARTS_V1": (
        [
            ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 0),
            ("skip_connect", 0),
            ("sep_conv_3x3", 1),
            ("skip_connect", 0),
            ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 0),
            ("skip_connect", 2),
        ],
        [
            ("max_pool_3x3", 0),
            ("max_pool_3x3", 1),
            ("skip_connect", 2),
            ("max_pool_3x3", 0),
            ("max_pool_3x3", 0),
            ("skip_connect", 2),
            ("skip_connect", 2),
            ("avg_pool_3x3", 0),
        ],
    ),
    "DARTS_V2": (
        [
            ("sep_conv_3x3", 0),
            ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 0),
            ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 1),
            ("skip_connect", 0),
            ("skip_connect", 0),
            ("dil_conv_3x3", 2),
        ],
        [
            ("max_pool_3x3", 0),
            ("max_pool_3x3", 1),
            ("skip_connect", 2),
            ("max_pool_3x3", 1),
            ("max_pool_3x3", 0),
            ("skip_connect", 2),
            ("skip_connect", 2),
            ("max_pool_3x3", 1),
        ],
    ),
}

DARTS_V2_TEXT = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
    "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
    "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], "
    "reduce_concat=[2, 3, 4, 5])"
)


def uniform_rows(n_edges=14, value=0.0):
    return [[value] * len(PRIMITIVES) for _ in range(n_edges)]


# ---- value type ---------------------------------------------------------------------------


def test_namedtuple_fields_and_print():
    g = parse_genotype(DARTS_V2_TEXT)
    assert Genotype._fields == ("normal", "normal_concat", "reduce", "reduce_concat")
    assert str(g) == DARTS_V2_TEXT and repr(g) == DARTS_V2_TEXT
    g2 = Genotype(normal=g.normal, normal_concat=range(2, 6), reduce=tuple(g.reduce), reduce_concat=(2, 3, 4, 5))
    assert g2 == g and str(g2) == DARTS_V2_TEXT


def test_spec_genotypes_in_zoo():
    for name, (normal, reduce) in SPEC_DARTS.items():
        g = get_genotype(name)
        assert g.normal == normal and g.reduce == reduce
        assert g.normal_concat == g.reduce_concat == [2, 3, 4, 5]
    assert get_genotype("DARTS") == get_genotype("DARTS_V2")
    assert str(get_genotype("DARTS_V2")) == DARTS_V2_TEXT


def test_zoo_contents():
    names = set(zoo_names())
    for required in (
        "DARTS_V1",
        "DARTS_V2",
        "GDAS_V1",
        "GDAS_F1",
        "r101_e50_48_n7r3",
        "r118_e100_92_n4r1",
        "V2_r2_e100",
        "v2_r5_e200",
        "GDAS_MIXED_LEVEL1",
        "GDAS_MIXED_LEVEL2",
    ):
        assert required in names
        entry = zoo_entry(required)
        assert ":" in entry["source"] and "/" in entry["source"].split(":")[0]
    for name in ("r101_e50_48_n7r3", "r118_e100_92_n4r1", "V2_r2_e100", "v2_r5_e200"):
        assert zoo_entry(name)["inferred"] is True
    assert get_genotype("GDAS_F1").reduce is None
    with pytest.raises(KeyError):
        zoo_entry("NOPE")


@pytest.mark.parametrize("name", sorted(zoo_genotypes()))
def test_zoo_round_trip(name):
    text = zoo_text(name)
    g = parse_genotype(text)
    assert str(g) == text  # the stored text is canonical
    assert parse_genotype(str(g)) == g
    assert parse_genotype(name) == g


def test_parse_quark0_forms():
    # MiLeNAS-style multi-line text with range(2, 6)
    text = """Genotype(
        normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 1), ('skip_connect', 0),
                ('skip_connect', 1), ('skip_connect', 0), ('sep_conv_5x5', 1)], normal_concat=range(2, 6),
        reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2),
                ('avg_pool_3x3', 0), ('avg_pool_3x3', 0), ('skip_connect', 2)], reduce_concat=range(2, 6))"""
    g = parse_genotype(text)
    assert g == get_genotype("V2_r2_e100")
    assert "range" not in str(g) and "normal_concat=[2, 3, 4, 5]" in str(g)
    # AutoDL's stored (op, input, probability) triples: probability dropped
    g3 = parse_genotype(DARTS_V2_TEXT.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 2, 0.13)"))
    assert g3 == get_genotype("DARTS_V2")
    # positional fields, FRC text
    frc = parse_genotype(
        "Genotype("
        + str(get_genotype("GDAS_F1"))[len("Genotype(normal=") :]
        .replace("normal_concat=", "")
        .replace("reduce=", "")
        .replace("reduce_concat=", "")
    )
    assert frc == get_genotype("GDAS_F1")
    assert "reduce=None" in str(frc)


@pytest.mark.parametrize(
    "text, fragment",
    [
        (DARTS_V2_TEXT.replace("'dil_conv_3x3'", "'conv_9x9'"), "unknown op"),
        (DARTS_V2_TEXT.replace("'dil_conv_3x3'", "'sep_conv_7x7'"), "unknown op"),
        (DARTS_V2_TEXT.replace("('sep_conv_3x3', 1)", "('sep_conv_3x3', 2)", 1), "input index"),  # node 0: inputs 0..1
        (DARTS_V2_TEXT.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 5)"), "input index"),
        (DARTS_V2_TEXT.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', -1)"), "input index"),
        (DARTS_V2_TEXT.replace(", ('dil_conv_3x3', 2)]", "]"), "pairs"),
        (DARTS_V2_TEXT.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 2), ('skip_connect', 0)"), "pairs"),
        (DARTS_V2_TEXT[:-1], "syntax"),
        ("Genotype(normal=[('sep_conv_3x3', 0)", "syntax"),
        (DARTS_V2_TEXT.replace("Genotype(", "Foo("), "Genotype("),
        (DARTS_V2_TEXT.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=__import__('os').getcwd()"), "literal"),
        (DARTS_V2_TEXT.replace(", reduce_concat=[2, 3, 4, 5]", ""), "missing"),
        (DARTS_V2_TEXT.replace("reduce_concat=", "extra=[1], reduce_concat="), "unknown field"),
        (DARTS_V2_TEXT.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=[2, 3, 4, 9]"), "out of range"),
        ("", "empty"),
        ("NOT_A_ZOO_NAME", "unknown genotype name"),
        ("[1, 2, 3]", "Genotype("),
    ],
)
def test_parse_errors(text, fragment):
    with pytest.raises(ArchFormatError) as info:
        parse_genotype(text)
    assert fragment.lower() in str(info.value).lower()


def test_parse_error_is_value_error():
    with pytest.raises(ValueError):
        parse_genotype("Genotype(")


# ---- derivation rule ----------------------------------------------------------------------


def test_derive_basic_top2_and_order():
    W = uniform_rows(value=0.01)
    # node 0 (rows 0,1): input 1 stronger than input 0 -> emitted first
    W[0][P["dil_conv_5x5"]] = 0.3
    W[1][P["sep_conv_5x5"]] = 0.5
    # node 1 (rows 2,3,4): input 2 strongest, input 0 second, input 1 weakest -> dropped
    W[2][P["max_pool_3x3"]] = 0.4
    W[3][P["avg_pool_3x3"]] = 0.2
    W[4][P["skip_connect"]] = 0.6
    gene = derive_cell(W)
    assert gene[:4] == [("sep_conv_5x5", 1), ("dil_conv_5x5", 0), ("skip_connect", 2), ("max_pool_3x3", 0)]
    assert len(gene) == 8


def test_derive_excludes_none():
    W = uniform_rows(value=0.1)
    for row in W:
        row[P["none"]] = 0.9  # `none` dominates everywhere but is never chosen nor counted
    W[1][P["sep_conv_3x3"]] = 0.2
    gene = derive_cell(W)
    assert all(op != "none" for op, _ in gene)
    assert gene[0] == ("sep_conv_3x3", 1)
    assert gene[1] == ("max_pool_3x3", 0)  # all remaining equal: first non-none op wins


def test_derive_ties():
    W = uniform_rows(value=0.125)
    gene = derive_cell(W)
    # equal strengths keep the smaller input index; equal op probs pick the first non-none op
    assert gene == [("max_pool_3x3", 0), ("max_pool_3x3", 1)] * 4
    W = uniform_rows(value=0.1)
    W[3][P["dil_conv_3x3"]] = 0.3  # node 1, input 1
    W[4][P["sep_conv_5x5"]] = 0.3  # node 1, input 2: same strength -> input 1 first
    W[4][P["dil_conv_5x5"]] = 0.3  # op tie within the edge -> sep_conv_5x5 (earlier in PRIMITIVES)
    assert derive_cell(W)[2:4] == [("dil_conv_3x3", 1), ("sep_conv_5x5", 2)]


def test_derive_distinct_inputs():
    W = uniform_rows(value=0.0)
    W[0][P["sep_conv_3x3"]] = 0.9
    W[0][P["sep_conv_5x5"]] = 0.8  # second-best pair also on input 0 -> not taken (distinct inputs)
    W[1][P["avg_pool_3x3"]] = 0.1
    assert derive_cell(W)[:2] == [("sep_conv_3x3", 0), ("avg_pool_3x3", 1)]


def test_derive_wrong_rows():
    with pytest.raises(ValueError):
        derive_cell(uniform_rows(13))


# ---- model-size keys / early stop ---------------------------------------------------------


def test_conv_counts_and_keys():
    v2 = get_genotype("DARTS_V2")
    assert conv_counts(v2) == {"normal": 6, "reduce": 0}
    assert size_key(v2) == 60 and early_stop(v2)
    v1 = get_genotype("DARTS_V1")
    assert conv_counts(v1) == {"normal": 5, "reduce": 0} and not early_stop(v1)
    r101 = get_genotype("r101_e50_48_n7r3")
    assert conv_counts(r101) == {"normal": 7, "reduce": 3} and size_key(r101) == 73
    assert size_key(get_genotype("r118_e100_92_n4r1")) == 41
    gdas = get_genotype("GDAS_V1")
    assert conv_counts(gdas) == {"normal": 4, "reduce": 8} and size_key(gdas) == 48
    frc = get_genotype("GDAS_F1")
    assert conv_counts(frc) == {"normal": 3, "reduce": 0} and not early_stop(frc)
    # 6 normal convs but a conv in the reduction cell -> no early stop
    g = Genotype(v2.normal, v2.normal_concat, [("dil_conv_3x3", 0)] + v2.reduce[1:], v2.reduce_concat)
    assert conv_counts(g)["reduce"] == 1 and not early_stop(g)
    # name encodes the counts for every MiLeNAS r*_n?r? genotype
    for name in zoo_names():
        if name.startswith("r1") and "_n" in name:
            n, r = name.split("_n")[1][0], name.split("_n")[1][2]
            assert conv_counts(get_genotype(name)) == {"normal": int(n), "reduce": int(r)}


def test_parse_accepts_quark0_namedtuple():
    from collections import namedtuple

    Quark0Genotype = namedtuple("Genotype", "normal normal_concat reduce reduce_concat")
    v1 = get_genotype("DARTS_V1")
    q = Quark0Genotype(v1.normal, range(2, 6), v1.reduce, range(2, 6))
    assert parse_genotype(q) == v1
    assert str(parse_genotype(q)) == str(v1)
