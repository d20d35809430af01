"""Build the report: ``build_report(runs_dir, out_dir) -> {name: path}``.

Writes out_dir/report.md, report.html (self-contained), report.pdf (typeset with reportlab: title page
with the reproducibility summary and verdict table, then tables, figures, statistics, provenance),
report.json (verdicts with n_needed + summary, machine-readable), tables as <key>.csv / <key>.tex and
figures as <key>.png / <key>.svg. Works on partial or empty run folders.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
from pathlib import Path
from typing import Any, Dict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from . import all_methods as AM  # noqa: E402  (every method with runs, side by side, published beside)
from . import collapse as CL  # noqa: E402  (eigenvalue vs epoch per space: the collapse hook's series)
from . import comparisons as C  # noqa: E402
from . import figures as F  # noqa: E402
from . import html as H  # noqa: E402
from . import hypergrad as HG  # noqa: E402  (tables and figures of hypergrad-measured searches)
from . import pdf as PDF  # noqa: E402
from . import published as P  # noqa: E402
from . import runs as R  # noqa: E402
from . import summary as S  # noqa: E402
from . import tables as T  # noqa: E402
from . import verdicts as V  # noqa: E402

TITLE = "MiLeNAS reproduction harness — report"


def build_context(records, runs_dir) -> Dict[str, Any]:
    pub = P.load_published()
    sc = S.scope(records, runs_dir)
    vs = V.verdicts(records, pub)  # the paper's claims, §2.2–3 included when records carry hypergrad measurements
    comps = C.comparisons(records)
    dv = S.deviations(records)
    fs = F.all_figures(records)
    figs = []
    for spec in fs.figures + HG.figure_specs(records) + CL.figure_specs(records):
        buf = io.BytesIO()
        spec.fig.savefig(buf, format="png", dpi=100)
        figs.append(
            {
                "key": spec.key,
                "title": spec.title,
                "caption": spec.caption,
                "fig": spec.fig,
                "png_bytes": buf.getvalue(),
            }
        )
    return {
        "title": TITLE,
        "generated": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "banner": sc["banner"],
        "scope": sc,
        "scope_lines": S.scope_lines(sc),
        "scope_items": S.scope_items(sc),
        "verdicts": vs,
        "verdict_table": V.verdict_table(vs),
        "verdict_scale_table": V.scale_table(vs),
        "deviations": dv,
        "deviation_lines": S.deviation_lines(dv, len(records)),
        "tables": T.all_tables(records, pub) + AM.all_tables(records, pub) + HG.all_tables(records),
        "comparisons": comps,
        "stats_table": C.statistics_table(comps),
        "stats_compact": C.compact_table(comps),
        "figures": figs,
        "not_produced": fs.not_produced,
        "provenance_lines": S.provenance_lines(S.provenance(records, pub)),
    }


def render_markdown(ctx) -> str:
    out = [
        f"# {ctx['title']}",
        "",
        f"generated {ctx['generated']}",
        "",
        f"> **{ctx['banner']}**",
        "",
        "## 1. Reproducibility summary",
        "",
        "### Scope",
        "",
    ]
    out += [("  " * lvl) + f"- {text}" for lvl, text in ctx["scope_items"]]
    out += ["", "### Verdicts", "", V.summary_table(ctx["verdicts"]).to_markdown()]
    if len(ctx["scope"]["scales"]) > 1:
        out += [ctx["verdict_scale_table"].to_markdown()]
    out += ["#### Rules, numbers and power of every verdict", "", ctx["verdict_table"].to_markdown()]
    out += ["### Deviations from the references", ""]
    out += [f"- {ln}" for ln in ctx["deviation_lines"]]
    out += ["", "## 2. Tables", ""]
    for t in ctx["tables"]:
        out += [t.to_markdown(), f"(files: {t.key}.csv, {t.key}.tex)", ""]
    out += ["## 3. Figures", ""]
    for f in ctx["figures"]:
        out += [f"![{f['title']}]({f['key']}.png)", "", f"*{f['title']}.* {f['caption']} (also {f['key']}.svg)", ""]
    if ctx["not_produced"]:
        out += ["Not produced:", ""] + [f"- {x}" for x in ctx["not_produced"]] + [""]
    out += [
        "## 4. Statistics",
        "",
        ctx["stats_compact"].to_markdown(),
        "(all numbers per comparison: statistics.csv)",
        "",
        "## 5. Provenance",
        "",
    ]
    out += [f"- {ln}" for ln in ctx["provenance_lines"]]
    return "\n".join(out) + "\n"


def build_report(runs_dir, out_dir) -> Dict[str, Path]:
    runs_dir, out_dir = Path(runs_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = R.load(runs_dir)
    ctx = build_context(records, runs_dir)
    written: Dict[str, Path] = {}
    try:
        for t in ctx["tables"] + [ctx["verdict_table"], ctx["verdict_scale_table"], ctx["stats_table"]]:
            for ext, fn in (("csv", t.to_csv), ("tex", t.to_latex)):
                p = out_dir / f"{t.key}.{ext}"
                p.write_text(fn(), encoding="utf-8")
                written[p.name] = p
        for f in ctx["figures"]:
            p = out_dir / f"{f['key']}.png"
            p.write_bytes(f["png_bytes"])
            written[p.name] = p
            p = out_dir / f"{f['key']}.svg"
            f["fig"].savefig(p, format="svg")
            written[p.name] = p
        md = out_dir / "report.md"
        md.write_text(render_markdown(ctx), encoding="utf-8")
        written["md"] = md
        ht = out_dir / "report.html"
        ht.write_text(H.render(ctx), encoding="utf-8")
        written["html"] = ht
        pd = out_dir / "report.pdf"
        pages = PDF.render(ctx, pd)
        written["pdf"] = pd
        js = out_dir / "report.json"
        js.write_text(
            json.dumps(
                {
                    "banner": ctx["banner"],
                    "scope": ctx["scope"],
                    "pdf_pages": pages,
                    "verdicts": [v.as_dict() for v in ctx["verdicts"]],
                    "verdicts_by_scale": V.by_scale_dict(ctx["verdicts"]),
                    "figures": [f["key"] for f in ctx["figures"]],
                    "not_produced": ctx["not_produced"],
                    "comparisons": ctx["comparisons"],
                },
                indent=1,
                default=str,
                allow_nan=True,
            ),
            encoding="utf-8",
        )
        written["json"] = js
    finally:
        for f in ctx["figures"]:
            plt.close(f["fig"])
    return written
