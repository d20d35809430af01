"""The PDF report, typeset with reportlab so that it reads like a paper's appendix.

Why reportlab: it is pure Python (a declared dependency, installed by ``pip install -e .`` / tox like
everything else), so ``python -m harness report`` produces the same PDF on every machine, without a
browser.  It lays out real tables (cells wrap, long words split, header rows repeat on every page,
column widths fit the frame) in proportional fonts; the fonts are the STIX (Times-like, with Greek
and math symbols) and DejaVu TrueType files shipped inside matplotlib, embedded as subsets.

Layout: a title page (scale banner, reproducibility summary, verdict table: claim, verdict, effect
with CI, n, n_needed), then A.1 scope and deviations, A.2 verdict details (rule, numbers, power), A.3
tables (wide ones on landscape pages), A.4 figures with captions, A.5 statistics as a compact table
(one row per comparison; every number is in statistics.csv), A.6 provenance.  Every page carries the
scale banner in its header.
"""

from __future__ import annotations

import io
import os
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple
from xml.sax.saxutils import escape as _xml_escape

import matplotlib
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER, TA_JUSTIFY, TA_LEFT, TA_RIGHT
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import (
    BaseDocTemplate,
    CondPageBreak,
    Flowable,
    Frame,
    Image,
    KeepTogether,
    NextPageTemplate,
    PageBreak,
    PageTemplate,
    Paragraph,
    Spacer,
    TableStyle,
)
from reportlab.platypus import Table as RLTable

from . import runs as R
from . import verdicts as V
from .tables import row_failed

# ------------------------------------------------------------------------------------------ fonts
SERIF, SERIF_B, SERIF_I, SERIF_BI, FALLBACK = "Serif", "Serif-Bold", "Serif-Italic", "Serif-BoldItalic", "Sans"
_FONT_FILES = {
    SERIF: "STIXGeneral.ttf",
    SERIF_B: "STIXGeneralBol.ttf",
    SERIF_I: "STIXGeneralItalic.ttf",
    SERIF_BI: "STIXGeneralBolIta.ttf",
    FALLBACK: "DejaVuSans.ttf",
}
_CMAPS: Dict[str, set] = {}


def _register_fonts() -> None:
    if _CMAPS:
        return
    d = os.path.join(matplotlib.get_data_path(), "fonts", "ttf")
    for name, fn in _FONT_FILES.items():
        f = TTFont(name, os.path.join(d, fn))
        pdfmetrics.registerFont(f)
        _CMAPS[name] = set(f.face.charToGlyph)
    pdfmetrics.registerFontFamily(SERIF, normal=SERIF, bold=SERIF_B, italic=SERIF_I, boldItalic=SERIF_BI)


def esc(text: Any) -> str:
    """Text → Paragraph markup: XML-escaped; glyphs STIX lacks come from DejaVu Sans, unknown ones become '?'."""
    out = []
    serif, sans = _CMAPS.get(SERIF, set()), _CMAPS.get(FALLBACK, set())
    for ch in str(text):
        o = ord(ch)
        if ch in "\n":
            out.append("<br/>")
        elif o in serif or ch in " \t":
            out.append(_xml_escape(ch))
        elif o in sans:
            out.append(f'<font name="{FALLBACK}">{_xml_escape(ch)}</font>')
        else:
            out.append("?")
    return "".join(out)


# ------------------------------------------------------------------------------------------ geometry, styles
PAGE = A4
MARGIN_X, MARGIN_TOP, MARGIN_BOTTOM = 18 * mm, 20 * mm, 17 * mm
BODY_PT, TABLE_PT, CAPTION_PT = 9.5, 7.5, 8.5
FIG_DPI = 150  # figures are raster (matplotlib Agg) at print-readable resolution
SCALE_COLORS = {"paper": ("#1d5e1d", "#e3f4e1"), "reduced": ("#7a5a00", "#fff4cc"), "smoke": ("#a01818", "#fde0dc")}


