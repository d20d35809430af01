"""Tables, verdicts and the report build from the synthetic fixture run store."""

import csv
import io
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixtures.runstore import fixture_records, write_fixture_store  # noqa: E402

from reports import comparisons as C  # noqa: E402
from reports import published as P  # noqa: E402
from reports import runs as R  # noqa: E402
from reports import summary as SM  # noqa: E402
from reports import tables as T  # noqa: E402
from reports import verdicts as V  # noqa: E402


@pytest.fixture(scope="module")
def pub():
    return P.load_published()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    write_fixture_store(root)
    return root


@pytest.fixture(scope="module")
def recs(store):
    return R.load(store)


def _row(t, method, source="this harness"):
    return next(r for r in t.rows if r[0] == method and r[1] == source)


def test_fixture_store_is_schema_valid(recs):
    assert len(recs) == len(fixture_records())
    for r in recs:
        assert r["schema"] == "harness.run/1"
        for k in (
            "kind",
            "run_id",
            "label",
            "space",
            "method",
            "variant",
            "seed",
            "scale",
            "status",
            "config",
            "config_hash",
            "provenance",
            "epochs",
            "final",
        ):
            assert k in r


def test_published_files(pub):
    assert set(pub) >= {"milenas", "darts", "gdas", "nb201"}
    rows = P.milenas_table1_rows(pub)
    assert rows[0]["error_mean"] == 2.51 and rows[0]["genotype_status"] == "inferred"
    assert P.gumbel_reference(pub)["milenas-gumbel"]["search_val_acc"] == 69.56
    sets = P.nb201_sets(pub)
    assert set(sets) == {"A", "B"}
    gdas_b = next(r for r in sets["B"]["rows"] if r["method"] == "GDAS")
    assert gdas_b["unconfirmed"] is True
    assert pub["nb201"]["milenas_nb201"]["published"] is False
    assert any(d["id"] == "data-jpeg-copy" for d in P.load_deviations())


def test_nb201_table(recs, pub):
    t = T.nb201_table(recs, pub)
    m = _row(t, "MiLeNAS")
    assert m[2] == "3/3 ok" and "(n=3)" in m[3]
    d2 = _row(t, "DARTS (2nd order)")
    assert d2[2] == "2/3 ok" and "(n=2)" in d2[3] and "failed: out of memory" in d2[-1]
    assert d2[3].startswith("54.30")  # collapsed all-skip cell
    assert "missing seeds: 2" in _row(t, "GDAS")[-1]
    sources = [r[1] for r in t.rows]
    assert any(s.startswith("published set A") for s in sources)
    assert any(s.startswith("published set B") for s in sources)
    assert any(r[0] == "GDAS [UNCONFIRMED]" for r in t.rows)
    assert any(r[0] == "MiLeNAS" and "none found" in r[1] for r in t.rows)
    assert "cifar10_test_200ep" in t.caption and "JPEG q75 copy" in t.caption
    assert len(t.published_rows) == sum(1 for r in t.rows if r[1] != "this harness")


def test_table1_and_missing_methods(recs, pub):
    t = T.table1_table(recs, pub)
    m = _row(t, "MiLeNAS")
    assert "(n=2)" in m[2] and "not a GPU" in m[5] and "scale smoke" in m[7]
    assert _row(t, "GDAS")[2] == "missing"
    assert any("2.51 ± 0.11" == r[2] and "MiLeNAS" in r[1] for r in t.rows)
    sc = SM.scope(recs, "x")
    assert R.method_label("darts2-then-milenas") in sc["spaces"]["darts"]["missing_methods"]


def test_cost_and_per_seed(recs, pub):
    c = T.cost_table(recs, pub)
    assert all(r[7] == "n/a (not a GPU)" for r in c.rows)  # fixture device is a CPU
    ps = T.per_seed_table(recs, pub)
    assert len(ps.rows) == len(recs)
    assert any(r[5].startswith("failed: out of memory") for r in ps.rows)


