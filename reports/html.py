"""One self-contained HTML file (stdlib only): figures inlined as base64 PNG, no external assets."""

from __future__ import annotations

import base64
import html as _h
from typing import Any, Dict, List

from . import verdicts as V

CSS = """
*{box-sizing:border-box}
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1240px;color:#222;
font-size:14px;padding:0 14px;line-height:1.4}
h1{font-size:24px;margin-bottom:4px} h2{border-bottom:2px solid #444;padding-bottom:3px;margin-top:34px}
.banner{font-size:20px;font-weight:bold;padding:10px 14px;margin:10px 0;border-radius:4px}
.smoke{background:#fde0dc;color:#a01818;border:2px solid #a01818}
.reduced{background:#fff4cc;color:#7a5a00;border:2px solid #c9a400}
.paper{background:#e3f4e1;color:#1d5e1d;border:2px solid #2e7d32}
.tblwrap{overflow-x:auto;max-width:100%;margin:0 0 6px 0}
table.tbl{border-collapse:collapse;margin:4px 0;font-size:12px;width:100%}
table.tbl th,table.tbl td{border:1px solid #bbb;padding:3px 5px;vertical-align:top;text-align:left}
table.tbl th{background:#eee}
p.tcap{margin:14px 0 2px 0} .cap{font-size:11px;color:#555;font-weight:normal}
tr.pub td{background:#f0f3f8;font-style:italic;color:#334}
tr.failed td{background:#fde8e6} tr.missing td{background:#fffbe3}
ul.notes{font-size:12px;color:#444}
ul.scope li{margin:1px 0} ul.scope ul{margin:2px 0 4px 0}
figure{margin:18px 0;border:1px solid #ddd;padding:8px} figure img{max-width:100%;height:auto}
figcaption{font-size:12px;color:#444}
.v-rep{color:#1d5e1d;font-weight:bold} .v-not{color:#a01818;font-weight:bold} .v-inc{color:#7a5a00;font-weight:bold}
details{margin:8px 0} summary{cursor:pointer;color:#0645ad}
pre{font-size:12px;background:#f7f7f7;padding:8px;white-space:pre-wrap}
@media (max-width:700px){body{font-size:13px;margin:10px auto;padding:0 8px}h1{font-size:20px}
.banner{font-size:16px} table.tbl{font-size:11px;width:auto;min-width:100%}
table.tbl th,table.tbl td{min-width:7.5em} table.tbl td.long{min-width:17em}}
"""


def _banner_class(banner: str) -> str:
    b = banner.upper()
    if b.startswith("PAPER"):
        return "paper"
    if b.startswith("REDUCED"):
        return "reduced"
    return "smoke"


def _nested_list(items) -> str:
    """(level, text) items as nested <ul>s; the browser draws the bullets (the texts carry none)."""
    e = _h.escape
    out, open_sub = ["<ul class='scope'>"], False
    for i, (lvl, text) in enumerate(items):
        if lvl and not open_sub:
            out.append("<ul>")
            open_sub = True
        elif not lvl and open_sub:
            out.append("</ul></li>")
            open_sub = False
        elif not lvl and i:
            out.append("</li>")
        out.append(f"<li>{e(text)}" + ("</li>" if lvl else ""))
    if open_sub:
        out.append("</ul>")
    if items:
        out.append("</li>")
    out.append("</ul>")
    return "".join(out)


def render(ctx: Dict[str, Any]) -> str:
    e = _h.escape
    out: List[str] = [
        "<!DOCTYPE html>",
        "<html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{e(ctx['title'])}</title><style>{CSS}</style></head><body>",
    ]
    out.append(f"<h1>{e(ctx['title'])}</h1><div class='small'>generated {e(ctx['generated'])}</div>")
    out.append(f"<div class='banner {_banner_class(ctx['banner'])}' id='scale-banner'>{e(ctx['banner'])}</div>")

    out.append("<h2 id='summary'>1. Reproducibility summary</h2><h3>Scope</h3>")
    out.append(_nested_list(ctx.get("scope_items") or [(0, x) for x in ctx["scope_lines"]]))
    out.append("<h3>Verdicts</h3>")
    out.append(V.summary_table(ctx["verdicts"]).to_html())
    if len(ctx["scope"].get("scales") or []) > 1 and ctx.get("verdict_scale_table") is not None:
        out.append(ctx["verdict_scale_table"].to_html())
    out.append(
        "<details id='verdict-details'><summary>Rules, numbers and power of every verdict (also "
        "verdicts.csv)</summary>" + ctx["verdict_table"].to_html() + "</details>"
    )
    out.append("<h3>Deviations from the references</h3><ul>")
    for line in ctx["deviation_lines"]:
        out.append(f"<li>{e(line)}</li>")
    out.append("</ul>")

    out.append("<h2 id='tables'>2. Tables</h2>")
    for t in ctx["tables"]:
        out.append(t.to_html())

    out.append("<h2 id='figures'>3. Figures</h2>")
    for f in ctx["figures"]:
        b64 = base64.b64encode(f["png_bytes"]).decode()
        out.append(
            f"<figure id='fig-{e(f['key'])}'><img alt='{e(f['title'])}' src='data:image/png;base64,{b64}'>"
            f"<figcaption><b>{e(f['title'])}.</b> {e(f['caption'])}</figcaption></figure>"
        )
    if ctx["not_produced"]:
        out.append(
            "<p><b>Not produced:</b></p><ul>" + "".join(f"<li>{e(x)}</li>" for x in ctx["not_produced"]) + "</ul>"
        )

    out.append("<h2 id='statistics'>4. Statistics</h2>")
    if ctx.get("stats_compact") is not None:
        out.append(ctx["stats_compact"].to_html())
        out.append(
            "<details><summary>All numbers per comparison (also statistics.csv)</summary>"
            + ctx["stats_table"].to_html()
            + "</details>"
        )
    else:
        out.append(ctx["stats_table"].to_html())

    out.append("<h2 id='provenance'>5. Provenance</h2><ul>")
    for line in ctx["provenance_lines"]:
        out.append(f"<li>{e(line)}</li>")
    out.append("</ul>")
    out.append("</body></html>")
    return "\n".join(out)
