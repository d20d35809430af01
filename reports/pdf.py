"""PDF report via matplotlib's PdfPages (pure Python, no browser)."""
from __future__ import annotations

import textwrap
from typing import Any, Dict, List

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402

A4L = (11.69, 8.27)
FONT = 6.0
LINES_PER_PAGE = 78
WRAP = 190


def _wrap(lines: List[str], width: int = WRAP) -> List[str]:
    out = []
    for ln in lines:
        if len(ln) <= width:
            out.append(ln)
        else:
            ind = len(ln) - len(ln.lstrip())
            out.extend(textwrap.wrap(ln, width, subsequent_indent=" " * (ind + 2)) or [""])
    return out


def _text_pages(pdf, title: str, lines: List[str], banner: str, color="#a01818") -> int:
    lines = _wrap(lines)
    lpp, font = LINES_PER_PAGE, FONT
    pages = max(1, -(-len(lines) // lpp))
    if pages > 1 and len(lines) % lpp and len(lines) % lpp <= 10:   # no near-empty last page: shrink a little
        pages -= 1
        lpp = -(-len(lines) // pages)
        font = FONT * LINES_PER_PAGE / lpp
    for p in range(pages):
        fig = plt.figure(figsize=A4L)
        fig.text(0.03, 0.965, title + (f" (page {p + 1}/{pages})" if pages > 1 else ""), fontsize=12,
                 weight="bold", va="top")
        fig.text(0.97, 0.965, banner, fontsize=8, color=color, ha="right", va="top", weight="bold")
        chunk = lines[p * lpp:(p + 1) * lpp]
        fig.text(0.03, 0.93, "\n".join(chunk), fontsize=font, family="monospace", va="top")
        pdf.savefig(fig)
        plt.close(fig)
    return pages


def render(ctx: Dict[str, Any], path) -> int:
    """Write the PDF; returns the page count."""
    banner = ctx["banner"]
    color = "#1d5e1d" if banner.upper().startswith("PAPER") else "#a01818"
    n = 0
    with PdfPages(path) as pdf:
        # page 1: the reproducibility summary
        fig = plt.figure(figsize=A4L)
        fig.text(0.03, 0.965, ctx["title"], fontsize=14, weight="bold", va="top")
        fig.text(0.03, 0.925, banner, fontsize=13, weight="bold", color=color, va="top",
                 bbox=dict(fc="#fde0dc" if color == "#a01818" else "#e3f4e1", ec=color))
        vt = ctx["verdict_table"]
        from .verdicts import SHORT
        vlines = [f"{v.claim:<8} {SHORT.get(v.claim, '')[:48]:<48} | {v.space:<6} | {v.verdict[:52]:<52} | n {v.n or '–':<8} | {v.scale}"
                  for v in ctx["verdicts"]]
        scope = _wrap(ctx["scope_lines"], 150)
        devs = _wrap(ctx["deviation_lines"], 150)
        room = 62 - len(vlines) - 8
        if len(scope) + len(devs) > room:          # keep page 1 to one page; the rest is on later pages
            ns = max(6, room - min(len(devs), room // 2))
            if len(scope) > ns:
                scope = scope[:ns - 1] + [f"  … {len(scope) - ns + 1} more scope lines in the provenance section"]
            nd = max(3, room - len(scope))
            if len(devs) > nd:
                devs = devs[:nd - 1] + [f"  … {len(devs) - nd + 1} more: see the provenance page"]
        body = (["SCOPE"] + scope + ["", "VERDICTS (rules and numbers: next page)"] + vlines
                + ["", "DEVIATIONS FROM THE REFERENCES"] + devs
                + ["", f"generated {ctx['generated']}; tables, figures, statistics and provenance follow"])
        fig.text(0.03, 0.875, "\n".join(body), fontsize=7.2, family="monospace", va="top")
        pdf.savefig(fig)
        plt.close(fig)
        n += 1
        # verdict detail
        vl = []
        for r in vt.rows:
            vl += [f"{r[0]}  [{r[1]}]", f"  verdict: {r[2]}", f"  numbers: {r[3]}", f"  n: {r[4]}; scale: {r[5]}; data: {r[6]}",
                   f"  rule: {r[7]}", ""]
        n += _text_pages(pdf, "Verdicts: rules and numbers", vl + [vt.caption], banner, color)
        # tables
        for t in ctx["tables"]:
            lines = _wrap([t.caption], 240) + [""] + t.to_text(width=WRAP) + [""] + [f"- {x}" for x in t.notes]
            n += _text_pages(pdf, t.title, lines, banner, color)
        # figures
        for f in ctx["figures"]:
            import io
            img = plt.imread(io.BytesIO(f["png_bytes"]), format="png")
            fig = plt.figure(figsize=A4L)
            ax = fig.add_axes((0.03, 0.1, 0.94, 0.86))
            ax.imshow(img, interpolation="antialiased")
            ax.axis("off")
            fig.text(0.03, 0.085, textwrap.fill(f"{f['title']}. {f['caption']}", 180), fontsize=7, va="top")
            fig.text(0.97, 0.985, banner, fontsize=8, color=color, ha="right", va="top", weight="bold")
            pdf.savefig(fig)
            plt.close(fig)
            n += 1
        if ctx["not_produced"]:
            n += _text_pages(pdf, "Figures not produced", ctx["not_produced"], banner, color)
        # statistics and provenance
        st = ctx["stats_table"]
        n += _text_pages(pdf, st.title, _wrap([st.caption], 240) + [""] + st.to_text(width=WRAP), banner, color)
        n += _text_pages(pdf, "Provenance", ctx["provenance_lines"] + ["", "Scope:"] + ctx["scope_lines"]
                         + ["", "Deviations:"] + ctx["deviation_lines"],
                         banner, color)
    return n