def _styles() -> Dict[str, ParagraphStyle]:
    base = ParagraphStyle(
        "body", fontName=SERIF, fontSize=BODY_PT, leading=BODY_PT * 1.25, alignment=TA_JUSTIFY, spaceAfter=4
    )
    styles = {
        "body": base,
        "title": ParagraphStyle(
            "title", parent=base, fontName=SERIF_B, fontSize=19, leading=23, alignment=TA_LEFT, spaceAfter=4
        ),
        "subtitle": ParagraphStyle(
            "subtitle",
            parent=base,
            fontName=SERIF_I,
            fontSize=10,
            leading=13,
            alignment=TA_LEFT,
            textColor=colors.HexColor("#444444"),
            spaceAfter=10,
        ),
        "h1": ParagraphStyle(
            "h1",
            parent=base,
            fontName=SERIF_B,
            fontSize=13.5,
            leading=17,
            alignment=TA_LEFT,
            spaceBefore=10,
            spaceAfter=6,
        ),
        "h2": ParagraphStyle(
            "h2", parent=base, fontName=SERIF_B, fontSize=11, leading=14, alignment=TA_LEFT, spaceBefore=8, spaceAfter=4
        ),
        "caption": ParagraphStyle(
            "caption", parent=base, fontSize=CAPTION_PT, leading=CAPTION_PT * 1.25, spaceBefore=3, spaceAfter=6
        ),
        "note": ParagraphStyle(
            "note", parent=base, fontSize=8, leading=10, spaceAfter=2, textColor=colors.HexColor("#333333")
        ),
        "bullet": ParagraphStyle(
            "bullet", parent=base, alignment=TA_LEFT, leftIndent=12, bulletIndent=2, spaceAfter=1.5
        ),
        "bullet2": ParagraphStyle(
            "bullet2",
            parent=base,
            alignment=TA_LEFT,
            fontSize=8.5,
            leading=10.5,
            leftIndent=26,
            bulletIndent=15,
            spaceAfter=1,
        ),
        "cell": ParagraphStyle("cell", fontName=SERIF, fontSize=TABLE_PT, leading=TABLE_PT * 1.2, alignment=TA_LEFT),
        "num": ParagraphStyle("num", fontName=SERIF, fontSize=TABLE_PT, leading=TABLE_PT * 1.2, alignment=TA_RIGHT),
        "headnum": ParagraphStyle(
            "headnum", fontName=SERIF_B, fontSize=TABLE_PT, leading=TABLE_PT * 1.2, alignment=TA_RIGHT
        ),
        "head": ParagraphStyle("head", fontName=SERIF_B, fontSize=TABLE_PT, leading=TABLE_PT * 1.2, alignment=TA_LEFT),
        "key": ParagraphStyle("key", fontName=SERIF_B, fontSize=8.5, leading=10.5, alignment=TA_LEFT),
        "val": ParagraphStyle("val", fontName=SERIF, fontSize=8.5, leading=10.5, alignment=TA_LEFT),
        "banner": ParagraphStyle("banner", fontName=SERIF_B, fontSize=11.5, leading=14, alignment=TA_CENTER),
    }
    for style in styles.values():  # reportlab's default bullet font is Helvetica (not embedded)
        style.bulletFontName = SERIF
    return styles


def _banner_kind(banner: str) -> str:
    b = banner.upper()
    return "paper" if b.startswith("PAPER") else ("reduced" if b.startswith("REDUCED") else "smoke")


def _verdict_color(v: str) -> str:
    if v.startswith("reproduced"):
        return "#1d6b1d"
    if v.startswith("not reproduced"):
        return "#a01818"
    if v.startswith("not tested"):
        return "#666666"
    return "#8a6400"


# ------------------------------------------------------------------------------------------ tables
def _text_width(text: str, font: str, size: float) -> float:
    return pdfmetrics.stringWidth(text, font, size)