def test_reports_ask_the_space_for_its_label_order_and_tables(recs, pub):
    from harness import registry
    from harness.spaces.base import SearchSpace

    assert [t.key for t in T.all_tables(recs, pub)] == ["nb201", "table1", "search_cost", "per_seed"]
    assert R.spaces() == ["nb201", "darts"] and R.spaces(judged_by="evaluation") == ["darts"]
    assert [c for c, _ in R.report_columns("nb201")][0] == "cifar10_test_200ep" and R.report_columns("darts") == []

    @registry.register_space("toy-space")
    class ToySpace(SearchSpace):
        label = "Toy space"
        display_rank = 1
        cost_model_keys = ("C",)

    try:
        toy = [
            dict(r, space="toy-space", run_id=r["run_id"] + "-toy")
            for r in recs
            if r.get("space") == "darts" and r.get("kind", "search") == "search"
        ]
        assert T.cost_table(recs + toy, pub).rows[0][0] == "Toy space"  # display_rank 1: before NAS-Bench-201
        assert R.spaces()[0] == "toy-space" and R.expected_methods("toy-space") == R.core_methods()
        assert SM.scope(recs + toy, "x")["spaces"]["toy-space"]["name"] == "Toy space"
    finally:
        registry._SPACES.pop("toy-space", None)
    assert R.space_label("toy-space") == "toy-space" and R.expected_methods("toy-space") == []  # unknown: raw name


def test_renderers(recs, pub):
    t = T.nb201_table(recs, pub)
    md = t.to_markdown()
    assert md.count("\n| ") >= len(t.rows)
    rows = list(csv.reader(io.StringIO(t.to_csv())))
    assert rows[0] == t.columns and len(rows) == len(t.rows) + 1
    tex = t.to_latex()
    assert "±" not in tex and "$\\pm$" in tex and "cifar10\\_test\\_200ep" in tex
    assert "<table" in t.to_html() and "&amp;" in t.to_html()  # "Dong & Yang" escaped


def test_verdicts_smoke_never_reproduced(recs, pub):
    vs = V.verdicts(recs, pub)
    assert vs and all(not v.verdict.startswith("reproduced") for v in vs)
    assert all(v.verdict == V.SMOKE_CAP or v.verdict.startswith("not tested") for v in vs)
    f5 = next(v for v in vs if v.claim == "Fig. 5" and v.space == "nb201")
    assert f5.verdict == f"not tested (no runs of {R.method_label('milenas-gumbel')})"
    f2 = next(v for v in vs if v.claim == "Fig. 2" and v.space == "nb201")
    assert f2.raw == V.REPRODUCED and f2.n == "3/3/5"  # the rule itself passes; only the scale gate caps it


@pytest.mark.parametrize(
    "scale,expect",
    [
        ("paper", "reproduced"),
        ("cpu", "reproduced at reduced scale (cpu)"),
        ("gpu-quick", "reproduced at reduced scale (gpu-quick)"),
    ],
)
def test_verdict_scale_gate(pub, scale, expect):
    recs = fixture_records(scale)
    vs = {(v.claim, v.space): v for v in V.verdicts(recs, pub)}
    assert vs[("Fig. 2", "darts")].verdict == expect
    assert vs[("Fig. 3b", "nb201")].verdict == expect
    t1 = vs[("Table 1", "darts")]
    if scale == "paper":
        assert t1.verdict == "reproduced"
    else:
        assert t1.verdict.startswith("inconclusive") and "absolute numbers" in t1.verdict


def _two_scales():
    """The fixture at smoke and at cpu scale in one run folder (cpu run ids suffixed)."""
    smoke, cpu = fixture_records("smoke"), fixture_records("cpu")
    for r in cpu:
        r["run_id"] += "__cpu"
    return smoke, cpu


