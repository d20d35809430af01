"""Render tests: build the report from the fixture store; check report.html in headless Chromium at a phone
and a desktop width, and report.pdf page by page (pdftoppm pages, pdftotext word boxes: text size, nothing
outside the page margins, title page, captions, repeated table headers)."""

import html as _html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixtures.runstore import fixture_records, write_fixture_store  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
PDFTOPPM = shutil.which("pdftoppm")
PDFTOTEXT = shutil.which("pdftotext")
PDFFONTS = shutil.which("pdffonts")
NEED_CHROMIUM = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")
NEED_POPPLER = pytest.mark.skipif(
    PDFTOPPM is None or PDFTOTEXT is None, reason="pdftoppm/pdftotext not installed (apt-get install poppler-utils)"
)
MIN_FONT_PT = 7.0


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from reports.build import build_report

    root = tmp_path_factory.mktemp("render")
    write_fixture_store(root / "runs")
    written = build_report(root / "runs", root / "out")
    return root, written


@pytest.fixture(scope="module")
def built_two_scales(tmp_path_factory):
    """Smoke and cpu runs in one folder (figures skipped: drawing them is covered above and is slow)."""
    from harness.records import write_record
    from reports import build as B
    from reports import figures as F

    root = tmp_path_factory.mktemp("render2")
    for scale in ("smoke", "cpu"):
        for r in fixture_records(scale):
            r["run_id"] += f"__{scale}"
            write_record(root / "runs" / "records" / f"{r['run_id']}.json", r)
    mp = pytest.MonkeyPatch()
    mp.setattr(F, "all_figures", lambda records: F.FigureSet(not_produced=["figures skipped in this test"]))
    try:
        written = B.build_report(root / "runs", root / "out")
    finally:
        mp.undo()
    return root, written


def _nonblank(png: Path) -> float:
    import matplotlib.image as mpimg

    img = mpimg.imread(str(png))
    return float(img[..., :3].std())


def test_outputs_written(built):
    root, w = built
    for k in ("md", "html", "pdf", "json"):
        assert w[k].is_file() and w[k].stat().st_size > 0
    for stem in ("nb201", "table1", "search_cost", "per_seed", "verdicts", "verdicts_by_scale", "statistics"):
        assert (root / "out" / f"{stem}.csv").is_file() and (root / "out" / f"{stem}.tex").is_file()
    meta = json.loads(w["json"].read_text())
    for key in meta["figures"]:
        assert (root / "out" / f"{key}.png").is_file() and (root / "out" / f"{key}.svg").is_file()
    assert {
        "fig2_gap_darts",
        "fig3a_val_nb201",
        "fig3b_time_darts",
        "fig5_gumbel_darts",
        "fig6_size_darts",
        "nb201_bench_vs_epoch",
        "alpha_nb201",
        "cells_darts",
    } <= set(meta["figures"])
    for v in meta["verdicts"]:
        assert "n_needed" in v and (v["n_needed"] is not None or v["n_needed_reason"])
    assert set(meta["verdicts_by_scale"]["Fig. 2 | nb201"]) == {"smoke"}
    md = w["md"].read_text()
    assert "SMOKE SCALE — not a reproduction" in md
    assert md.index("Reproducibility summary") < md.index("## 2. Tables")
    assert "n_needed" in md and "seeds per method would decide this" in md
    assert not re.search(r"^\s*- •", md, re.M)  # one bullet per scope line
    assert re.search(r"Largest \|p − 1/K\| = [0-9.e-]+ \(", md)  # α caption: largest deviation from uniform
    assert "clipped to [0, 100] %" in md  # band captions say what the band is


def test_html_self_contained(built):
    _, w = built
    html = w["html"].read_text()
    assert "SMOKE SCALE — not a reproduction" in html
    assert html.count("data:image/png;base64,") == len(json.loads(w["json"].read_text())["figures"])
    assert not re.search(r"""(src|href)=['"](https?:|//|file:)""", html)  # nothing external
    assert not re.search(r"<li>\s*[•·]", html)  # the list draws the bullet, once
    assert "name='viewport'" in html and "seeds per method would decide this" in html
    assert "Largest |p − 1/K|" in html  # figure captions reach the page


