"""A small PDF document builder for statements, confirmations and reports (reportlab, pure
Python). Chinese text: WenQuanYi Micro Hei embedded as a subset when the font is installed
(scripts/services.sh installs fonts-wqy-microhei), else reportlab's built-in Adobe CID font
STSong-Light (not embedded; every PDF reader ships it)."""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

WQY = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")


@functools.cache
def cjk_font() -> str:
    from reportlab.pdfbase import pdfmetrics

    if WQY.is_file():
        from reportlab.pdfbase.ttfonts import TTFont

        pdfmetrics.registerFont(TTFont("WQYMicroHei", str(WQY), subfontIndex=0))
        return "WQYMicroHei"
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    return "STSong-Light"


class Doc:
    """Title, key/value pairs, tables and notes on A4 pages; `render()` returns the PDF."""

    def __init__(self, title: str) -> None:
        from reportlab.lib.styles import ParagraphStyle

        self._title = title
        self.font = cjk_font()
        self.story: list[object] = []
        self.h = ParagraphStyle("h", fontName=self.font, fontSize=15, leading=20, spaceAfter=8)
        self.p = ParagraphStyle("p", fontName=self.font, fontSize=8.5, leading=11, wordWrap="CJK")
        self.small = ParagraphStyle("s", parent=self.p, fontSize=7.5, leading=10)

    def _para(self, text: str, small: bool = False) -> object:
        from reportlab.platypus import Paragraph

        return Paragraph(escape(text), self.small if small else self.p)

    def title(self, text: str) -> None:
        from reportlab.platypus import Paragraph

        self.story.append(Paragraph(escape(text), self.h))

    def note(self, text: str) -> None:
        from reportlab.platypus import Spacer

        self.story += [Spacer(1, 6), self._para(text, small=True)]

    def pairs(self, rows: Sequence[tuple[str, str]]) -> None:
        self.table(None, [[k, v] for k, v in rows], widths=(0.35, 0.65), grid=False)

    def table(
        self,
        header: Sequence[str] | None,
        rows: Sequence[Sequence[str]],
        *,
        widths: Sequence[float],
        grid: bool = True,
    ) -> None:
        from reportlab.lib import colors
        from reportlab.lib.pagesizes import A4
        from reportlab.platypus import Spacer, Table, TableStyle

        usable = A4[0] - 72
        data = [[self._para(str(c), small=True) for c in r] for r in rows]
        if header is not None:
            data.insert(0, [self._para(h, small=True) for h in header])
        if not data:
            return
        t = Table(data, colWidths=[usable * w for w in widths], repeatRows=1 if header else 0)
        style: list[Any] = [("VALIGN", (0, 0), (-1, -1), "TOP")]
        if grid:
            style += [("GRID", (0, 0), (-1, -1), 0.25, colors.grey)]
        if header is not None:
            style += [("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eef2f7"))]
        t.setStyle(TableStyle(style))
        self.story += [t, Spacer(1, 8)]

    def render(self) -> bytes:
        from reportlab.lib.pagesizes import A4
        from reportlab.platypus import SimpleDocTemplate

        buf = io.BytesIO()
        doc = SimpleDocTemplate(
            buf, pagesize=A4, leftMargin=36, rightMargin=36, topMargin=36, bottomMargin=36,
            title=self._title, author="CrowdLeverage", invariant=1,
        )  # fmt: skip
        doc.build(list(self.story))  # type: ignore[arg-type]
        return buf.getvalue()