def col_widths(
    rows: List[List[str]], avail: float, font=SERIF, size=TABLE_PT, pad=8.0, max_share: float = 0.5
) -> List[float]:
    """Column widths that fill ``avail``: every column gets at least its longest word (capped), the rest is
    shared in proportion to how much more each column would need to show its longest cell on one line."""
    ncol = len(rows[0])
    nat, minw = [pad + 12] * ncol, [pad + 12] * ncol
    for r in rows:
        for j, c in enumerate(r):
            lines = str(c).split("\n")
            nat[j] = max(nat[j], min(avail * max_share, pad + max(_text_width(x, font, size) for x in lines)))
            words = str(c).split()
            if words:
                minw[j] = max(minw[j], min(avail * 0.22, pad + max(_text_width(w, font, size) for w in words)))
    nat = [max(a, b) for a, b in zip(nat, minw)]
    if sum(minw) >= avail:
        return [w * avail / sum(minw) for w in minw]
    if sum(nat) <= avail:
        return [w * avail / sum(nat) for w in nat]
    room, want = avail - sum(minw), [a - b for a, b in zip(nat, minw)]
    return [m + room * w / sum(want) for m, w in zip(minw, want)]


def rl_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    avail: float,
    st: Dict[str, ParagraphStyle],
    published_rows: Sequence[int] = (),
    verdict_col: Optional[int] = None,
    widths: Optional[List[float]] = None,
    verdict_cols: Sequence[int] = (),
) -> RLTable:
    """A booktabs-style table: wrapped cells, header repeated on every page, widths that fit ``avail``."""
    text = [list(map(str, columns))] + [[str(c) for c in r] for r in rows]
    if len(text) == 1:
        text.append(["(no rows)"] + [""] * (len(columns) - 1))
    w = widths or col_widths(text, avail)
    num = set(_numeric_columns(text))
    data = [[Paragraph(esc(c), st["headnum" if j in num else "head"]) for j, c in enumerate(text[0])]]
    for i, r in enumerate(text[1:]):
        cells = []
        for j, c in enumerate(r):
            body = esc(re.sub(r"(?<![\w.])-(?=\d)", "−", c) if j in num else c)
            if (verdict_col is not None and j == verdict_col) or j in verdict_cols:
                body = f'<font color="{_verdict_color(c)}"><b>{body}</b></font>'
            elif i in published_rows:
                body = f"<i>{body}</i>"
            cells.append(Paragraph(body, st["num" if j in num else "cell"]))
        data.append(cells)
    t = RLTable(data, colWidths=w, repeatRows=1, splitByRow=1, splitInRow=1, hAlign="LEFT")
    style = [
        ("FONT", (0, 0), (-1, -1), SERIF, TABLE_PT),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LEFTPADDING", (0, 0), (-1, -1), 3),
        ("RIGHTPADDING", (0, 0), (-1, -1), 3),
        ("TOPPADDING", (0, 0), (-1, -1), 1.6),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2.2),
        ("LINEABOVE", (0, 0), (-1, 0), 0.9, colors.black),
        ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.black),
        ("LINEBELOW", (0, -1), (-1, -1), 0.9, colors.black),
        ("LINEBELOW", (0, 1), (-1, -2), 0.25, colors.HexColor("#c8c8c8")),
    ]
    for i in published_rows:
        style.append(("BACKGROUND", (0, i + 1), (-1, i + 1), colors.HexColor("#eef2f8")))
    for i, r in enumerate(text[1:]):
        if i not in published_rows and row_failed(r):
            style.append(("BACKGROUND", (0, i + 1), (-1, i + 1), colors.HexColor("#fcebe9")))
    t.setStyle(TableStyle(style))
    return t


_NUM = re.compile(r"^[<>≈~−+-]?\s*\d[\d.,]*\s*(%|×|s|h)?$")