def test_scales_never_pooled(pub):
    smoke, cpu = _two_scales()
    for r in cpu:  # at cpu scale MiLeNAS is slower than DARTS 2nd order on the DARTS space: Fig. 3b fails
        if r["space"] == "darts" and r["method"] == "milenas" and r["kind"] == "search" and r["final"]:
            r["final"]["seconds_per_iteration"] *= 10
    vs = V.verdicts(smoke + cpu, pub)
    by = {(v.claim, v.space, v.scale): v for v in vs}
    assert {v.scale for v in vs} == {"smoke", "cpu"}
    for claim in ("Fig. 2", "Fig. 3a", "Fig. 3b", "Fig. 5"):
        for sp in ("nb201", "darts"):
            assert (claim, sp, "smoke") in by and (claim, sp, "cpu") in by  # side by side, one per scale
    # the smoke cap stays on the smoke verdict; the cpu verdict is decided from the cpu runs alone
    assert by[("Fig. 2", "darts", "smoke")].verdict == V.SMOKE_CAP
    assert by[("Fig. 2", "darts", "cpu")].verdict == "reproduced at reduced scale (cpu)"
    assert by[("Fig. 3b", "darts", "smoke")].verdict == V.SMOKE_CAP
    assert by[("Fig. 3b", "darts", "cpu")].verdict == "not reproduced at reduced scale (cpu)"
    # n counts one scale's seeds only (3/3/5 per scale, never 6/6/10)
    assert by[("Fig. 2", "nb201", "smoke")].n == by[("Fig. 2", "nb201", "cpu")].n == "3/3/5"
    assert by[("Table 1", "darts", "cpu")].verdict.startswith("inconclusive (cpu scale")
    # the statistics are per scale as well
    comps = C.comparisons(smoke + cpu)
    assert {c["scale"] for c in comps} == {"smoke", "cpu"}
    gap = [c for c in comps if c["space"] == "nb201" and c["metric"] == "gap"]
    assert len(gap) == 12 and all(c["n1"] == 3 for c in gap)
    # tables: one row per method and scale
    cost = T.cost_table(smoke + cpu)
    mil = [r for r in cost.rows if r[0] == "NAS-Bench-201" and r[1] == R.method_label("milenas")]
    assert sorted(r[-1] for r in mil) == ["cpu", "smoke"] and all(r[2] == "3/3 ok" for r in mil)
    # the side-by-side table has one column per scale, weakest first
    st = V.scale_table(vs)
    assert st.columns == ["Claim", "Space", "smoke", "cpu"]
    row = next(r for r in st.rows if r[0].startswith("Fig. 3b") and r[1] == "DARTS space")
    assert row[2].startswith(V.SMOKE_CAP) and row[3].startswith("not reproduced at reduced scale (cpu)")
    js = V.by_scale_dict(vs)
    assert set(js["Fig. 3b | darts"]) == {"smoke", "cpu"}


def test_scale_banner_mixed():
    smoke, cpu = _two_scales()
    b = SM.scale_banner(smoke + cpu)
    assert b.startswith("MIXED SCALES (smoke, cpu)") and "never pooled" in b


def test_fig5_compares_the_milenas_repo_gdas(recs, pub):
    v = next(v for v in V.verdicts(recs, pub) if v.claim == "Fig. 5" and v.space == "darts")
    assert R.method_label("gdas-milenas-repo") in v.numbers and V.NOT_LIKE_FOR_LIKE not in v.numbers
    assert v.raw in (V.REPRODUCED, V.NOT_REPRODUCED) or v.raw.startswith("inconclusive (difference")
    assert v.n_needed is not None


def test_fig5_plain_gdas_is_not_like_for_like(pub):
    recs = [r for r in fixture_records("paper") if r["method"] != "gdas-milenas-repo"]
    v = next(v for v in V.verdicts(recs, pub) if v.claim == "Fig. 5" and v.space == "darts")
    assert V.NOT_LIKE_FOR_LIKE in v.numbers and V.NOT_LIKE_FOR_LIKE in v.verdict
    assert v.verdict.startswith("inconclusive")  # paper scale, yet never decided by plain gdas
    assert v.n_needed is None and "gdas-milenas-repo" in v.n_needed_reason
    from reports import figures as F

    spec, _ = F.fig5_gumbel(recs, "darts")
    try:
        assert "not like-for-like" in spec.caption and R.method_label("gdas") in spec.title
    finally:
        import matplotlib.pyplot as plt

        plt.close(spec.fig)


