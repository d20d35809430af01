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
        for k in ("kind", "run_id", "label", "space", "method", "variant", "seed", "scale", "status", "config",
                  "config_hash", "provenance", "epochs", "final"):
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
    assert d2[3].startswith("54.30")                       # collapsed all-skip cell
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
    assert "DARTS 2nd → MiLeNAS" in sc["spaces"]["darts"]["missing_methods"]


def test_cost_and_per_seed(recs, pub):
    c = T.cost_table(recs, pub)
    assert all(r[7] == "n/a (not a GPU)" for r in c.rows)      # fixture device is a CPU
    ps = T.per_seed_table(recs, pub)
    assert len(ps.rows) == len(recs)
    assert any(r[5].startswith("failed: out of memory") for r in ps.rows)


def test_renderers(recs, pub):
    t = T.nb201_table(recs, pub)
    md = t.to_markdown()
    assert md.count("\n| ") >= len(t.rows)
    rows = list(csv.reader(io.StringIO(t.to_csv())))
    assert rows[0] == t.columns and len(rows) == len(t.rows) + 1
    tex = t.to_latex()
    assert "±" not in tex and "$\\pm$" in tex and "cifar10\\_test\\_200ep" in tex
    assert "<table" in t.to_html() and "&amp;" in t.to_html()     # "Dong & Yang" escaped


def test_verdicts_smoke_never_reproduced(recs, pub):
    vs = V.verdicts(recs, pub)
    assert vs and all(not v.verdict.startswith("reproduced") for v in vs)
    assert all(v.verdict == V.SMOKE_CAP or v.verdict.startswith("not tested") for v in vs)
    f5 = next(v for v in vs if v.claim == "Fig. 5" and v.space == "nb201")
    assert f5.verdict == "not tested (no runs of MiLeNAS-Gumbel)"
    f2 = next(v for v in vs if v.claim == "Fig. 2" and v.space == "nb201")
    assert f2.raw == V.REPRODUCED and f2.n == "3/3/5"       # the rule itself passes; only the scale gate caps it


@pytest.mark.parametrize("scale,expect", [("paper", "reproduced"), ("cpu", "reproduced at reduced scale (cpu)"),
                                          ("gpu-quick", "reproduced at reduced scale (gpu-quick)")])
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


def test_mixed_scale_uses_lowest(pub):
    recs = fixture_records("paper")
    recs[0]["scale"] = "smoke"                              # one smoke run among paper runs
    vs = {(v.claim, v.space): v for v in V.verdicts(recs, pub)}
    assert vs[("Fig. 2", "nb201")].verdict == V.SMOKE_CAP


def test_verdict_not_reproduced_when_reversed(pub):
    recs = fixture_records("paper")
    for r in recs:     # make MiLeNAS slower than DARTS 2nd order: Fig. 3b must fail
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
    assert len(fam) == 6 and all(c["family_size"] == 6 for c in fam)     # MiLeNAS vs 6 other groups
    assert all(c["welch_p_holm"] >= c["welch_p"] for c in fam)