def _numeric_columns(text: List[List[str]]) -> List[int]:
    """Columns whose body cells are (almost) all plain numbers: right-aligned, like a paper's tables."""
    out = []
    for j in range(len(text[0])):
        vals = [r[j].strip() for r in text[1:] if r[j].strip() not in ("", "–", "n/a")]
        if vals and sum(bool(_NUM.match(v)) for v in vals) >= 0.9 * len(vals):
            out.append(j)
    return out


class _Counter:
    def __init__(self):
        self.table = 0
        self.figure = 0

    def next_table(self) -> str:
        self.table += 1
        return f"Table A.{self.table}"

    def next_figure(self) -> str:
        self.figure += 1
        return f"Figure A.{self.figure}"


def _caption(label: str, title: str, text: str, st) -> Paragraph:
    body = f"<b>{esc(label)}.</b> <b>{esc(title)}.</b>"
    if text:
        body += " " + esc(text)
    return Paragraph(body, st["caption"])


def _report_table(t, avail: float, st, counter: _Counter) -> List[Flowable]:
    """Caption above (paper style), the table, notes below."""
    out: List[Flowable] = [_caption(counter.next_table(), t.title, t.caption, st)]
    vcol = t.columns.index("Verdict") if "Verdict" in t.columns else None
    vcols = range(2, len(t.columns)) if t.key == "verdicts_by_scale" else ()
    out.append(rl_table(t.columns, t.rows, avail, st, t.published_rows, vcol, verdict_cols=vcols))
    for n in t.notes:
        out.append(Paragraph(esc(n), st["note"]))
    out.append(Spacer(1, 8))
    return out


# ------------------------------------------------------------------------------------------ document
class _Doc(BaseDocTemplate):
    def __init__(self, path, ctx, **kw):
        super().__init__(
            str(path),
            pagesize=PAGE,
            leftMargin=MARGIN_X,
            rightMargin=MARGIN_X,
            topMargin=MARGIN_TOP,
            bottomMargin=MARGIN_BOTTOM,
            title=ctx["title"],
            author="milenas-harness (reports/)",
            subject=ctx["banner"],
            creator="reportlab",
            initialFontName=SERIF,
            initialFontSize=BODY_PT,
            **kw,
        )
        self.ctx = ctx
        self.pages = 0
        pw, ph = PAGE
        lw, lh = landscape(PAGE)
        self.portrait_w = pw - 2 * MARGIN_X
        self.landscape_w = lw - 2 * MARGIN_X
        self.frame_h = ph - MARGIN_TOP - MARGIN_BOTTOM
        self.landscape_h = lh - MARGIN_TOP - MARGIN_BOTTOM
        self.addPageTemplates(
            [
                PageTemplate(
                    "title",
                    [
                        Frame(
                            MARGIN_X,
                            MARGIN_BOTTOM,
                            self.portrait_w,
                            self.frame_h + 8 * mm,
                            id="t",
                            leftPadding=0,
                            rightPadding=0,
                            topPadding=0,
                            bottomPadding=0,
                        )
                    ],
                    onPage=self._decorate,
                    pagesize=PAGE,
                ),
                PageTemplate(
                    "portrait",
                    [
                        Frame(
                            MARGIN_X,
                            MARGIN_BOTTOM,
                            self.portrait_w,
                            self.frame_h,
                            id="p",
                            leftPadding=0,
                            rightPadding=0,
                            topPadding=0,
                            bottomPadding=0,
                        )
                    ],
                    onPage=self._decorate,
                    pagesize=PAGE,
                ),
                PageTemplate(
                    "landscape",
                    [
                        Frame(
                            MARGIN_X,
                            MARGIN_BOTTOM,
                            self.landscape_w,
                            self.landscape_h,
                            id="l",
                            leftPadding=0,
                            rightPadding=0,
                            topPadding=0,
                            bottomPadding=0,
                        )
                    ],
                    onPage=self._decorate,
                    pagesize=landscape(PAGE),
                ),
            ]
        )

    def _decorate(self, canvas, doc):
        self.pages += 1
        w, h = canvas._pagesize
        banner = self.ctx["banner"]
        fg, _bg = SCALE_COLORS[_banner_kind(banner)]
        canvas.saveState()
        right = "MiLeNAS reproduction harness — appendix"
        room = w - 2 * MARGIN_X - _text_width(right, SERIF_I, 8) - 12
        text = banner
        if _text_width(text, SERIF_B, 8) > room:  # the scale label before the dash is the essential part
            text = banner.split(" — ")[0]
        if _text_width(text, SERIF_B, 8) > room:
            while _text_width(text + "…", SERIF_B, 8) > room and len(text) > 10:
                text = text[:-1]
            text = text.rstrip() + "…"
        if doc.page > 1:
            canvas.setFont(SERIF_B, 8)
            canvas.setFillColor(colors.HexColor(fg))
            canvas.drawString(MARGIN_X, h - MARGIN_TOP + 9, text)
            canvas.setFont(SERIF_I, 8)
            canvas.setFillColor(colors.HexColor("#555555"))
            canvas.drawRightString(w - MARGIN_X, h - MARGIN_TOP + 9, right)
            canvas.setStrokeColor(colors.HexColor("#999999"))
            canvas.setLineWidth(0.4)
            canvas.line(MARGIN_X, h - MARGIN_TOP + 5, w - MARGIN_X, h - MARGIN_TOP + 5)
        canvas.setFont(SERIF, 8.5)
        canvas.setFillColor(colors.HexColor("#333333"))
        canvas.drawCentredString(w / 2, MARGIN_BOTTOM - 16, str(doc.page))
        canvas.restoreState()


