"""Server-drawn SVG: line, bar and scatter charts and the lineage graph (no JS library)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from markupsafe import Markup, escape

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#4d7c0f")
"""Series colours, in order."""


def _fmt(x: float) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def line_chart(
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    title: str,
    x_label: str = "",
    width: int = 460,
    height: int = 220,
) -> Markup:
    """Lines (one per series) over shared axes, each point with a hover title."""
    points = [p for s in series.values() for p in s]
    if not points:
        return Markup('<p class="muted">No data to draw.</p>')
    left, right, top, bottom = 56, 12, 24, 36
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(0.0, min(ys)), max(ys)
    x1 = x1 if x1 > x0 else x0 + 1
    y1 = y1 if y1 > y0 else y0 + 1
    pw, ph = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def sy(y: float) -> float:
        return top + ph - (y - y0) / (y1 - y0) * ph

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(title)}">',
        f'<text x="{left}" y="14" class="chart-title">{escape(title)}</text>',
        f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" class="axis"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" class="axis"/>',
    ]
    for i in range(5):
        y = y0 + (y1 - y0) * i / 4
        parts.append(
            f'<text x="{left - 6}" y="{sy(y) + 4:.1f}" class="tick" text-anchor="end">'
            f"{_fmt(y)}</text>"
            f'<line x1="{left}" y1="{sy(y):.1f}" x2="{left + pw}" y2="{sy(y):.1f}" class="grid"/>'
        )
    parts.extend(
        f'<text x="{sx(x):.1f}" y="{top + ph + 14}" class="tick" text-anchor="middle">'
        f"{_fmt(x)}</text>"
        for x in sorted(set(xs))[:: max(1, len(set(xs)) // 8)]
    )
    if x_label:
        parts.append(
            f'<text x="{left + pw / 2:.1f}" y="{height - 4}" class="tick" '
            f'text-anchor="middle">{escape(x_label)}</text>'
        )
    for n, (name, pts) in enumerate(series.items()):
        colour = PALETTE[n % len(PALETTE)]
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        parts.append(
            f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2"/>'
        )
        for x, y in pts:
            parts.append(
                f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{colour}">'
                f"<title>{escape(name)}: {_fmt(x)} → {_fmt(y)}</title></circle>"
            )
        parts.append(
            f'<text x="{left + pw - 4}" y="{top + 12 + 12 * n}" class="legend" '
            f'text-anchor="end" fill="{colour}">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def _padded(values: Sequence[float]) -> tuple[float, float]:
    """An axis range around `values` with a margin (a tenth of the span, or of the value)."""
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.15 or abs(hi) * 0.1 or 1.0
    return lo - pad, hi + pad


def scatter_chart(
    points: Sequence[tuple[str, float, float]],
    *,
    title: str,
    x_label: str,
    y_label: str,
    width: int = 460,
    height: int = 240,
) -> Markup:
    """Named points `(name, x, y)` on axes fitted to them, with a legend beside the plot.

    The axes span the points with a margin, not from zero, so small differences show;
    the tick labels give the scale.
    """
    if not points:
        return Markup('<p class="muted">No data to draw.</p>')
    left, right, top, bottom = 56, 104, 24, 40
    x0, x1 = _padded([p[1] for p in points])
    y0, y1 = _padded([p[2] for p in points])
    pw, ph = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def sy(y: float) -> float:
        return top + ph - (y - y0) / (y1 - y0) * ph

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(title)}">',
        f'<text x="{left}" y="14" class="chart-title">{escape(title)}</text>',
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" class="axis"/>',
    ]
    for i in range(5):
        x, y = x0 + (x1 - x0) * i / 4, y0 + (y1 - y0) * i / 4
        parts.append(
            f'<text x="{left - 6}" y="{sy(y) + 4:.1f}" class="tick" text-anchor="end">'
            f"{_fmt(y)}</text>"
            f'<text x="{sx(x):.1f}" y="{top + ph + 14}" class="tick" text-anchor="middle">'
            f"{_fmt(x)}</text>"
        )
    parts.append(
        f'<text x="{left + pw / 2:.1f}" y="{height - 6}" class="tick" text-anchor="middle">'
        f"{escape(x_label)}</text>"
        f'<text x="12" y="{top + ph / 2:.1f}" class="tick" text-anchor="middle" '
        f'transform="rotate(-90 12 {top + ph / 2:.1f})">{escape(y_label)}</text>'
    )
    for n, (name, x, y) in enumerate(points):
        colour = PALETTE[n % len(PALETTE)]
        parts.append(
            f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="5" fill="{colour}" '
            f'fill-opacity="0.8"><title>{escape(name)}: {escape(x_label)} {_fmt(x)}, '
            f"{escape(y_label)} {_fmt(y)}</title></circle>"
            f'<circle cx="{left + pw + 14}" cy="{top + 8 + 16 * n}" r="4" fill="{colour}"/>'
            f'<text x="{left + pw + 22}" y="{top + 12 + 16 * n}" class="legend" '
            f'fill="{colour}">{escape(name[:14])}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def bar_chart(bars: Sequence[tuple[str, float]], *, title: str, width: int = 460) -> Markup:
    """Horizontal bars with their labels and values."""
    if not bars:
        return Markup('<p class="muted">No data to draw.</p>')
    row, label_w, top = 22, 150, 24
    height = top + row * len(bars) + 8
    top_value = max(v for _, v in bars) or 1.0
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(title)}">',
        f'<text x="4" y="14" class="chart-title">{escape(title)}</text>',
    ]
    span = width - label_w - 70
    for i, (label, value) in enumerate(bars):
        y = top + i * row
        w = max(1.0, value / top_value * span)
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 14}" class="tick" text-anchor="end">'
            f"{escape(label)}</text>"
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 6}" '
            f'fill="{PALETTE[i % len(PALETTE)]}">'
            f"<title>{escape(label)}: {_fmt(value)}</title></rect>"
            f'<text x="{label_w + w + 4:.1f}" y="{y + 14}" class="tick">{_fmt(value)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


@dataclass(frozen=True)
class GraphNode:
    """One box of the graph."""

    id: str
    label: str
    sub: str
    kind: str
    """`file`, `asset` or `root` (the asset the page is about)."""
    href: str | None


def _layers(nodes: Sequence[GraphNode], edges: Sequence[tuple[str, str]]) -> dict[str, int]:
    """Each node's column: the longest path to it from a node without inputs."""
    layer = {n.id: 0 for n in nodes}
    for _ in range(len(nodes)):
        changed = False
        for a, b in edges:
            if a in layer and b in layer and layer[b] < layer[a] + 1:
                layer[b] = layer[a] + 1
                changed = True
        if not changed:
            break
    return layer