PROBE = """<!DOCTYPE html><html><head><meta charset='utf-8'><title>pending</title></head>
<body style='margin:0'><iframe id='f' style='width:%dpx;height:900px;border:0' srcdoc="%s"></iframe><script>
const f = document.getElementById('f');
f.addEventListener('load', () => {
  const d = f.contentDocument, w = f.contentWindow;
  const bullets = Array.from(d.querySelectorAll('li')).filter(l => /^\\s*[\\u2022\\u00b7\\u25aa]/.test(l.textContent));
  const over = Array.from(d.querySelectorAll('body *')).filter(
      e => e.closest('.tblwrap') === null && e.getBoundingClientRect().right > w.innerWidth + 1);
  document.title = 'probe ' + JSON.stringify({scroll: d.documentElement.scrollWidth, inner: w.innerWidth,
      bullets: bullets.length, overflow: over.slice(0, 5).map(e => e.tagName + '.' + e.className),
      tables: d.querySelectorAll('.tblwrap table').length});
});
</script></body></html>"""


def _chromium(args, tmp_path, timeout=120):
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'profile'}",
    ] + args
    return subprocess.run(cmd, check=False, timeout=timeout, capture_output=True, text=True)


@NEED_CHROMIUM
@pytest.mark.parametrize("width", [390, 1280])
def test_html_layout_phone_and_desktop(built, tmp_path, width):
    """The page fits the viewport (only tables scroll, inside their own box), scope bullets appear once."""
    _, w = built
    probe = tmp_path / "probe.html"
    probe.write_text(PROBE % (width, _html.escape(w["html"].read_text(), quote=True)), encoding="utf-8")
    out = _chromium(["--window-size=1400,1000", "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()], tmp_path)
    m = re.search(r"<title>probe (\{.*?\})</title>", _html.unescape(out.stdout))
    assert m, f"chromium gave no measurement: {out.stderr[-500:]}"
    r = json.loads(m.group(1))
    assert abs(r["inner"] - width) <= 20  # the iframe is the viewport
    assert r["scroll"] <= r["inner"], f"page wider than the viewport at {width}px: {r}"
    assert r["overflow"] == [], f"elements run off the page at {width}px: {r['overflow']}"
    assert r["bullets"] == 0
    assert r["tables"] >= 6
    shot = tmp_path / "shot.png"
    _chromium(
        [f"--screenshot={shot}", f"--window-size={max(width, 500)},1600", "--virtual-time-budget=5000", probe.as_uri()],
        tmp_path,
    )
    assert shot.is_file() and _nonblank(shot) > 0.05


@NEED_POPPLER
def test_pdf_pages(built, tmp_path):
    _, w = built
    expected = json.loads(w["json"].read_text())["pdf_pages"]
    subprocess.run([PDFTOPPM, "-r", "40", "-png", str(w["pdf"]), str(tmp_path / "page")], check=True, timeout=120)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) == expected and expected >= 10
    for p in pages:
        assert _nonblank(p) > 0.01, f"{p.name} looks blank"


def _words(pdf: Path):
    """[(page_no, page_w, page_h, [(x0, y0, x1, y1, text)])] from pdftotext -bbox."""
    out = subprocess.run(
        [PDFTOTEXT, "-bbox", str(pdf), "-"], check=True, timeout=120, capture_output=True, text=True
    ).stdout
    pages = []
    for i, (pw, ph, body) in enumerate(
        re.findall(r'<page width="([\d.]+)" height="([\d.]+)">(.*?)</page>', out, re.S), start=1
    ):
        ws = [
            (float(a), float(b), float(c), float(d), _html.unescape(t))
            for a, b, c, d, t in re.findall(
                r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>', body
            )
        ]
        pages.append((i, float(pw), float(ph), ws))
    return pages


@NEED_POPPLER
def test_pdf_reads_like_a_paper(built):
    from reports.pdf import MARGIN_X

    _, w = built
    meta = json.loads(w["json"].read_text())
    pages = _words(w["pdf"])
    assert len(pages) == meta["pdf_pages"]
    for no, pw, ph, ws in pages:
        assert ws, f"page {no} has no text"
        for x0, y0, x1, y1, t in ws:
            # text size: a word box is as tall as its font size
            assert y1 - y0 >= MIN_FONT_PT - 0.05, f"page {no}: {t!r} set at {y1 - y0:.1f} pt"
            # nothing runs off the page: every word (tables included) inside the side margins
            assert MARGIN_X - 1 <= x0 and x1 <= pw - MARGIN_X + 1, (
                f"page {no}: {t!r} at x {x0:.0f}–{x1:.0f} of {pw:.0f}"
            )
            assert 0 <= y0 and y1 <= ph
    text = {no: " ".join(t for *_, t in ws) for no, _, _, ws in pages}
    # title page: banner, reproducibility summary, verdict table with effect, n and n_needed
    p1 = text[1]
    for s in (
        "SMOKE SCALE",
        "Reproducibility summary",
        "Verdicts on the paper's claims",
        "Effect (95 % CI)",
        "n_needed",
        "Fig. 2:",
        "Fig. 3b:",
        "Table 1:",
        "inconclusive (smoke scale:",
    ):
        assert s in p1, f"title page lacks {s!r}"
    # the banner is on every page
    assert all("SMOKE SCALE" in t for t in text.values())
    # one caption per figure, numbered
    allt = " ".join(text.values())
    assert len(re.findall(r"Figure A\.\d+\.", allt)) == len(meta["figures"])
    # the long per-seed table spans pages and repeats its header row; landscape pages for wide tables
    assert sum("Config hash" in t for t in text.values()) >= 2
    assert any(pw > ph for _, pw, ph, _ in pages) and pages[0][1] < pages[0][2]
    # statistics as a compact table (one row per comparison) with the full set in CSV
    assert "Welch p (Holm)" in allt and "statistics.csv" in allt
    assert "seeds per method would decide this" in allt


@pytest.mark.skipif(PDFFONTS is None, reason="pdffonts not installed (apt-get install poppler-utils)")
def test_pdf_fonts_are_proportional_and_embedded(built):
    _, w = built
    out = subprocess.run([PDFFONTS, str(w["pdf"])], check=True, capture_output=True, text=True).stdout
    fonts = [ln.split()[0] for ln in out.splitlines()[2:] if ln.strip()]
    assert fonts and not any(re.search(r"mono|courier", f, re.I) for f in fonts)
    assert any("STIX" in f for f in fonts)
    assert all(ln.split()[-5] == "yes" for ln in out.splitlines()[2:] if ln.strip())  # embedded


def test_two_scales_side_by_side(built_two_scales):
    root, w = built_two_scales
    meta = json.loads(w["json"].read_text())
    assert meta["banner"].startswith("MIXED SCALES (smoke, cpu)")
    assert set(meta["verdicts_by_scale"]["Fig. 2 | darts"]) == {"smoke", "cpu"}
    cells = meta["verdicts_by_scale"]["Fig. 2 | darts"]
    assert cells["smoke"]["verdict"].startswith("inconclusive (smoke scale")
    assert cells["cpu"]["verdict"] == "reproduced at reduced scale (cpu)"
    rows = list(__import__("csv").reader(open(root / "out" / "verdicts_by_scale.csv", encoding="utf-8")))
    assert rows[0] == ["Claim", "Space", "smoke", "cpu"]
    html = w["html"].read_text()
    assert "tbl-verdicts_by_scale" in html


@NEED_POPPLER
def test_two_scales_pdf_title_page(built_two_scales):
    from reports.pdf import MARGIN_X

    _, w = built_two_scales
    pages = _words(w["pdf"])
    p1 = " ".join(t for *_, t in pages[0][3])
    assert "Scale" in p1 and "smoke" in p1 and "cpu" in p1
    assert "Verdicts per scale, side by side" in " ".join(t for _, _, _, ws in pages for *_, t in ws)
    for no, pw, _ph, ws in pages:
        for x0, _y0, x1, _y1, t in ws:
            assert MARGIN_X - 1 <= x0 and x1 <= pw - MARGIN_X + 1, f"page {no}: {t!r} off the text area"


def test_figures_drawn_per_scale():
    import matplotlib.pyplot as plt

    from reports import figures as F

    recs = []
    for scale in ("smoke", "cpu"):
        for r in fixture_records(scale):
            if r["space"] == "nb201" and r["method"] in ("milenas", "darts-2nd") and not r["variant"]:
                r["run_id"] += f"__{scale}"
                for e in r["epochs"]:
                    e.pop("alpha_probs", None)
                recs.append(r)
    fs = F.all_figures(recs)
    try:
        keys = [f.key for f in fs.figures]
        assert "fig3a_val_nb201_smoke" in keys and "fig3a_val_nb201_cpu" in keys
        assert not any(k == "fig3a_val_nb201" for k in keys)
        spec = next(f for f in fs.figures if f.key == "fig3b_time_nb201_cpu")
        assert spec.title.endswith("cpu scale") and "scale cpu" in spec.caption
    finally:
        for f in fs.figures:
            plt.close(f.fig)