def test_every_verdict_carries_n_needed(recs, pub):
    for v in V.verdicts(recs, pub) + V.verdicts([], pub):
        d = v.as_dict()
        assert "n_needed" in d and "n_needed_reason" in d
        assert (d["n_needed"] is None) == bool(d["n_needed_reason"])
        assert d["power_text"]


def _set_best_val(recs, values):
    for r, v in zip(recs, values):
        for e in r["epochs"]:
            e["val_acc"] = v


def test_n_needed_and_cost_from_the_records(pub):
    from reports import power as PW

    recs = fixture_records("cpu")
    mil = [r for r in recs if r["space"] == "darts" and r["method"] == "milenas" and r["kind"] == "search"]
    d2 = [r for r in recs if r["space"] == "darts" and r["method"] == "darts-2nd" and r["kind"] == "search"]
    _set_best_val(mil, [70.0, 60.0])
    _set_best_val(d2, [62.0, 58.0])
    v = next(v for v in V.verdicts(recs, pub) if v.claim == "Fig. 3a" and v.space == "darts")
    want = PW.mean_claim([70.0, 60.0], [62.0, 58.0])
    assert v.n_needed == want.n_needed and v.n_needed > 2
    assert v.n_needed == PW.n_two_group(5.0, 50**0.5, 8**0.5, 0.05, 0.8, 1)[0]
    hours = sum((v.n_needed - 2) * sum(r["final"]["search_seconds"] for r in g) / len(g) for g in (mil, d2)) / 3600
    assert v.cost_hours == pytest.approx(hours) and v.cost_unit == "CPU-hours"
    assert v.power_text.startswith(f"≈ {v.n_needed} seeds per method would decide this; ≈ ")
    assert "CPU-hours at this scale" in v.power_text
    assert "Δ" not in v.effect and "+5.00 pp" in v.effect and "95 % CI" in v.effect
    for r in mil + d2:
        r["provenance"]["device"] = "cuda:0 (NVIDIA H100 80GB HBM3)"
    v = next(v for v in V.verdicts(recs, pub) if v.claim == "Fig. 3a" and v.space == "darts")
    assert v.cost_unit == "GPU-hours" and "GPU-hours at this scale" in v.power_text


def test_n_needed_null_with_reason_for_one_seed(pub):
    recs = [r for r in fixture_records("cpu") if not (r["space"] == "darts" and r.get("seed") == 1)]
    vs = {(v.claim, v.space): v for v in V.verdicts(recs, pub)}
    v = vs[("Fig. 3a", "darts")]
    assert v.n_needed is None and "at least 2 seeds" in v.n_needed_reason
    assert v.power_text.startswith("n_needed not estimated")
    assert vs[("Table 1", "darts")].n_needed is None and "not a test" in vs[("Table 1", "darts")].n_needed_reason


def test_verdict_not_reproduced_when_reversed(pub):
    recs = fixture_records("paper")
    for r in recs:  # make MiLeNAS slower than DARTS 2nd order: Fig. 3b must fail
        if r["method"] == "milenas" and r["final"] and "seconds_per_iteration" in r["final"]:
            r["final"]["seconds_per_iteration"] *= 10
    vs = {(v.claim, v.space): v for v in V.verdicts(recs, pub)}
    assert vs[("Fig. 3b", "nb201")].verdict == "not reproduced"


def test_no_runs(pub, tmp_path):
    vs = V.verdicts([], pub)
    assert {v.verdict for v in vs} == {"not tested (no runs)", "not tested (no MiLeNAS evaluation runs)"}
    from reports.build import build_report

    w = build_report(tmp_path / "nothing", tmp_path / "out")
    html = w["html"].read_text()
    assert "NO RUNS" in html and "No run records were found" in html
    assert json.loads(w["json"].read_text())["figures"] == []


def test_statistics_family(recs):
    comps = C.comparisons(recs)
    fam = [c for c in comps if c["space"] == "nb201" and c["metric"] == "gap"]
    assert len(fam) == 6 and all(c["family_size"] == 6 for c in fam)  # MiLeNAS vs 6 other groups
    assert all(c["welch_p_holm"] >= c["welch_p"] for c in fam)