def _bullets(items: Sequence[Tuple[int, str]], st) -> List[Flowable]:
    out = []
    for lvl, text in items:
        s = st["bullet2"] if lvl else st["bullet"]
        out.append(Paragraph(esc(text), s, bulletText="–" if lvl else "•"))
    return out


def _title_page(ctx, doc: _Doc, st, counter: _Counter) -> List[Flowable]:
    sc = ctx["scope"]
    out: List[Flowable] = [
        Paragraph(esc(ctx["title"]), st["title"]),
        Paragraph(
            esc(f"Reproducibility appendix · generated {ctx['generated']} · run folder {sc['runs_dir']}"),
            st["subtitle"],
        ),
    ]
    fg, bg = SCALE_COLORS[_banner_kind(ctx["banner"])]
    b = RLTable(
        [[Paragraph(f'<font color="{fg}">{esc(ctx["banner"])}</font>', st["banner"])]], colWidths=[doc.portrait_w]
    )
    b.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, -1), SERIF, 11),
                ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor(bg)),
                ("BOX", (0, 0), (-1, -1), 1.2, colors.HexColor(fg)),
                ("TOPPADDING", (0, 0), (-1, -1), 6),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 7),
            ]
        )
    )
    out += [b, Spacer(1, 8), Paragraph("Reproducibility summary", st["h1"])]
    spaces = "; ".join(
        f"{d['name']}: {sum(1 for g in d['groups'] if g['kind'] == 'search')} search groups"
        + (
            f", {sum(1 for g in d['groups'] if g['kind'] == 'evaluation')} evaluation groups"
            if any(g["kind"] == "evaluation" for g in d["groups"])
            else ""
        )
        + f" on {d['dataset']}"
        + (f" (missing: {', '.join(d['missing_methods'])})" if d["missing_methods"] else "")
        for d in sc["spaces"].values()
    )
    summary = (
        f"{sc['n_records']} run records ({sc['n_ok']} finished, {sc['n_failed']} failed, "
        f"{sc['n_running']} unfinished); scales: {', '.join(sc['scales']) or 'none'}; devices: "
        f"{', '.join(sc['devices']) or 'none recorded'}. " + (spaces + "." if spaces else "")
    )
    out.append(Paragraph(esc(summary), st["body"]))
    out.append(
        Paragraph(
            esc(
                "Each claim of the MiLeNAS paper is tested per search space and per scale (scales are never pooled). "
                "n = finished seeds per group; n_needed = seeds per group at which the verdict's own test reaches 80 % "
                "power at α = 0.05 given the observed effect and spread, with the cost of the missing seeds from this "
                "scale's recorded search time. Rules, numbers and power details follow in A.2."
            ),
            st["body"],
        )
    )
    vs = ctx["verdicts"]
    multi = len({v.scale for v in vs}) > 1
    cols = ["Claim", "Space"] + (["Scale"] if multi else []) + ["Verdict", "Effect (95 % CI)", "n", "n_needed"]
    rows, prev = [], None
    for v in vs:
        claim = f"{v.claim}: " + _short_claim(v.claim)
        same = multi and prev == (v.claim, v.space)  # the scales of one claim sit side by side
        rows.append(
            ["" if same else claim, "" if same else R.SPACE_NAMES.get(v.space, v.space)]
            + ([v.scale] if multi else [])
            + [v.verdict, v.effect or "–", v.n or "–", V.n_needed_cell(v)]
        )
        prev = (v.claim, v.space)
    avail = doc.portrait_w
    scales = [s for s in R.SCALE_ORDER if any(v.scale == s for v in vs)] or sorted({v.scale for v in vs})
    out.append(
        _caption(
            counter.next_table(),
            "Verdicts on the paper's claims",
            f"{'scales' if multi else 'scale'} {', '.join(scales)}; rules, numbers and power in A.2",
            st,
        )
    )
    out.append(rl_table(cols, rows, avail, st, verdict_col=cols.index("Verdict")))
    return out