def graph_svg(
    nodes: Sequence[GraphNode],
    edges: Sequence[tuple[str, str, str]],
    *,
    title: Callable[[GraphNode], str] = lambda n: n.label,
) -> Markup:
    """A left-to-right layered drawing of a DAG; nodes with an `href` are links."""
    if not nodes:
        return Markup('<p class="muted">No lineage recorded.</p>')
    layer = _layers(nodes, [(a, b) for a, b, _ in edges])
    columns: dict[int, list[GraphNode]] = {}
    for n in sorted(nodes, key=lambda n: (n.kind != "file", n.label)):
        columns.setdefault(layer[n.id], []).append(n)
    box_w, box_h, gap_x, gap_y, pad = 220, 44, 60, 16, 12
    pos: dict[str, tuple[float, float]] = {}
    for c, members in columns.items():
        for r, n in enumerate(members):
            pos[n.id] = (pad + c * (box_w + gap_x), pad + r * (box_h + gap_y))
    width = pad * 2 + (max(columns) + 1) * (box_w + gap_x) - gap_x
    height = pad * 2 + max(len(m) for m in columns.values()) * (box_h + gap_y) - gap_y
    parts = [
        f'<svg class="graph" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        'role="img" aria-label="lineage graph">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#64748b"/></marker>'
        "</defs>",
    ]
    for a, b, rel in edges:
        if a not in pos or b not in pos:
            continue
        (ax, ay), (bx, by) = pos[a], pos[b]
        x1, y1, x2, y2 = ax + box_w, ay + box_h / 2, bx, by + box_h / 2
        mid = (x1 + x2) / 2
        parts.append(
            f'<path class="edge" d="M{x1:.0f},{y1:.0f} C{mid:.0f},{y1:.0f} {mid:.0f},{y2:.0f} '
            f'{x2:.0f},{y2:.0f}" marker-end="url(#arrow)"><title>{escape(rel)}</title></path>'
        )
    for n in nodes:
        x, y = pos[n.id]
        box = (
            f'<g class="node node-{escape(n.kind)}" data-node="{escape(n.id)}">'
            f"<title>{escape(title(n))}</title>"
            f'<rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="6"/>'
            f'<text x="{x + 8}" y="{y + 18}" class="node-label">{escape(n.label[:32])}</text>'
            f'<text x="{x + 8}" y="{y + 34}" class="node-sub">{escape(n.sub[:40])}</text></g>'
        )
        parts.append(f'<a href="{escape(n.href)}">{box}</a>' if n.href else box)
    parts.append("</svg>")
    return Markup("".join(parts))
