"""The all-methods report tables (reports/all_methods.py): any registered method, published beside, Δ to MiLeNAS
with its interval, the optional per-record columns."""

from __future__ import annotations

import pytest

from reports import all_methods as AM
from reports import published as P


def rec(method, seed, c10, space="nb201", eig=None, params=None):
    epoch = {"epoch": 0}
    if eig is not None:
        epoch["hooks"] = {"collapse": {"eigenvalue": eig, "mixing_entropy": 1.0}}
    info = {"benchmark": {"cifar10_test_200ep": c10, "cifar100_test_200ep": c10 - 20, "imagenet16_120_test_200ep": 40}}
    if params is not None:
        info = {"params_M": params}
    return {
        "space": space,
        "kind": "search",
        "method": method,
        "variant": {},
        "seed": seed,
        "scale": "cpu",
        "status": "ok",
        "epochs": [{**epoch, "val_acc": 50.0}],
        "final": {"arch_info": info, "seconds_per_iteration": 0.5},
    }


def test_benchmark_table_has_every_method_published_and_the_difference_to_milenas():
    records = [
        rec(m, s, c10)
        for m, base in (("milenas", 90), ("drnas", 93), ("fair-darts", 80))
        for s, c10 in ((0, base), (1, base + 1), (2, base - 1))
    ]
    (t,) = AM.all_tables(records, P.load_published())
    rows = {r[0]: r for r in t.rows}
    assert set(rows) == {"MiLeNAS", "DrNAS", "Fair DARTS"}
    c10_pub = t.columns.index("CIFAR-10 published")
    assert rows["DrNAS"][c10_pub].startswith("94.36")  # data/published/drnas.yaml
    assert rows["Fair DARTS"][c10_pub] == "none found"
    delta = rows["DrNAS"][t.columns.index(next(c for c in t.columns if c.startswith("Δ")))]
    assert delta.startswith("3.00 [") and rows["MiLeNAS"][-2] == "reference"
    assert not any("λ_max" in c for c in t.columns)  # no record has the collapse value: no column


def test_a_per_record_column_appears_when_records_carry_it():
    records = [rec("milenas", s, 90, eig=1.0 + s) for s in range(2)] + [
        rec("sdarts-rs", s, 91, eig=0.5) for s in range(2)
    ]
    (t,) = AM.all_tables(records, P.load_published())
    col = next(c for c in t.columns if "λ_max" in c)
    assert t.rows[0][t.columns.index(col)].startswith("1.50 ± 0.71")


def test_evaluation_space_table_shows_found_cell_sizes():
    records = [
        rec(m, s, 0, space="darts", params=p) for m, p in (("milenas", 2.0), ("fair-darts", None)) for s in (0, 1)
    ]
    (t,) = AM.all_tables(records, P.load_published())
    rows = {r[0]: r for r in t.rows}
    assert rows["MiLeNAS"][3].startswith("2.000 ± 0.000") and rows["Fair DARTS"][3] == "missing"
    assert "2.54" in rows["Fair DARTS"][t.columns.index("Published error %")]
    assert "no op kept" in t.caption


@pytest.mark.parametrize("n_methods", [0, 1])
def test_no_table_without_two_methods(n_methods):
    records = [rec("milenas", s, 90) for s in range(2)] if n_methods else []
    assert AM.all_tables(records, P.load_published()) == []
