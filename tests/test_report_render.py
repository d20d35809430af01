"""Render test: build the report from the fixture store, screenshot report.html in headless
chromium, rasterise report.pdf with pdftoppm; everything must exist and be non-blank."""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixtures.runstore import write_fixture_store  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
PDFTOPPM = shutil.which("pdftoppm")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from reports.build import build_report
    root = tmp_path_factory.mktemp("render")
    write_fixture_store(root / "runs")
    written = build_report(root / "runs", root / "out")
    return root, written


def _nonblank(png: Path) -> float:
    import matplotlib.image as mpimg
    img = mpimg.imread(str(png))
    return float(img[..., :3].std())


def test_outputs_written(built):
    root, w = built
    for k in ("md", "html", "pdf", "json"):
        assert w[k].is_file() and w[k].stat().st_size > 0
    for stem in ("nb201", "table1", "search_cost", "per_seed", "verdicts", "statistics"):
        assert (root / "out" / f"{stem}.csv").is_file() and (root / "out" / f"{stem}.tex").is_file()
    meta = json.loads(w["json"].read_text())
    for key in meta["figures"]:
        assert (root / "out" / f"{key}.png").is_file() and (root / "out" / f"{key}.svg").is_file()
    assert {"fig2_gap_darts", "fig3a_val_nb201", "fig3b_time_darts", "fig5_gumbel_darts", "fig6_size_darts",
            "nb201_bench_vs_epoch", "alpha_nb201", "cells_darts"} <= set(meta["figures"])
    md = w["md"].read_text()
    assert "SMOKE SCALE — not a reproduction" in md
    assert md.index("Reproducibility summary") < md.index("## 2. Tables")


def test_html_self_contained(built):
    _, w = built
    html = w["html"].read_text()
    assert "SMOKE SCALE — not a reproduction" in html
    assert html.count("data:image/png;base64,") == len(json.loads(w["json"].read_text())["figures"])
    assert not re.search(r"""(src|href)=['"](https?:|//|file:)""", html)      # nothing external


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")
def test_html_screenshot(built, tmp_path):
    _, w = built
    shot = tmp_path / "report.png"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1280,4000",
           w["html"].resolve().as_uri()]
    subprocess.run(cmd, check=False, timeout=120, capture_output=True)
    assert shot.is_file(), "chromium wrote no screenshot"
    assert _nonblank(shot) > 0.05


@pytest.mark.skipif(PDFTOPPM is None, reason="pdftoppm not installed (apt-get install poppler-utils)")
def test_pdf_pages(built, tmp_path):
    _, w = built
    expected = json.loads(w["json"].read_text())["pdf_pages"]
    subprocess.run([PDFTOPPM, "-r", "40", "-png", str(w["pdf"]), str(tmp_path / "page")], check=True, timeout=120)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) == expected and expected >= 10
    for p in pages:
        assert _nonblank(p) > 0.01, f"{p.name} looks blank"
