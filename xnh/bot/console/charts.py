"""Charts drawn as SVG on the server: no script, no chart library, nothing fetched from elsewhere, and
a test can read the numbers from the HTML (each bar carries data-label and data-value). Numbers are
written the Chinese way (123.5万, 2.3亿: `words.wan`), and no two labels overlap: a column's total is
written only when it fits the column's width (else it is in the bar's tooltip), month labels are
shortened to 月 when the columns are narrow, and the legend wraps."""
from markupsafe import Markup, escape

from .words import wan

CHAR_W = {10: 6.2, 11: 6.8, 12: 7.4}  # px a digit or Latin letter takes at a font size; a Chinese character takes 2

PALETTE = ("#2f6fb0", "#d9822b", "#4a9c5d", "#b34a4a", "#7a5ea8", "#8c8c8c", "#c2a11d")
ROW = 22
LABEL_W = 110


def hbars(rows: list[tuple[str, list]], series: list[str], title: str, unit: str = "") -> Markup:
    """Horizontal bars: one group per row label, one bar per series (e.g. 已参合 / 未缴费 by township)."""
    width, bar_w = 640, 640 - LABEL_W - 70
    top = max((float(v) for _, values in rows for v in values), default=0) or 1
    group_h = ROW * len(series) + 8
    height = 28 + group_h * max(len(rows), 1) + 8
    parts = [_open(width, height, title), _legend(series, 4)]
    for i, (label, values) in enumerate(rows):
        y0 = 28 + i * group_h
        parts.append(f'<text x="{LABEL_W - 6}" y="{y0 + group_h / 2}" text-anchor="end" '
                     f'dominant-baseline="middle" font-size="12">{escape(label)}</text>')
        for j, value in enumerate(values):
            w = bar_w * float(value) / top
            y = y0 + j * ROW
            parts.append(f'<rect x="{LABEL_W}" y="{y}" width="{w:.1f}" height="{ROW - 4}" fill="{PALETTE[j % 7]}" '
                         f'data-label="{escape(label)}" data-series="{escape(series[j])}" data-value="{value}">'
                         f'<title>{escape(label)} {escape(series[j])}: {value}{unit}</title></rect>')
            parts.append(f'<text x="{LABEL_W + w + 4:.1f}" y="{y + (ROW - 4) / 2}" dominant-baseline="middle" '
                         f'font-size="11">{wan(value)}{unit}</text>')
    if not rows:
        parts.append(f'<text x="{width / 2}" y="50" text-anchor="middle" font-size="13">暂无数据</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def stacked_columns(columns: list[str], stacks: dict[str, dict], title: str, labels: dict | None = None,
                    unit: str = "") -> Markup:
    """Vertical columns (e.g. months), each stacked by series (e.g. hospital level): {series: {column: value}}."""
    labels = labels or {}
    width, height, left, bottom = 640, 260, 60, 40
    plot_h = height - bottom - 40
    col_w = (width - left - 10) / max(len(columns), 1)
    totals = [sum(float(stacks[s].get(c, 0)) for s in stacks) for c in columns]
    top = max(totals, default=0) or 1
    parts = [_open(width, height, title), _legend([labels.get(s, s) for s in stacks], 4)]
    for i, column in enumerate(columns):
        x, y = left + i * col_w + 4, height - bottom
        for j, series in enumerate(stacks):
            value = stacks[series].get(column, 0)
            h = plot_h * float(value) / top
            y -= h
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{col_w - 8:.1f}" height="{h:.1f}" '
                         f'fill="{PALETTE[j % 7]}" data-label="{escape(column)}" data-series="{escape(series)}" '
                         f'data-value="{value}"><title>{escape(column)} {escape(labels.get(series, series))}: '
                         f'{value}{unit}</title></rect>')
        label = column if text_width(column, 11) <= col_w - 2 else _short_month(column, i, columns)
        every = max(1, -(-int(text_width(label, 11) + 4) // int(col_w)))  # columns a label needs
        if i % every == 0:  # thinned when they would not fit side by side
            parts.append(f'<text x="{x + (col_w - 8) / 2:.1f}" y="{height - bottom + 14}" text-anchor="middle" '
                         f'font-size="11" class="col-label">{escape(label)}</text>')
        total = wan(round(totals[i]))
        if text_width(total, 10) <= col_w - 2:
            parts.append(f'<text x="{x + (col_w - 8) / 2:.1f}" y="{y - 4:.1f}" text-anchor="middle" '
                         f'font-size="10" class="col-total">{total}</text>')
    if not columns:
        parts.append(f'<text x="{width / 2}" y="120" text-anchor="middle" font-size="13">暂无数据</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _open(width: int, height: float, title: str) -> str:
    return (f'<svg class="chart" viewBox="0 0 {width} {height:.0f}" '
            f'width="100%" role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>')


def text_width(text: str, size: int) -> float:
    """About how wide `text` is at font `size` (px): a Chinese character is twice a digit."""
    unit = CHAR_W.get(size, size * 0.62)
    return sum(unit * (2 if ord(c) > 0x2E7F else 1) for c in str(text))


def _short_month(column: str, i: int, columns: list[str]) -> str:
    """"2026-03" as "3月" (with the year at its first month and at the first column)."""
    if len(column) == 7 and column[4] == "-":
        month = f"{int(column[5:])}月"
        return f"{column[2:4]}年{month}" if i == 0 or column.endswith("-01") else month
    return column


def _legend(names: list[str], y: int, width: int = 640) -> str:
    out, x = [], LABEL_W
    for j, name in enumerate(names):
        step = 24 + text_width(name, 12)
        if x + step > width and x > LABEL_W:  # wrap rather than run off the chart
            x, y = LABEL_W, y + 16
        out.append(f'<rect x="{x:.0f}" y="{y}" width="12" height="12" fill="{PALETTE[j % 7]}"/>'
                   f'<text x="{x + 16:.0f}" y="{y + 10}" font-size="12">{escape(name)}</text>')
        x += step
    return "".join(out)