def _short_claim(claim: str) -> str:
    return V.SHORT.get(claim, "")


def _verdict_details(ctx, doc: _Doc, st) -> List[Flowable]:
    out: List[Flowable] = []
    kw = 62
    for v in ctx["verdicts"]:
        head = (
            f"{esc(v.claim)} · {esc(R.SPACE_NAMES.get(v.space, v.space))} · {esc(v.scale)} scale — "
            f'<font color="{_verdict_color(v.verdict)}">{esc(v.verdict)}</font>'
        )
        pairs = [
            ("Claim", v.statement),
            ("Effect", v.effect or "–"),
            ("Numbers", v.numbers or "–"),
            ("n / n_needed", f"{v.n or '–'} / {v.n_needed if v.n_needed is not None else '–'}"),
            ("Power", v.power_text or "–"),
        ]
        if (v.power or {}).get("test") and v.power.get("test") != "none":
            pairs.append(
                (
                    "Power test",
                    v.power["test"]
                    + (f"; the worst pair sets n_needed: {v.power['worst']}" if v.power.get("worst") else ""),
                )
            )
        if v.cost_detail and v.cost_hours:
            pairs.append(("Missing seeds", v.cost_detail))
        pairs += [("Data", v.dataset or "–"), ("Rule", v.rule)]
        data = [[Paragraph(esc(k), st["key"]), Paragraph(esc(val), st["val"])] for k, val in pairs]
        t = RLTable(data, colWidths=[kw, doc.portrait_w - kw], hAlign="LEFT", splitInRow=1)
        t.setStyle(
            TableStyle(
                [
                    ("FONT", (0, 0), (-1, -1), SERIF, 8.5),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                    ("LEFTPADDING", (0, 0), (-1, -1), 0),
                    ("RIGHTPADDING", (0, 0), (-1, -1), 4),
                    ("TOPPADDING", (0, 0), (-1, -1), 0.5),
                    ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
                ]
            )
        )
        out.append(KeepTogether([Paragraph(head, st["h2"]), t]))
    return out


def _needs_landscape(t, portrait_w: float) -> bool:
    """Wide tables go on landscape pages: ten or more columns, or longest words that fill most of a portrait
    line (the columns would be squeezed to a word or two per line)."""
    if len(t.columns) >= 10:
        return True
    text = [list(map(str, t.columns))] + [[str(c) for c in r] for r in t.rows]
    words = [
        max((_text_width(w, SERIF, TABLE_PT) for r in text for w in str(r[j]).split()), default=0) + 8
        for j in range(len(t.columns))
    ]
    return sum(words) > 0.8 * portrait_w


