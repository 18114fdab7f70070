"""SVG plots drawn by the server: one panel per quantity, min–max band and mean line, level lines, alert marks.

No script, no external font or library: the page shows it as it is, and every label is escaped text.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from control.html import h

W, H = 960, 220  # one panel, in SVG units
_L, _R, _T, _B = 60, 20, 18, 26  # margins
_SEV_CLASS = {"critical": "mark-critical", "warning": "mark-warning", "info": "mark-info"}


def _ticks(since: float, until: float, zone: ZoneInfo, n: int = 6) -> list[tuple[float, str]]:
    span = until - since
    fmt = "%H:%M" if span <= 2 * 86400 else "%m-%d"
    return [(since + span * i / n, datetime.fromtimestamp(since + span * i / n, zone).strftime(fmt))
            for i in range(n + 1)]


def panel(title: str, unit: str, points: list[dict[str, Any]], key: str, since: float, until: float, zone: ZoneInfo,
          levels: list[tuple[str, float]] | None = None, marks: list[dict[str, Any]] | None = None,
          css_id: str = "") -> str:
    """One SVG panel of `key`_min/_mean/_max over [since, until) with horizontal level lines and alert marks."""
    values = [v for p in points for v in (p[f"{key}_min"], p[f"{key}_max"]) if v is not None]
    level_values = [v for _, v in levels or []]
    lo = min(values + level_values + [0.0])
    hi = max(values + level_values + [1e-9])
    hi += (hi - lo) * 0.08 or 1.0
    pw, ph = W - _L - _R, H - _T - _B

    def x(t: float) -> float:
        return _L + (t - since) / (until - since) * pw

    def y(v: float) -> float:
        return _T + (hi - v) / (hi - lo) * ph

    out = [f'<svg class="plot" id="{h(css_id)}" viewBox="0 0 {W} {H}" role="img" aria-label="{h(title)}" '
           f'xmlns="http://www.w3.org/2000/svg"><title>{h(title)}</title>',
           f'<text class="axis-title" x="{_L}" y="12">{h(title)} ({h(unit)})</text>',
           f'<rect class="frame" x="{_L}" y="{_T}" width="{pw}" height="{ph}"/>']
    for i in range(5):
        v = lo + (hi - lo) * i / 4
        out.append(f'<line class="grid" x1="{_L}" x2="{_L + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}"/>'
                   f'<text class="tick" x="{_L - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.2f}</text>')
    for t, label in _ticks(since, until, zone):
        out.append(f'<text class="tick" x="{x(t):.1f}" y="{H - 8}" text-anchor="middle">{h(label)}</text>')
    # the readings: a min-max band and the mean, broken where there are no readings
    segments: list[list[dict[str, Any]]] = [[]]
    gap = (until - since) / max(len(points), 1) * 3
    for p in points:
        if p[f"{key}_mean"] is None:
            continue
        if segments[-1] and p["t"] - segments[-1][-1]["t"] > max(gap, 180):
            segments.append([])
        segments[-1].append(p)
    for seg in segments:
        if not seg:
            continue
        top = " ".join(f"{x(p['t']):.1f},{y(p[f'{key}_max']):.1f}" for p in seg)
        bottom = " ".join(f"{x(p['t']):.1f},{y(p[f'{key}_min']):.1f}" for p in reversed(seg))
        out.append(f'<polygon class="band" points="{top} {bottom}"/>')
        line = " ".join(f"{x(p['t']):.1f},{y(p[f'{key}_mean']):.1f}" for p in seg)
        if len(seg) == 1:
            out.append(f'<circle class="mean" cx="{x(seg[0]["t"]):.1f}" cy="{y(seg[0][f"{key}_mean"]):.1f}" r="2"/>')
        out.append(f'<polyline class="mean" points="{line}"/>')
    for name, v in levels or []:
        out.append(f'<line class="level level-{h(name)}" data-level="{h(name)}" data-value="{v}" x1="{_L}" '
                   f'x2="{_L + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}"/><text class="level-label" x="{_L + 4}" '
                   f'y="{y(v) - 3:.1f}">{h(name)} {v:g}</text>')
    for m in marks or []:
        if not since <= m["raised_ts"] < until:
            continue
        mx = x(m["raised_ts"])
        out.append(f'<line class="mark {_SEV_CLASS.get(m["severity"], "")}" data-alert="{h(m["id"])}" '
                   f'data-kind="{h(m["kind"])}" x1="{mx:.1f}" x2="{mx:.1f}" y1="{_T}" y2="{_T + ph}">'
                   f'<title>{h(m["kind"])} raised: {h(m["message"])}</title></line>')
    if not any(segments):
        out.append(f'<text class="empty" x="{_L + pw / 2}" y="{_T + ph / 2}" text-anchor="middle">no readings '
                   "in this span</text>")
    out.append("</svg>")
    return "".join(out)