def _figure(f, avail_w: float, max_h: float, st, counter: _Counter) -> Flowable:
    buf = io.BytesIO()
    fig = f.get("fig")
    if fig is not None:
        fig.savefig(buf, format="png", dpi=FIG_DPI)
        w_in, h_in = fig.get_size_inches()
    else:  # no figure object: the stored PNG
        buf.write(f["png_bytes"])
        from PIL import Image as _PIL

        with _PIL.open(io.BytesIO(f["png_bytes"])) as im:
            w_in, h_in = im.size[0] / 100, im.size[1] / 100
    buf.seek(0)
    w = avail_w
    h = w * h_in / w_in
    if h > max_h:
        h, w = max_h, max_h * w_in / h_in
    img = Image(buf, width=w, height=h)
    img.hAlign = "CENTER"
    return KeepTogether([img, _caption(counter.next_figure(), f["title"], f["caption"], st), Spacer(1, 6)])


def render(ctx: Dict[str, Any], path) -> int:
    """Write the PDF; returns the page count."""
    _register_fonts()
    st = _styles()
    doc = _Doc(path, ctx)
    counter = _Counter()
    pw = doc.portrait_w
    story: List[Flowable] = [NextPageTemplate("portrait")]
    story += _title_page(ctx, doc, st, counter)
    story.append(PageBreak())

    story.append(Paragraph("A.1 Scope and deviations from the references", st["h1"]))
    story.append(Paragraph("Scope", st["h2"]))
    story += _bullets(ctx.get("scope_items") or [(0, x) for x in ctx["scope_lines"]], st)
    story.append(Paragraph("Deviations from the references", st["h2"]))
    story += _bullets([(0, x) for x in ctx["deviation_lines"]] or [(0, "none recorded")], st)

    story.append(CondPageBreak(0.3 * doc.frame_h))
    story.append(Paragraph("A.2 Verdicts: rules, numbers and power", st["h1"]))
    if len({v.scale for v in ctx["verdicts"]}) > 1 and ctx.get("verdict_scale_table") is not None:
        story += _report_table(ctx["verdict_scale_table"], pw, st, counter)
    story += _verdict_details(ctx, doc, st)

    # tables: portrait when they fit, landscape pages for wide ones
    current = "portrait"
    for i, t in enumerate(ctx["tables"]):
        want = "landscape" if _needs_landscape(t, pw) else "portrait"
        if want != current:
            story += [NextPageTemplate(want), PageBreak()]
            current = want
        elif i == 0:
            story.append(PageBreak())
        if i == 0:
            story.append(Paragraph("A.3 Tables", st["h1"]))
        avail = doc.landscape_w if current == "landscape" else pw
        story += _report_table(t, avail, st, counter)
        story.append(Paragraph(esc(f"(files: {t.key}.csv, {t.key}.tex)"), st["note"]))
        story.append(Spacer(1, 10))
    if current != "portrait":
        story += [NextPageTemplate("portrait")]
    story.append(PageBreak())

    story.append(Paragraph("A.4 Figures", st["h1"]))
    for f in ctx["figures"]:
        story.append(_figure(f, pw, 0.82 * doc.frame_h, st, counter))
    if ctx["not_produced"]:
        story.append(Paragraph("Figures not produced", st["h2"]))
        story += _bullets([(0, x) for x in ctx["not_produced"]], st)

    story.append(PageBreak())
    story.append(Paragraph("A.5 Statistics", st["h1"]))
    compact = ctx.get("stats_compact")
    if compact is not None:
        story += _report_table(compact, pw, st, counter)
    story.append(Paragraph("A.6 Provenance", st["h1"]))
    story += _bullets([(0, x) for x in ctx["provenance_lines"]], st)
    doc.build(story)
    return doc.pages
